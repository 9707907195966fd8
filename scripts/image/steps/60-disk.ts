/**
 * The SD-card image: MBR, FAT32 boot partition, ext4 root; assembled in one sparse file, no loop
 * devices, holes only where nothing was written (the block map relies on it). The root partition is
 * the cached base image plus what changed in the tree since (see 35-root-base.ts). The boot partition
 * holds the card-settings slot, whose place in the image the build context keeps for the manifest.
 */
import { UserError } from '../../lib/errors.ts';
import type { CardSlot } from '../../lib/manifest.ts';
import { type Step, paths, runTool, verifyTools } from '../context.ts';
import { rootBasePaths } from './35-root-base.ts';

/** The root filesystem alone is about 0.8 GiB; mke2fs would fail on a smaller partition after the slow steps. */
const minRootBytes = 1024 ** 3;

/** raspi-firmware's own command line, with root named by PARTUUID so it boots as mmcblk0p2 and vda2. */
export function kernelCommandLine(rootPartuuid: string): string {
  return `console=ttyS1,115200 console=tty0 root=PARTUUID=${rootPartuuid} rw fsck.repair=yes net.ifnames=0 cma=64M rootwait`;
}

export const disk: Step = {
  title: 'Assemble the disk image',
  async verify(ctx) {
    const rootBytes = ctx.layout.rootSectors * 512;
    if (rootBytes < minRootBytes) {
      throw new UserError(
        `disk.size leaves ${(rootBytes / 1024 ** 2).toFixed(0)} MiB for the root partition after disk.boot_size; the root filesystem needs at least 1 GiB. ` +
          `Make disk.size at least ${Math.ceil((ctx.def.disk.size - rootBytes + minRootBytes) / 1024 ** 2)}MiB.`,
      );
    }
    await verifyTools('assemble-disk.mjs');
  },
  async run(ctx) {
    if (!ctx.rootBaseUuid) throw new Error('no root file system UUID (the base image step did not run)');
    const { layout } = ctx;
    const lines = await runTool(ctx, 'assemble-disk.mjs', [
      {
        root: paths.rootfs,
        image: paths.image(ctx.def.name),
        diskId: layout.diskId,
        bootStart: layout.bootStart,
        bootSectors: layout.bootSectors,
        rootStart: layout.rootStart,
        rootSectors: layout.rootSectors,
        totalSectors: layout.totalSectors,
        cmdline: kernelCommandLine(layout.rootPartuuid),
        sourceDateEpoch: ctx.options.sourceDateEpoch,
        rootBase: { ...rootBasePaths(ctx), uuid: ctx.rootBaseUuid },
      },
    ]);
    ctx.card = parseDiskReport(lines).card;
  },
};

/** assemble-disk.mjs's report: its last JSON line on standard output. */
export function parseDiskReport(lines: readonly string[]): { card: CardSlot } {
  const last = lines.findLast((line) => line.startsWith('{'));
  const report = last === undefined ? undefined : (JSON.parse(last) as { card?: CardSlot });
  if (!report?.card) throw new Error(`assemble-disk.mjs reported no card slot; its output ended:\n  ${lines.slice(-5).join('\n  ')}`);
  return { card: report.card };
}
