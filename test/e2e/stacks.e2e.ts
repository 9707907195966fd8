/**
 * Every network stack pibond renders, built and booted: images/networkd.yaml,
 * images/networkmanager.yaml and images/netplan.yaml are the default appliance with another stack.
 * Each is built with the real Docker engine, looked into (the stack's packages and files, with the
 * owners and modes the stack insists on, and no other stack's), then booted under QEMU once, on the
 * test bed of real routers on different subnets, with a card's host name, and judged from the test
 * bed's internet: the card applied at first boot, both slaves enslaved, the kernel's primary eth0
 * (read from sysfs by the status service, not from the configuration), a pulled cable, its return,
 * the backup's cable, a flap, and the backup NIC pulled out and plugged back in (the stack
 * re-enslaves it, and it carries the traffic of the next failover). Every switch needs the stack's
 * own DHCP renewal (pibond-heal's row), and a boot where the stack enslaved the backup first needs
 * pibond-heal's check at start.
 *
 * One boot per stack, not one on QEMU's user-mode networks as well: the user-mode scenario's rows
 * are all here, on routers that differ as real ones do, and a boot under emulation is minutes of
 * CI. A card's static address in each stack's own file is unit-tested (test/overlays/card.test.ts)
 * and booted on the default image (failover.e2e.ts); across subnets a static address cannot work.
 */
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { failoverTest } from '../../scripts/boot/failover-test.ts';
import { formatFigures, formatVerdict } from '../../scripts/boot/report.ts';
import { parseMbr, readFirstSector, sectorBytes } from '../../scripts/lib/mbr.ts';
import { inBuilder } from './_builder.ts';
import { runPibond } from './_pibond.ts';

const scenarioTimeoutMs = 20 * 60_000;
/** As for the default image (outage.e2e.ts): room for the renewal under software emulation. */
const acrossSubnetsLimitMs = 10_000;
const buildTimeoutMs = 30 * 60_000;

/** What each stack's image must hold: its packages, its files as `path mode uid`, the unit that runs it. */
const stacks = [
  {
    stack: 'networkd',
    packages: ['systemd-resolved'],
    files: ['/etc/systemd/network/20-pibond-bond0.netdev 0644 0', '/etc/systemd/network/20-pibond-bond0-eth0.network 0644 0', '/etc/systemd/network/20-pibond-bond0.network 0644 0'],
    enabled: 'systemd-networkd.service',
  },
  {
    stack: 'networkmanager',
    packages: ['network-manager'],
    // NetworkManager ignores a keyfile anyone but root may read.
    files: ['/etc/NetworkManager/system-connections/pibond-bond0.nmconnection 0600 0', '/etc/NetworkManager/system-connections/pibond-bond0-eth0.nmconnection 0600 0', '/etc/NetworkManager/conf.d/50-pibond.conf 0644 0'],
    enabled: 'NetworkManager.service',
  },
  {
    stack: 'netplan',
    packages: ['netplan.io', 'systemd-resolved'],
    files: ['/etc/netplan/50-pibond.yaml 0600 0'],
    enabled: 'systemd-networkd.service',
  },
] as const;

export function describeStacks(outDir: string): void {
  describe.each(stacks)('the $stack stack', { tags: ['slow'] }, ({ stack, packages, files, enabled }) => {
    const name = `pibond-bookworm-arm64-${stack}`;
    const image = join(outDir, `${name}.img`);

    it(`builds images/${stack}.yaml: the stack's packages and files, owned by root with their modes, and no other stack's`, async () => {
      await mkdir(outDir, { recursive: true });
      const result = await runPibond(['build', `images/${stack}.yaml`, '--out', outDir]);
      expect(result.code, result.stderr).toBe(0);
      const mbr = parseMbr(await readFirstSector(image));
      const root = mbr?.partitions[1];
      if (!root) throw new Error(`${image} has no root partition`);
      const lines = await inBuilder(
        outDir,
        `dd if=/out/${name}.img of=/tmp/r.img bs=4M iflag=skip_bytes,count_bytes skip=${root.startSector * sectorBytes} count=${root.sectors * sectorBytes} status=none
         r() { debugfs -R "$1" /tmp/r.img 2>/dev/null; }
         echo "== packages"; r 'cat /var/lib/dpkg/status' | sed -n 's/^Package: //p'
         echo "== files"; for f in ${files.map((file) => file.split(' ')[0]).join(' ')}; do
           r "stat $f" > /tmp/stat; echo "$f $(sed -n 's/.*Mode: *\\([0-7]*\\).*/\\1/p' /tmp/stat) $(sed -n 's/^User: *\\([0-9]*\\).*/\\1/p' /tmp/stat)"
         done
         echo "== wants"; r 'ls -p /etc/systemd/system/multi-user.target.wants' | cut -d/ -f6
         echo "== end"`,
      );
      const text = lines.join('\n');
      const section = (title: string) => text.split(`== ${title}\n`)[1]!.split('\n== ')[0]!.split('\n').filter(Boolean);
      for (const wanted of packages) expect(section('packages')).toContain(wanted);
      for (const other of ['ifupdown', 'ifenslave', 'isc-dhcp-client', 'network-manager', 'netplan.io'].filter((p) => !(packages as readonly string[]).includes(p))) {
        expect(section('packages')).not.toContain(other);
      }
      // As debugfs's stat gives them: the permission bits in octal, then the owner's uid.
      expect(section('files')).toEqual(files);
      expect(section('wants')).toContain(enabled);
    }, buildTimeoutMs);

    it('boots on the test bed\'s routers on different subnets with a card\'s host name: the card applied, both slaves, the kernel\'s primary eth0, every switch\'s outage seen from the internet within the limit, the backup re-enslaved and carrying traffic', async () => {
      const result = await failoverTest({
        image,
        routers: { kind: 'testbed', layout: 'different-subnets' },
        card: { hostname: `e2e-${stack}` },
        flaps: 1,
        outageLimitMs: acrossSubnetsLimitMs,
        timeoutSeconds: scenarioTimeoutMs / 1000 - 60,
        say: (message) => process.stderr.write(`[boot ${stack}, test bed] ${message}\n`),
      });
      process.stderr.write(`${formatFigures(result.report)}\n${formatVerdict(result.report)}\nreport: ${result.reportFile}\n`);
      const failed = result.report.checks.filter((check) => !check.ok);
      expect(failed, result.report.serialLog ? `serial log: ${result.report.serialLog}` : undefined).toEqual([]);
      expect(result.report.verdict).toBe('pass');
      // The first unplug-and-replug, one flap, and one through the re-enslaved backup.
      expect(result.report.figures.outages?.map((o) => o.switch)).toEqual(['failover', 'failback', 'failover', 'failback', 'failover', 'failback']);
      expect(result.report.figures.reenslaveMs).not.toBeNull();
      const cardCheck = result.report.checks.find((check) => check.name.startsWith("the card's settings are applied"));
      expect(cardCheck?.detail).toBe(`host name e2e-${stack}`);
    }, scenarioTimeoutMs);
  });
}
