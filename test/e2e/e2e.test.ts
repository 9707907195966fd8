/**
 * The single entry of the slow end-to-end tests, so that they run one after another (a build and
 * a QEMU boot at once would fight over this machine's two cores): build the default image, run its
 * output step (outputs.mjs) on a small sparse image, check its block map, diff images, fail a
 * locked build early, build it again from an empty cache volume and from that volume's cache and
 * compare the bytes (reproducibility), then prove the
 * test bed of real routers (no QEMU), boot the image and prove failover, boot it on the
 * test bed in both layouts and measure each switch's outage from outside, fail its routers' lines
 * and hang a router (uplink tracking), boot it with a
 * damaged root file system (power cut), and stop boots at every stage; then build and boot the
 * image with each other network stack (networkd, NetworkManager, netplan); last, lay pibond onto
 * the look-alike Raspberry Pi OS and Ubuntu stock images and boot each.
 */
import { join } from 'node:path';
import { describeBuild } from './build.e2e.ts';
import { describeBmap } from './bmap.e2e.ts';
import { describeBootSignals } from './boot-signals.e2e.ts';
import { describeDiff } from './diff.e2e.ts';
import { describeFailover } from './failover.e2e.ts';
import { describeFlash } from './flash.e2e.ts';
import { describeLock } from './lock.e2e.ts';
import { describeOutage } from './outage.e2e.ts';
import { describePowerCut } from './power-cut.e2e.ts';
import { describeReproducible } from './reproducible.e2e.ts';
import { describeStacks } from './stacks.e2e.ts';
import { describeStock } from './stock.e2e.ts';
import { describeUplink } from './uplink.e2e.ts';
import { repoRoot } from './_pibond.ts';
import { describeTestbed } from '../boot/testbed.e2e.ts';
import { describeOutputs } from '../image/outputs.e2e.ts';

const outDir = join(repoRoot, 'out', 'e2e');
describeBuild(outDir);
describeOutputs();
describeBmap(outDir);
describeDiff(() => join(outDir, 'pibond-bookworm-arm64.img'));
describeLock(outDir);
describeReproducible(outDir);
describeTestbed();
describeFailover(() => join(outDir, 'pibond-bookworm-arm64.img'));
describeOutage(() => join(outDir, 'pibond-bookworm-arm64.img'));
describeUplink(() => join(outDir, 'pibond-bookworm-arm64.img'));
describePowerCut(() => join(outDir, 'pibond-bookworm-arm64.img'));
describeBootSignals(() => join(outDir, 'pibond-bookworm-arm64.img'));
describeFlash(() => join(outDir, 'pibond-bookworm-arm64.img'));
describeStacks(join(repoRoot, 'out', 'e2e-stacks'));
describeStock(join(repoRoot, 'out', 'e2e-stock'));
