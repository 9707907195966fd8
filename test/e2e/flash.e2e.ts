/**
 * `pibond flash` for real, as root: the e2e build's compressed image onto a loop device over a
 * sparse 2.2 GiB file (its partition-table area and sample regions filled with 0xff, so that bytes
 * that should not be written show), with a card setting. Then, from outside pibond: the exit
 * status, the bytes the kernel counted as written to the device against the image's used blocks,
 * the mapped bytes equal to the image's (the card slot holding the settings instead), both file
 * systems clean, and the refusals: a loop device without --allow-loop, and the disk holding / as
 * the real sysfs shows it.
 */
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { $ } from 'zx';
import { ensureBuilderImage } from '../../scripts/builder/builder-image.ts';
import { listDisks } from '../../scripts/flash/devices.ts';
import { parseBmap } from '../../scripts/lib/bmap.ts';
import { connectDocker, runContainer } from '../../scripts/lib/docker.ts';
import { readManifest } from '../../scripts/lib/manifest.ts';
import { parseMbr, readFirstSector, sectorBytes } from '../../scripts/lib/mbr.ts';
import { type CliResult, runPibond } from './_pibond.ts';

/** 2.2 GiB, in whole MiB. */
const cardBytes = 2253 * 1024 * 1024;
const mib = 1024 * 1024;

interface Flashed {
  result: CliResult;
  /** What the kernel counted as written to the loop device (its /sys/block/<loop>/stat). */
  deviceWrittenBytes: number;
  usedBytes: number;
  mismatches: string[];
  slot: string;
  fsck: { boot: string; root: string };
  refusedLoop: CliResult;
  unconfirmed: CliResult;
}

/** Sectors written to a block device so far, as the kernel counts them. */
async function sectorsWritten(loop: string): Promise<number> {
  const fields = (await readFile(`/sys/block/${loop.replace('/dev/', '')}/stat`, 'utf8')).trim().split(/\s+/);
  return Number(fields[6]);
}

/** The card before the write: sparse, with 0xff over the partition-table area, every 256 MiB and the end. */
async function prefilledCard(file: string): Promise<void> {
  const handle = await open(file, 'w');
  try {
    await handle.truncate(cardBytes);
    const ones = Buffer.alloc(4 * mib, 0xff);
    const at = [0, 4 * mib];
    for (let offset = 256 * mib; offset < cardBytes - 8 * mib; offset += 256 * mib) at.push(offset);
    at.push(cardBytes - 8 * mib, cardBytes - 4 * mib);
    for (const offset of at) await handle.write(ones, 0, ones.length, offset);
  } finally {
    await handle.close();
  }
}

/** Compares the card with the image over the bmap's ranges, minus the settings slot. */
async function compareMapped(image: string, device: string, slot: { offset: number; bytes: number }): Promise<string[]> {
  const bmap = parseBmap(await readFile(`${image}.bmap`, 'utf8'), `${image}.bmap`);
  const [source, card] = await Promise.all([open(image, 'r'), open(device, 'r')]);
  const mismatches: string[] = [];
  try {
    const a = Buffer.alloc(4 * mib);
    const b = Buffer.alloc(4 * mib);
    for (const range of bmap.ranges) {
      const end = Math.min((range.last + 1) * bmap.blockSize, bmap.imageSize);
      for (let at = range.first * bmap.blockSize; at < end; at += 4 * mib) {
        const length = Math.min(4 * mib, end - at);
        await source.read(a, 0, length, at);
        await card.read(b, 0, length, at);
        // The slot holds the card's settings instead of the image's placeholder.
        const from = Math.max(at, slot.offset) - at;
        const to = Math.min(at + length, slot.offset + slot.bytes) - at;
        if (from < to) {
          a.fill(0, from, to);
          b.fill(0, from, to);
        }
        if (!a.subarray(0, length).equals(b.subarray(0, length))) mismatches.push(`bytes ${at}-${at + length - 1}`);
      }
    }
  } finally {
    await Promise.all([source.close(), card.close()]);
  }
  return mismatches;
}

/** fsck.vfat -n on a copy of the boot partition, in the builder image (a host may lack dosfstools). */
async function fsckVfat(bootCopy: string): Promise<string> {
  const docker = await connectDocker();
  const builder = await ensureBuilderImage(docker, 'http://deb.debian.org/debian', () => {}, () => {});
  const lines: string[] = [];
  await runContainer(docker, { image: builder, cmd: ['fsck.vfat', '-n', '/boot.img'], binds: [`${bootCopy}:/boot.img:ro`], sink: (line) => lines.push(line) });
  return lines.join('\n');
}

