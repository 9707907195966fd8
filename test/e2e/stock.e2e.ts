/**
 * pibond laid onto stock images (base.image). The real Raspberry Pi OS and Ubuntu images cannot be
 * downloaded here, so each base is a look-alike built from Debian packages without any of pibond
 * (test/fixtures/stock: Raspberry Pi OS-like with NetworkManager and a pi user; Ubuntu-like with
 * netplan, networkd and cloud-init reading a NoCloud seed whose network-config puts eth0 on plain
 * DHCP, as Raspberry Pi Imager writes it). For each: the look-alike is built, pibond is laid onto its
 * .img.zst by `pibond build` with a definition naming it and its sha256, the result is looked into
 * (pibond's files with their owners and modes, the image's own files untouched, ping's file
 * capability kept, no SSH host key, a clean file system), and it is booted with the failover scenario.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { describe, expect, it } from 'vitest';
import { failoverTest } from '../../scripts/boot/failover-test.ts';
import { formatFigures, formatVerdict } from '../../scripts/boot/report.ts';
import type { BuildManifest, BuildTimings } from '../../scripts/lib/manifest.ts';
import { parseMbr, readFirstSector, sectorBytes } from '../../scripts/lib/mbr.ts';
import { inBuilder } from './_builder.ts';
import { type LookalikeKind, buildLookalike } from './_lookalikes.ts';
import { runPibond } from './_pibond.ts';

const buildTimeoutMs = 30 * 60_000;
const scenarioTimeoutMs = 20 * 60_000;

/** Per base: the stack it runs, its admin, and pibond's files it must get, as `path mode uid`. */
const bases = [
  {
    kind: 'raspios',
    stack: 'networkmanager',
    admin: 'pi',
    rule: 'raspios-bookworm',
    // Like the real image's kernel, the look-alike's (none) cannot boot QEMU's virt machine.
    kernel: 'builder',
    files: ['/etc/NetworkManager/system-connections/pibond-bond0.nmconnection 0600 0', '/usr/lib/pibond/bond-status.js 0644 0', '/usr/lib/pibond/node 0755 0'],
    absent: ['/etc/cloud/cloud.cfg.d/99-pibond-network.cfg'],
    seed: { stock: /^no user-data$/, laid: /^no user-data$/ },
  },
  {
    kind: 'ubuntu',
    stack: 'netplan',
    admin: 'ubuntu',
    rule: 'ubuntu-noble',
    // The look-alike's Debian kernel boots virt (the real image's linux-raspi would not).
    kernel: 'image',
    files: ['/etc/netplan/50-pibond.yaml 0600 0', '/etc/cloud/cloud.cfg.d/99-pibond-network.cfg 0644 0', '/usr/lib/pibond/bond-status.js 0644 0', '/usr/lib/pibond/node 0755 0'],
    absent: [],
    // Ubuntu's own user-data sets the ubuntu user's password; the lay replaces it.
    seed: { stock: /password: ubuntu/, laid: /Written by pibond/ },
  },
] as const satisfies readonly { kind: LookalikeKind; [key: string]: unknown }[];

/** The image's own files whose inode (owner, mode, capability) laying pibond must leave alone. */
const untouched = ['/usr/bin/ping', '/etc/shadow', '/usr/bin/sudo', '/etc/ssh/sshd_config'];

