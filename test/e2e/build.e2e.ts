/**
 * The build, end to end, with the real Docker engine: the default definition becomes an image,
 * which is then inspected from outside (no boot): partition table, both file systems, the bond's
 * configuration and units, no SSH host keys, the self-check. A second build with a changed
 * overlay must reuse the cached root filesystem; an interrupted build must leave nothing behind.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectDocker, listContainers } from '../../scripts/lib/docker.ts';
import { readManifest, readTimings } from '../../scripts/lib/manifest.ts';
import { type Mbr, type Partition, parseMbr, readFirstSector, sectorBytes } from '../../scripts/lib/mbr.ts';
import { applianceModules } from '../../scripts/image/packages.ts';
import { inBuilder } from './_builder.ts';
import { runPibond, startPibond } from './_pibond.ts';

const name = 'pibond-bookworm-arm64';

/** The image's MBR (disk id, partitions), which must be there. */
async function readMbr(image: string): Promise<Mbr> {
  const mbr = parseMbr(await readFirstSector(image));
  if (!mbr) throw new Error(`${image} has no MBR`);
  return mbr;
}

/** A shell command copying one partition out of the image (in big blocks: 512-byte ones are slow). */
function extractPartition(image: string, partition: Partition, to: string): string {
  return `dd if=${image} of=${to} bs=4M iflag=skip_bytes,count_bytes skip=${partition.startSector * sectorBytes} count=${partition.sectors * sectorBytes} status=none`;
}

async function buildContainers(): Promise<string[]> {
  const docker = await connectDocker();
  const list = await listContainers(docker, ['org.pibond.role=build']);
  return list.map((c) => c.Id);
}