async function flashOntoLoop(image: string): Promise<Flashed> {
  const dir = await mkdtemp(join(tmpdir(), 'pibond-flash-e2e-'));
  const file = join(dir, 'card.img');
  let loop: string | undefined;
  const partitionLoops: string[] = [];
  try {
    await prefilledCard(file);
    loop = (await $`losetup --find --show --partscan ${file}`).stdout.trim();
    const refusedLoop = await runPibond(['flash', `${image}.zst`, loop, '--yes']);
    const unconfirmed = await runPibond(['flash', `${image}.zst`, loop, '--allow-loop']);
    const before = await sectorsWritten(loop);
    const result = await runPibond(['flash', `${image}.zst`, loop, '--yes', '--allow-loop', '--hostname', 'e2e-card']);
    const deviceWrittenBytes = ((await sectorsWritten(loop)) - before) * 512;

    const manifest = (await readManifest(image.replace(/\.img$/, '.manifest.json'))) as unknown as { card: { offset: number; bytes: number } };
    const cardHandle = await open(loop, 'r');
    const slotBytes = Buffer.alloc(manifest.card.bytes);
    await cardHandle.read(slotBytes, 0, slotBytes.length, manifest.card.offset);
    await cardHandle.close();

    // Each partition through a read-only loop device of its own (some kernels, like this project's
    // CI VM's, make no partition devices for loop devices).
    const mbr = parseMbr(await readFirstSector(loop));
    const [boot, root] = mbr?.partitions ?? [];
    if (!boot || !root) throw new Error(`${loop} has no boot and root partitions after the flash`);
    const bootCopy = join(dir, 'boot.img');
    await $`dd if=${loop} of=${bootCopy} bs=4M iflag=skip_bytes,count_bytes skip=${boot.startSector * sectorBytes} count=${boot.sectors * sectorBytes} status=none`;
    const rootLoop = (await $`losetup --find --show --read-only --offset ${root.startSector * sectorBytes} --sizelimit ${root.sectors * sectorBytes} ${loop}`).stdout.trim();
    partitionLoops.push(rootLoop);
    const e2fsck = await $({ nothrow: true })`e2fsck -fn ${rootLoop}`;
    const fsck = { boot: await fsckVfat(bootCopy), root: `${e2fsck.stdout}${e2fsck.stderr}exit ${e2fsck.exitCode}` };
    return {
      result,
      deviceWrittenBytes,
      usedBytes: (await stat(image)).blocks * 512,
      mismatches: await compareMapped(image, loop, manifest.card),
      slot: slotBytes.toString('utf8'),
      fsck,
      refusedLoop,
      unconfirmed,
    };
  } finally {
    for (const device of [...partitionLoops, loop]) if (device) await $({ nothrow: true })`losetup -d ${device}`;
    await rm(dir, { recursive: true, force: true });
  }
}

export function describeFlash(image: () => string): void {
  describe('pibond flash (loop device)', { tags: ['slow'] }, () => {
    let flashed: Flashed | undefined;
    const seen = () => {
      if (!flashed) throw new Error('the flash did not run');
      return flashed;
    };

    it('flashes the compressed image onto a loop device with a card setting', async () => {
      flashed = await flashOntoLoop(image());
      expect(flashed.result.code, flashed.result.stderr).toBe(0);
      expect(flashed.result.stderr).toMatch(/verified in [\d.]+ s\. \/dev\/loop\d+ is not mounted and safe to remove\./);
    }, 20 * 60_000);

    it('refuses the loop device without --allow-loop', () => {
      const { refusedLoop } = seen();
      expect(refusedLoop.code).toBe(1);
      expect(refusedLoop.stderr).toMatch(/refusing to flash \/dev\/loop\d+:\n {2}- \/dev\/loop\d+ is a loop device .*--allow-loop/);
    });

    it('does not write without a terminal to ask on, unless --yes', () => {
      const { unconfirmed } = seen();
      expect(unconfirmed.code).toBe(1);
      expect(unconfirmed.stderr).toMatch(/not asking without a terminal: pass --yes to flash \/dev\/loop\d+ from a script/);
    });

    it('writes at most 1.1 times the image\'s used blocks', () => {
      const { deviceWrittenBytes, usedBytes } = seen();
      process.stderr.write(`[flash] written ${deviceWrittenBytes} bytes, the image uses ${usedBytes} (${(deviceWrittenBytes / usedBytes).toFixed(3)}x)\n`);
      expect(deviceWrittenBytes).toBeGreaterThan(0);
      expect(deviceWrittenBytes).toBeLessThanOrEqual(1.1 * usedBytes);
    });

    it('the card holds the image\'s data, and the settings in their slot', () => {
      const { mismatches, slot } = seen();
      expect(mismatches).toEqual([]);
      expect(slot).toContain('hostname: e2e-card');
    });

    it('both file systems are clean', () => {
      const { fsck } = seen();
      expect(fsck.boot).not.toMatch(/differ|error|corrupt|Free cluster summary wrong|Dirty bit/i);
      expect(fsck.root).toMatch(/exit 0$/);
    });

    it('refuses the disk holding / (real sysfs)', async () => {
      const root = (await listDisks()).find((disk) => disk.holdsRoot);
      const result = await runPibond(['flash', `${image()}.zst`, root?.path ?? '/dev/root-disk-not-found', '--yes', '--allow-loop']);
      expect(result.code).toBe(1);
      // In a container / may be an overlay on no disk of this host's: then the device is simply not found.
      expect(result.stderr).toMatch(root ? /holds \/ \(the running system\)/ : /no such device/);
    });
  });
}

