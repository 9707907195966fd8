/**
 * The outputs for flashing tools, on the image describeBuild made: the block map loses no data and
 * maps no more than the file systems use; Debian's `bmaptool copy` writes the image with it onto a
 * used card (a loop device over a file of 0xff bytes), whose file systems then check clean and whose
 * mapped blocks are the image's; the card-settings slot is where the manifest says; the Raspberry
 * Pi Imager entry describes the published files. Needs root (losetup) and Docker.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { type FileHandle, mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { type Bmap, mappedBlocksCount, mappedBytes, parseBmap, usedBlocks } from '../../scripts/lib/bmap.ts';
import type { ImagerRepository } from '../../scripts/lib/imager.ts';
import { readManifest } from '../../scripts/lib/manifest.ts';
import { inBuilder } from './_builder.ts';
import { type Partition, parseMbr, readFirstSector, sectorBytes } from '../../scripts/lib/mbr.ts';

const name = 'pibond-bookworm-arm64';
const run = promisify(execFile);

async function readBmap(outDir: string): Promise<Bmap> {
  const file = join(outDir, `${name}.img.bmap`);
  return parseBmap(await readFile(file, 'utf8'), file);
}

async function partitions(image: string): Promise<{ boot: Partition; root: Partition }> {
  const mbr = parseMbr(await readFirstSector(image));
  const [boot, root] = mbr?.partitions ?? [];
  if (!boot || !root) throw new Error(`${image} has no boot and root partition`);
  return { boot, root };
}

async function readAt(handle: FileHandle, position: number, bytes: number): Promise<Buffer> {
  const { buffer, bytesRead } = await handle.read(Buffer.alloc(bytes), 0, bytes, position);
  return buffer.subarray(0, bytesRead);
}

/** A file of `bytes` 0xff bytes behind a loop device: an SD card that held something else. */
async function usedCard(bytes: number): Promise<{ device: string; remove(): Promise<void> }> {
  const dir = await mkdtemp(join(tmpdir(), 'pibond-card-'));
  const file = join(dir, 'card');
  const handle = await open(file, 'w');
  try {
    const chunk = Buffer.alloc(8 * 1024 * 1024, 0xff);
    for (let position = 0; position < bytes; position += chunk.length) await handle.write(chunk, 0, Math.min(chunk.length, bytes - position), position);
  } finally {
    await handle.close();
  }
  const device = (await run('losetup', ['--find', '--show', file])).stdout.trim();
  return {
    device,
    async remove() {
      await run('losetup', ['--detach', device]);
      await rm(dir, { recursive: true, force: true });
    },
  };
}