export function describeStock(outDir: string): void {
  describe.each(bases)('pibond laid onto the $kind look-alike', { tags: ['slow'] }, ({ kind, stack, admin, rule, kernel, files, absent, seed }) => {
    const name = `pibond-on-${kind}`;
    const image = join(outDir, `${name}.img`);
    let stockImage = '';

    it(`builds the ${kind} look-alike from Debian packages, with none of pibond in it`, async () => {
      await mkdir(outDir, { recursive: true });
      stockImage = await buildLookalike(kind, join(outDir, 'lookalikes'));
      const lines = await inRoot(join(outDir, 'lookalikes'), stockImage.split('/').pop() ?? '', `r 'stat /usr/lib/pibond' | head -1; r 'stat /usr/bin/node' | head -1; echo end`);
      expect(lines.join('\n')).not.toMatch(/Inode:/);
    }, buildTimeoutMs);

    it(`lays pibond onto its .img.zst: recognised as ${rule}, pibond's files with their owners and modes, the image's own untouched`, async () => {
      const compressed = `${stockImage}.zst`;
      const definition = join(outDir, `${name}.yaml`);
      await writeFile(
        definition,
        [
          `name: ${name}`,
          'base:',
          `  image: ${compressed}`,
          `  sha256: ${await sha256(compressed)}`,
          `admin: {name: ${admin}}`,
          `network: {stack: ${stack}}`,
          '',
        ].join('\n'),
      );
      const result = await runPibond(['build', definition, '--out', outDir]);
      expect(result.code, result.stderr).toBe(0);
      const manifest = JSON.parse(await readFile(join(outDir, `${name}.manifest.json`), 'utf8')) as BuildManifest;
      expect(manifest.stock?.rule).toBe(rule);
      expect(manifest.stock?.stack).toBe(stack);
      expect(manifest.stock?.kernelBootsVirt).toBe(kernel === 'image');
      expect(manifest.packages.map((p) => p.name)).not.toContain('nodejs');
      const timings = JSON.parse(await readFile(join(outDir, `${name}.timings.json`), 'utf8')) as BuildTimings;
      process.stderr.write(`[lay ${kind}] ${timings.steps.map((s) => `${s.name} ${s.seconds.toFixed(1)} s`).join(', ')}\n`);

      const describe = (img: string, dir: string) =>
        inRoot(
          dir,
          img,
          `for f in ${[...files.map((file) => file.split(' ')[0]), ...absent].join(' ')}; do
             r "stat $f" > /tmp/stat; echo "file $f $(sed -n 's/.*Mode: *\\([0-7]*\\).*/\\1/p' /tmp/stat) $(sed -n 's/^User: *\\([0-9]*\\).*/\\1/p' /tmp/stat)"
           done
           for f in ${untouched.join(' ')}; do
             r "stat $f" > /tmp/stat; echo "kept $f $(sed -n 's/.*Mode: *\\([0-7]*\\).*/\\1/p' /tmp/stat) $(sed -n 's/^User: *\\([0-9]*\\).*Group: *\\([0-9]*\\).*/\\1 \\2/p' /tmp/stat) $(r "ea_list $f" | tr -d '\\n')"
           done
           echo "keys $(r 'ls /etc/ssh' | tr ' ' '\\n' | grep -c '^ssh_host_' || true)"
           echo "admin $(r 'cat /etc/passwd' | grep -c '^${admin}:' || true)"
           r 'dump /usr/lib/pibond/node /tmp/node' >/dev/null; echo "node $(od -An -tx1 -N4 /tmp/node 2>/dev/null | tr -d ' ') $(od -An -tx1 -j18 -N2 /tmp/node 2>/dev/null | tr -d ' ')"
           e2fsck -fn /tmp/r.img >/dev/null 2>&1 && echo "fsck clean" || echo "fsck errors"`,
        );
      const laid = await describe(`${name}.img`, outDir);
      const stock = await describe(stockImage.split('/').pop() ?? '', join(outDir, 'lookalikes'));
      const rows = (lines: string[], kind: string) => lines.filter((line) => line.startsWith(`${kind} `));
      expect(rows(laid, 'file')).toEqual([...files.map((file) => `file ${file}`), ...absent.map((path) => `file ${path}  `)]);
      // Owner, mode and extended attributes (ping's security.capability) of the image's own files.
      expect(rows(laid, 'kept')).toEqual(rows(stock, 'kept'));
      expect(rows(laid, 'kept').find((line) => line.includes('/usr/bin/ping'))).toMatch(/security\.capability/);
      expect(laid).toContain('keys 0');
      expect(laid).toContain('admin 1');
      // An ELF file (7f 'E' 'L' 'F') for machine 0xb7, aarch64: the runtime, as neither image has a Node.
      expect(laid).toContain('node 7f454c46 b700');
      expect(laid).toContain('fsck clean');

      // The boot partition's cloud-init user-data, where there is one: none sets a password once laid.
      const userData = async (dir: string, img: string) => {
        const boot = parseMbr(await readFirstSector(join(dir, img)))?.partitions[0];
        if (!boot) throw new Error(`${img} has no boot partition`);
        return (await inBuilder(dir, `mtype -i /out/${img}@@${boot.startSector * sectorBytes} ::/user-data 2>/dev/null || echo "no user-data"`)).join('\n');
      };
      expect(await userData(join(outDir, 'lookalikes'), stockImage.split('/').pop() ?? '')).toMatch(seed.stock);
      const laidSeed = await userData(outDir, `${name}.img`);
      expect(laidSeed).toMatch(seed.laid);
      expect(laidSeed).not.toMatch(/password:|ssh_pwauth: true/);
    }, buildTimeoutMs);

    it(`boots with two NICs (the ${kernel === 'builder' ? "builder's kernel" : "image's kernel"}): both slaves, the kernel's primary eth0, fails over to eth1 and back, three flaps, the backup re-enslaved`, async () => {
      const result = await failoverTest({
        image,
        flaps: 3,
        timeoutSeconds: scenarioTimeoutMs / 1000 - 60,
        say: (message) => process.stderr.write(`[boot ${kind}] ${message}\n`),
      });
      process.stderr.write(`${formatFigures(result.report)}\n${formatVerdict(result.report)}\nreport: ${result.reportFile}\n`);
      const failed = result.report.checks.filter((check) => !check.ok);
      expect(failed, result.report.serialLog ? `serial log: ${result.report.serialLog}` : undefined).toEqual([]);
      expect(result.report.verdict).toBe('pass');
      expect(result.report.figures.flaps).toHaveLength(3);
      expect(result.report.kernel?.from).toBe(kernel);
    }, scenarioTimeoutMs);
  });
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}

/**
 * Runs `script` in the builder with the image's root partition copied to /tmp/r.img and `r` a
 * debugfs request on it (`r 'stat /etc/shadow'`).
 */
async function inRoot(dir: string, img: string, script: string): Promise<string[]> {
  const mbr = parseMbr(await readFirstSector(join(dir, img)));
  const root = mbr?.partitions[1];
  if (!root) throw new Error(`${img} has no root partition`);
  return inBuilder(
    dir,
    `dd if=/out/${img} of=/tmp/r.img bs=4M iflag=skip_bytes,count_bytes skip=${root.startSector * sectorBytes} count=${root.sectors * sectorBytes} status=none
     r() { debugfs -R "$1" /tmp/r.img 2>/dev/null; }
     ${script}`,
  );
}