export function describeBuild(outDir: string): void {
  const image = join(outDir, `${name}.img`);

  describe('pibond build (Docker)', { tags: ['slow'] }, () => {
    it('builds the default definition into out/', async () => {
      await mkdir(outDir, { recursive: true });
      const result = await runPibond(['build', 'images/default.yaml', '--out', outDir]);
      expect(result.stderr + result.stdout).toContain('Check the boot chain');
      expect(result.code, result.stderr).toBe(0);
      const files = await readdir(outDir);
      for (const suffix of ['.img', '.img.zst', '.img.sha256', '.manifest.json', '.timings.json', '.build.log']) expect(files).toContain(`${name}${suffix}`);
      expect(files.filter((f) => f.startsWith('.staging'))).toEqual([]);
    });

    it('writes an MBR with a FAT32 boot partition and a Linux root partition', async () => {
      const mbr = await readMbr(image);
      expect(mbr.partitions[0]).toMatchObject({ bootable: true, type: 0x0c, startSector: 8192 });
      expect(mbr.partitions[1]?.type).toBe(0x83);
      const manifest = await readManifest(join(outDir, `${name}.manifest.json`));
      expect(mbr.diskId).toBe(manifest.diskId);
    });

    it('has checksums that match and a manifest listing every package', async () => {
      const sums = (await readFile(join(outDir, `${name}.img.sha256`), 'utf8')).trim().split('\n');
      const [sum, file] = sums[0]!.split(/\s+/);
      expect(file).toBe(`${name}.img`);
      const hash = createHash('sha256');
      for await (const chunk of createReadStream(image)) hash.update(chunk as Buffer);
      expect(hash.digest('hex')).toBe(sum);
      const manifest = await readManifest(join(outDir, `${name}.manifest.json`));
      const packages = manifest.packages.map((p) => p.name);
      for (const p of ['ifenslave', 'ifupdown', 'linux-image-arm64', 'raspi-firmware', 'nodejs', 'openssh-server']) expect(packages).toContain(p);
      const timings = await readTimings(join(outDir, `${name}.timings.json`));
      expect(timings.steps.map((s) => s.name)).toContain('Root filesystem');
    });

    it('boot partition: firmware, kernel, initrd, cmdline.txt naming root by PARTUUID', async () => {
      const mbr = await readMbr(image);
      const at = `/out/${name}.img@@${mbr.partitions[0]!.startSector * sectorBytes}`;
      const lines = await inBuilder(outDir, `mdir -b -i ${at} ::/ ; echo ---; mtype -i ${at} ::cmdline.txt; echo ---; mtype -i ${at} ::config.txt`);
      const [listing, cmdline] = lines.join('\n').split('---\n');
      for (const file of ['start4.elf', 'fixup4.dat', 'bootcode.bin', 'bcm2711-rpi-4-b.dtb', 'bcm2837-rpi-3-b.dtb', 'config.txt', 'cmdline.txt']) {
        expect(listing).toContain(`::/${file}`);
      }
      expect(listing).toMatch(/::\/vmlinuz-\S+-arm64/);
      expect(listing).toMatch(/::\/initrd\.img-\S+-arm64/);
      // The legacy-camera and debug firmware are left out (config.txt never selects them); the cut-down one stays.
      expect(listing).toContain('::/start_cd.elf');
      for (const file of ['start_x.elf', 'start_db.elf', 'start4x.elf', 'start4db.elf', 'fixup_x.dat', 'fixup4db.dat']) expect(listing).not.toContain(`::/${file}`);
      expect(cmdline).toContain(`root=PARTUUID=${mbr.diskId}-02 `);
      expect(cmdline).toContain('net.ifnames=0');
    });

    it('root partition: the bond, its units, the status service, no SSH host keys, empty machine-id, CA certificates linked, dpkg syncing', async () => {
      const mbr = await readMbr(image);
      const root = `/tmp/root.img`;
      const lines = await inBuilder(
        outDir,
        `${extractPartition(`/out/${name}.img`, mbr.partitions[1]!, root)}
         r() { debugfs -R "$1" ${root} 2>/dev/null; }
         echo "== interfaces"; r 'cat /etc/network/interfaces'; for f in $(r 'ls -p /etc/network/interfaces.d' | cut -d/ -f6 | grep -v '^\\.*$'); do r "cat /etc/network/interfaces.d/$f"; done
         echo "== modules"; r 'cat /etc/modules-load.d/bonding.conf'
         echo "== ssh"; r 'ls -p /etc/ssh' | cut -d/ -f6
         echo "== machine-id"; r 'stat /etc/machine-id' | sed -n 's/.*Size: \\([0-9]*\\).*/size=\\1/p'
         echo "== wants"; r 'ls -p /etc/systemd/system/multi-user.target.wants' | cut -d/ -f6
         echo "== fstab"; r 'cat /etc/fstab'
         echo "== dpkg"; r 'cat /etc/dpkg/dpkg.cfg.d/99mmdebstrap'
         echo "== certs"; r 'rdump /etc/ssl/certs /tmp'; find /tmp/certs -type l -printf '%f %l\n' | sort
         echo "== bundle"; grep -c 'BEGIN CERTIFICATE' /tmp/certs/ca-certificates.crt
         echo "== end"`,
      );
      const text = lines.join('\n');
      const section = (title: string) => text.split(`== ${title}\n`)[1]!.split('\n== ')[0]!;
      expect(section('interfaces')).toMatch(/auto bond0\s+iface bond0 inet dhcp/);
      expect(section('interfaces')).toMatch(/bond-primary eth0/);
      expect(section('interfaces')).toMatch(/bond-slaves eth0 eth1/);
      expect(section('modules')).toContain('bonding');
      expect(section('ssh')).toContain('sshd_config');
      expect(section('ssh')).not.toMatch(/ssh_host_\w+_key/);
      expect(section('machine-id')).toContain('size=0');
      expect(section('wants')).toContain('bond-status.service');
      expect(section('wants')).toContain('pibond-ssh-keygen.service');
      expect(section('fstab')).toContain(`PARTUUID=${mbr.diskId}-02`);
      // The device's dpkg syncs what it unpacks: force-unsafe-io was for the bootstrap only.
      expect(section('dpkg')).toContain('path-exclude=/usr/share/doc/*');
      expect(section('dpkg')).not.toContain('unsafe-io');
      // update-ca-certificates ran once, outside the chroot: a link per certificate into the
      // image's /usr/share/ca-certificates, a subject-hash link to each, all in the bundle.
      const links = section('certs').split('\n').filter(Boolean).map((line) => line.split(' '));
      const pems = links.filter(([name]) => name!.endsWith('.pem'));
      const hashes = links.filter(([name]) => /^[0-9a-f]{8}\.\d$/.test(name!));
      expect(pems.length).toBeGreaterThan(100);
      for (const [name, target] of pems) expect(target, name).toMatch(/^\/usr\/share\/ca-certificates\/mozilla\/.+\.crt$/);
      expect(hashes.length).toBe(pems.length);
      for (const [name, target] of hashes) expect(pems.map(([pem]) => pem), name).toContain(target);
      expect(Number(section('bundle').trim())).toBe(pems.length);
    });

    it('root partition: what a Pi cannot use is left out, nothing of the bootstrap\'s native dpkg-deb stays, what the appliance needs is there; the self-check names a dependency taken away', async () => {
      const mbr = await readMbr(image);
      const root = '/tmp/root.img';
      const check = (modules: readonly string[]) =>
        `/usr/local/lib/pibond/check-boot-chain.mjs '${JSON.stringify({ image: `/out/${name}.img`, root: '/tmp/r', requiredModules: [], applianceModules: modules })}' || echo "exit=$?"`;
      const lines = await inBuilder(
        outDir,
        `${extractPartition(`/out/${name}.img`, mbr.partitions[1]!, root)}
         mkdir -p /tmp/r/usr/lib
         debugfs -R 'rdump /usr/lib/modules /tmp/r/usr/lib' ${root} 2>/dev/null
         kernel=$(echo /tmp/r/usr/lib/modules/*/kernel)
         echo "== trees"; debugfs -R 'rdump /usr/lib/linux-image-'"$(basename "$(dirname "$kernel")")"' /tmp' ${root} 2>/dev/null; (cd /tmp/linux-image-* && find . -type f | cut -d/ -f2 | sort | uniq -c)
         echo "== firmware"; debugfs -R 'ls -p /usr/lib/raspi-firmware' ${root} 2>/dev/null | cut -d/ -f6 | grep -v '^\\.*$'
         echo "== modules"; for dir in drivers/media/dvb-frontends sound/pci sound/usb drivers/net/wireless/realtek drivers/net/wireless/broadcom drivers/media/usb/uvc drivers/net/bonding; do [ -d "$kernel/$dir" ] && echo "$dir"; done
         echo "== dpkg-deb"; debugfs -R 'dump /usr/bin/dpkg-deb /tmp/dpkg-deb' ${root} 2>/dev/null; od -An -tu2 -j18 -N2 /tmp/dpkg-deb
         debugfs -R 'cat /var/lib/dpkg/diversions' ${root} 2>/dev/null; debugfs -R 'ls -p /usr/lib' ${root} 2>/dev/null | cut -d/ -f6
         echo "== whole"; ${check(applianceModules)}
         # As the build leaves a module out: not there, nor in modules.dep (depmod lists what is there).
         rm "$kernel/sound/soc/snd-soc-core.ko"; sed -i '/snd-soc-core\\.ko:/d' "$kernel/../modules.dep"
         echo "== taken"; ${check(['vc4', 'bonding'])}
         echo "== end"`,
        { keepStderr: true },
      );
      const text = lines.join('\n');
      const section = (title: string) => text.split(`== ${title}\n`)[1]!.split('\n== ')[0]!;
      // Other boards' device trees are left out (dpkg keeps their empty directories): only the
      // Broadcom ones, which raspi-firmware copies to the boot partition.
      expect(section('trees').trim()).toMatch(/^\d+ broadcom$/);
      expect(section('firmware')).toContain('start_cd.elf');
      expect(section('firmware')).not.toMatch(/start_x|start_db|start4x|start4db|fixup_x|fixup4db/);
      expect(section('modules').split('\n').filter(Boolean)).toEqual(['drivers/net/wireless/broadcom', 'drivers/media/usb/uvc', 'drivers/net/bonding']);
      // The builder's own dpkg-deb decompressed the packages during the bootstrap: none of it stays.
      const dpkgDeb = section('dpkg-deb').split('\n');
      expect(dpkgDeb[0]!.trim(), 'ELF machine of /usr/bin/dpkg-deb (183: aarch64)').toBe('183');
      expect(dpkgDeb.slice(1)).not.toContain('/usr/bin/dpkg-deb');
      expect(dpkgDeb.slice(1).some((line) => line.includes('pibond-native'))).toBe(false);
      expect(section('whole')).toMatch(/^self-check: boot chain OK \(\d+ modules in the initrd, \d+ the appliance needs on the root\)$/m);
      expect(section('whole')).not.toContain('exit=');
      // vc4 needs snd-soc-core (HDMI audio); modules.dep, made from what is there, would not say so.
      expect(section('taken')).toContain('self-check: the root file system lacks kernel module snd_soc_core, which vc4 needs');
      expect(section('taken')).toContain('exit=1');
    });

    it('reuses the cached root filesystem when only an overlay changed', async () => {
      const overlays = await mkdtemp(join(tmpdir(), 'pibond-overlays-'));
      const rebuildOut = await mkdtemp(join(tmpdir(), 'pibond-out-'));
      try {
        await mkdir(join(overlays, '90-e2e', 'rootfs', 'etc'), { recursive: true });
        await writeFile(join(overlays, '90-e2e', 'rootfs', 'etc', 'pibond-e2e'), 'changed overlay\n');
        const result = await runPibond(['build', 'images/default.yaml', '--out', rebuildOut, '--overlays', overlays]);
        expect(result.code, result.stderr).toBe(0);
        expect(result.stdout).toContain('root filesystem from the cache');
        const manifest = await readManifest(join(rebuildOut, `${name}.manifest.json`));
        expect(manifest.rootfsCache?.key).toBe((await readManifest(join(outDir, `${name}.manifest.json`))).rootfsCache?.key);
        expect((await readTimings(join(rebuildOut, `${name}.timings.json`))).rootfsFromCache).toBe(true);
        const mbr = await readMbr(join(rebuildOut, `${name}.img`));
        const lines = await inBuilder(
          rebuildOut,
          `${extractPartition(`/out/${name}.img`, mbr.partitions[1]!, '/tmp/r.img')}; debugfs -R 'cat /etc/pibond-e2e' /tmp/r.img 2>/dev/null`,
        );
        expect(lines).toContain('changed overlay');
      } finally {
        await rm(overlays, { recursive: true, force: true });
        await rm(rebuildOut, { recursive: true, force: true });
      }
    });

    it('an interrupted build leaves no container and no partial output, and the next build works', async () => {
      const interruptedOut = await mkdtemp(join(tmpdir(), 'pibond-int-'));
      try {
        const before = await buildContainers();
        const run = startPibond(['build', 'images/default.yaml', '--out', interruptedOut]);
        // Interrupt while the build container exists, i.e. mid-build.
        const deadline = Date.now() + 120_000;
        while ((await buildContainers()).length <= before.length) {
          if (Date.now() > deadline) throw new Error('the build container never appeared');
          await new Promise((r) => setTimeout(r, 200));
        }
        run.child.kill('SIGINT');
        const result = await run.done;
        expect(result.code).toBe(130);
        expect(result.stderr).toContain('interrupted by SIGINT');
        expect(await buildContainers()).toEqual(before);
        const left = (await readdir(interruptedOut)).filter((f) => !f.endsWith('.build.log'));
        expect(left).toEqual([]);
        const again = await runPibond(['build', 'images/default.yaml', '--out', interruptedOut]);
        expect(again.code, again.stderr).toBe(0);
      } finally {
        await rm(interruptedOut, { recursive: true, force: true });
      }
    });
  });
}