export function describeBmap(outDir: string): void {
  const image = join(outDir, `${name}.img`);

  describe('outputs for flashing tools', { tags: ['slow'] }, () => {
    it('the block map covers every non-zero block, with right checksums, and maps no more than the file systems use', async () => {
      const bmap = await readBmap(outDir);
      expect(bmap.imageSize).toBe((await stat(image)).size);
      const handle = await open(image, 'r');
      try {
        let next = 0;
        const zeros = Buffer.alloc(2048 * bmap.blockSize);
        const blocksBetween = async (from: number, to: number) => {
          for (let block = from; block < to; block += 2048) {
            const bytes = await readAt(handle, block * bmap.blockSize, Math.min(2048, to - block) * bmap.blockSize);
            if (bytes.equals(zeros.subarray(0, bytes.length))) continue;
            const nonZero = bytes.findIndex((byte) => byte !== 0);
            expect.fail(`byte ${block * bmap.blockSize + nonZero} of the image is not zero but in no range of the block map`);
          }
        };
        for (const range of bmap.ranges) {
          await blocksBetween(next, range.first);
          const hash = createHash('sha256').update(await readAt(handle, range.first * bmap.blockSize, (range.last - range.first + 1) * bmap.blockSize));
          expect(hash.digest('hex'), `range ${range.first}-${range.last}`).toBe(range.sha256);
          next = range.last + 1;
        }
        await blocksBetween(next, Math.ceil(bmap.imageSize / bmap.blockSize));
      } finally {
        await handle.close();
      }
      const used = await usedBlocks(image);
      console.log(`bmap: image ${bmap.imageSize} bytes, mapped ${mappedBytes(bmap)} bytes (${mappedBlocksCount(bmap)} blocks), used by the file systems ${used} blocks`);
      expect(mappedBlocksCount(bmap)).toBeLessThanOrEqual(used);
    });

    it('bmaptool copy writes it onto a used card (all 0xff): both file systems check clean, the mapped blocks are the image\'s', async () => {
      const bmap = await readBmap(outDir);
      const { boot, root } = await partitions(image);
      const card = await usedCard(bmap.imageSize);
      const dev = card.device;
      const lines = await inBuilder(
        outDir,
        `bmaptool copy --bmap /out/${name}.img.bmap /out/${name}.img.zst ${dev}
         dd if=${dev} of=/tmp/boot.img bs=4M iflag=skip_bytes,count_bytes skip=${boot.startSector * sectorBytes} count=${boot.sectors * sectorBytes} status=none
         echo "== fsck.vfat"; fsck.vfat -n /tmp/boot.img
         echo "== e2fsck"; e2fsck -fn '${dev}?offset=${root.startSector * sectorBytes}'
         echo "== ranges"
         ${bmap.ranges.map((r) => `echo "${r.first}-${r.last} $(dd if=${dev} bs=${bmap.blockSize} skip=${r.first} count=${r.last - r.first + 1} status=none | sha256sum | cut -d' ' -f1)"`).join('\n')}`,
        { devices: [dev], keepStderr: true },
      ).finally(() => card.remove());
      const text = lines.join('\n');
      expect(text).toMatch(/bmaptool: info: copying time: .*/);
      console.log(text.match(/bmaptool: info: copying time: .*/)?.[0]);
      const section = (title: string) => text.split(`== ${title}\n`)[1]!.split('\n== ')[0]!;
      expect(section('fsck.vfat')).not.toMatch(/differ|Reclaimed|lost|bad|Free cluster summary/i);
      expect(section('e2fsck')).toMatch(/rootfs: \d+\/\d+ files/);
      expect(section('ranges').trim().split('\n')).toEqual(bmap.ranges.map((r) => `${r.first}-${r.last} ${r.sha256}`));
    });

    it('the card-settings slot is where the manifest says, 64 KiB of its placeholder', async () => {
      const manifest = await readManifest(join(outDir, `${name}.manifest.json`));
      expect(manifest.card).toMatchObject({ file: 'pibond-card.yaml', bytes: 65536 });
      const handle = await open(image, 'r');
      try {
        const slot = await readAt(handle, manifest.card.offset, manifest.card.bytes);
        const line = '# pibond card settings: none (pibond flash --hostname/--address/--ssh-key writes them here)\n';
        expect(slot.subarray(0, line.length).toString()).toBe(line);
        expect(slot.subarray(line.length).every((byte) => byte === 0x0a)).toBe(true);
      } finally {
        await handle.close();
      }
      const { boot } = await partitions(image);
      const lines = await inBuilder(outDir, `mshowfat -i /out/${name}.img@@${boot.startSector * sectorBytes} ::/pibond-card.yaml`);
      expect(lines.join('\n')).toMatch(/^::\/pibond-card\.yaml <\d+-\d+>$/m);
    });

    it('the Raspberry Pi Imager entry and the manifest describe the published files', async () => {
      const repository = JSON.parse(await readFile(join(outDir, `${name}.rpi-imager.json`), 'utf8')) as ImagerRepository;
      const os = repository.os_list[0]!;
      const sha256 = async (file: string) => {
        const hash = createHash('sha256');
        for await (const chunk of createReadStream(join(outDir, file))) hash.update(chunk as Buffer);
        return hash.digest('hex');
      };
      expect(os.url).toBe(`${name}.img.zst`);
      expect(os.extract_size).toBe((await stat(image)).size);
      expect(os.extract_sha256).toBe(await sha256(`${name}.img`));
      expect(os.image_download_size).toBe((await stat(join(outDir, os.url))).size);
      expect(os.image_download_sha256).toBe(await sha256(os.url));
      const manifest = await readManifest(join(outDir, `${name}.manifest.json`));
      expect(Object.keys(manifest.files)).toEqual(expect.arrayContaining([`${name}.img.bmap`, `${name}.rpi-imager.json`]));
    });
  });
}
