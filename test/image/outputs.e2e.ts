/**
 * outputs.mjs in the builder image, on a small sparse image with data here and there (across a
 * chunk boundary, up to one, over a whole chunk, in the last partial block, a stretch of written
 * zeros, and a chunk of hole): the .img.zst is the image
 * again for `zstd -dc` and for pibond flash's bundled decoder and its per-range checks; the block
 * map's ranges are the data written; the whole file's sha256 is sha256sum's; a second run takes
 * every frame from the cache and gives the same bytes, and so does one that compresses them all
 * again; the cache is pruned to a few images' frames. Needs Docker (slow): run from the single slow
 * entry, test/e2e/e2e.test.ts, after the build has started the engine and made the builder image.
 */
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readFile, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilderImage } from '../../scripts/builder/builder-image.ts';
import { paths } from '../../scripts/image/context.ts';
import { type OutputsReport, parseOutputsReport, zstdFrameCache } from '../../scripts/image/steps/80-outputs.ts';
import { openImageStream } from '../../scripts/flash/source.ts';
import { writeAndVerify, writePlan } from '../../scripts/flash/writer.ts';
import type { Bmap } from '../../scripts/lib/bmap.ts';
import { connectDocker, runContainer } from '../../scripts/lib/docker.ts';

const MiB = 1024 * 1024;
/** Five chunks of 16 MiB and a bit: the last chunk and the last block are partial. */
const imageSize = 88 * MiB + 12_345;
/**
 * What the image holds where: block-aligned, as a file system writes (the tail runs to the end).
 * Data across a chunk boundary, data ending exactly at one, a chunk that is all hole (32-48 MiB),
 * and a range longer than a chunk (50-82 MiB: the read pass hands the hashing worker its pieces).
 */
const written: { offset: number; bytes: number; fill: 'text' | 'zeros' }[] = [
  { offset: 0, bytes: 4096, fill: 'text' },
  { offset: 1 * MiB, bytes: 3 * MiB, fill: 'text' },
  { offset: 16 * MiB - 8192, bytes: 16384, fill: 'text' },
  { offset: 20 * MiB, bytes: 2 * MiB, fill: 'zeros' },
  { offset: 24 * MiB, bytes: 8 * MiB, fill: 'text' },
  { offset: 50 * MiB, bytes: 32 * MiB, fill: 'text' },
  { offset: 88 * MiB, bytes: 12_345, fill: 'text' },
];

/** Compressible but not trivial: numbered lines, as a file system full of text would be. */
function textAt(offset: number, bytes: number): Buffer {
  let text = '';
  for (let line = offset / 64; text.length < bytes; line++) text += `line ${line} of the test image, ${(line * 2654435761) % 1000003}\n`;
  return Buffer.from(text.slice(0, bytes));
}

export function describeOutputs(): void {
  describe('outputs.mjs in the builder image', { tags: ['slow'] }, () => {
    let dir: string;
    let builderImage: string;
    const outDir = () => join(dir, 'out');
    const cacheDir = () => join(dir, 'cache');
    const zst = () => join(outDir(), 't.img.zst');

    async function runOutputs(reuse: boolean): Promise<OutputsReport> {
      const lines: string[] = [];
      const argument = {
        dir: '/out',
        image: 't.img',
        compression: 'zstd',
        checksums: 't.img.sha256',
        bmapRanges: '.bmap-ranges.json',
        root: paths.rootfs,
        frames: { dir: zstdFrameCache, reuse },
      };
      await runContainer(await connectDocker(), {
        image: builderImage,
        cmd: [`${paths.tools}/outputs.mjs`, JSON.stringify(argument)],
        binds: [`${outDir()}:/out`, `${cacheDir()}:${paths.cache}`, `${join(dir, 'root')}:${paths.rootfs}:ro`],
        sink: (line, stream) => (stream === 'stdout' ? lines.push(line) : process.stderr.write(`  ${line}\n`)),
      });
      return parseOutputsReport(lines);
    }

    async function inBuilder(script: string): Promise<string> {
      const lines: string[] = [];
      await runContainer(await connectDocker(), {
        image: builderImage,
        cmd: ['bash', '-euo', 'pipefail', '-c', script],
        binds: [`${outDir()}:/out:ro`],
        sink: (line, stream) => (stream === 'stdout' ? lines.push(line) : process.stderr.write(`  ${line}\n`)),
      });
      return lines.join('\n');
    }

    const frames = async () => (await readdir(join(cacheDir(), 'zstd-frames'))).sort();
    let image: Buffer;
    let first: OutputsReport;
    let firstZst: Buffer;

    beforeAll(async () => {
      builderImage = await ensureBuilderImage(await connectDocker(), 'http://deb.debian.org/debian', () => {}, () => {});
      dir = await mkdtemp(join(tmpdir(), 'pibond-outputs-e2e-'));
      for (const sub of ['out', 'cache', 'root/var/lib/dpkg', 'root/usr/lib/modules', 'root/boot']) await mkdir(join(dir, sub), { recursive: true });
      await writeFile(join(dir, 'root/var/lib/dpkg/status'), '');
      image = Buffer.alloc(imageSize);
      const handle = await open(join(outDir(), 't.img'), 'w');
      try {
        await handle.truncate(imageSize);
        for (const { offset, bytes, fill } of written) {
          const content = fill === 'text' ? textAt(offset, bytes) : Buffer.alloc(bytes);
          content.copy(image, offset);
          await handle.write(content, 0, bytes, offset);
        }
      } finally {
        await handle.close();
      }
      first = await runOutputs(true);
      firstZst = await readFile(zst());
    });
    afterAll(async () => {
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    it('zstd -dc gives the image back, byte for byte, from its one frame per chunk', async () => {
      const said = await inBuilder('zstd -dc /out/t.img.zst | cmp - /out/t.img && echo same; zstd -lv /out/t.img.zst | grep -i "# Zstandard Frames"');
      expect(said).toMatch(/^same$/m);
      expect(said).toMatch(/# Zstandard Frames: 6$/m);
    });

    it('pibond flash\'s bundled decoder (fzstd) reads every frame, and its per-range checks pass on a card', async () => {
      const stream = await openImageStream(zst(), 'bundled');
      const chunks: Buffer[] = [];
      for await (const chunk of stream.chunks) chunks.push(chunk);
      expect(Buffer.concat(chunks).equals(image)).toBe(true);

      const bmap = JSON.parse(await readFile(join(outDir(), '.bmap-ranges.json'), 'utf8')) as Bmap;
      const cardFile = join(dir, 'card');
      await writeFile(cardFile, Buffer.alloc(imageSize, 0xff));
      const card = await open(cardFile, 'r+');
      try {
        const result = await writeAndVerify({ chunks: (await openImageStream(zst(), 'bundled')).chunks, imageFile: zst(), cardName: cardFile, card, segments: writePlan(imageSize, bmap) });
        expect(result.writtenBytes).toBeGreaterThan(0);
      } finally {
        await card.close();
      }
    });

    it('the block map\'s ranges are the data written (SEEK_DATA), each with its sha256', async () => {
      const bmap = JSON.parse(await readFile(join(outDir(), '.bmap-ranges.json'), 'utf8')) as Bmap;
      const range = (offset: number, bytes: number) => {
        const [firstBlock, last] = [offset / 4096, Math.ceil((offset + bytes) / 4096) - 1];
        const sha256 = createHash('sha256').update(image.subarray(offset, Math.min((last + 1) * 4096, imageSize))).digest('hex');
        return { first: firstBlock, last, sha256 };
      };
      expect(bmap).toEqual({ imageSize, blockSize: 4096, ranges: written.map(({ offset, bytes }) => range(offset, bytes)) });
    });

    it('the whole file\'s sha256 is sha256sum\'s, the .img.zst\'s too, and the checksums file says so', async () => {
      const said = await inBuilder('cd /out && sha256sum t.img t.img.zst');
      expect(await readFile(join(outDir(), 't.img.sha256'), 'utf8')).toBe(`${said}\n`);
      expect(first.checksums).toEqual({
        't.img': createHash('sha256').update(image).digest('hex'),
        't.img.zst': createHash('sha256').update(firstZst).digest('hex'),
      });
    });

    it('a second run takes every frame from the cache and writes the same bytes; --no-cache compresses them all again, the same bytes again', async () => {
      // 6 chunks of 16 MiB (the last one 8 MiB and a bit), all different, one of them all zeros: 6 frames.
      expect(first).toMatchObject({ framesReused: 0, framesCompressed: 6, level: expect.any(Number) });
      const cached = await frames();
      expect(cached).toHaveLength(6);

      expect(await runOutputs(true)).toMatchObject({ framesReused: 6, framesCompressed: 0, checksums: first.checksums });
      expect((await readFile(zst())).equals(firstZst)).toBe(true);

      expect(await runOutputs(false)).toMatchObject({ framesReused: 0, framesCompressed: 6, checksums: first.checksums });
      expect((await readFile(zst())).equals(firstZst)).toBe(true);
      expect(await frames()).toEqual(cached);
    });

    it('prunes the cache to three images\' frames, least recently used first, and temporary files left behind', async () => {
      const frameDir = join(cacheDir(), 'zstd-frames');
      const used = await frames();
      const usedBytes = (await Promise.all(used.map(async (name) => (await stat(join(frameDir, name))).size))).reduce((a, b) => a + b, 0);
      const old = Array.from({ length: 8 }, (_, i) => `${String(i).padStart(64, '0')}.L${first.level}.zstd-0.0.0.zst`);
      for (const [i, name] of old.entries()) {
        await writeFile(join(frameDir, name), Buffer.alloc(Math.floor(usedBytes / 2)));
        const when = new Date(Date.now() - (i + 1) * 60_000);
        await utimes(join(frameDir, name), when, when);
      }
      const leftover = `${'f'.repeat(64)}.L${first.level}.zstd-0.0.0.zst.tmp-1-ffffffff`;
      await writeFile(join(frameDir, leftover), 'half a frame');
      await utimes(join(frameDir, leftover), new Date(0), new Date(0));

      await runOutputs(true);
      // Budget 3 x usedBytes: the used frames, then the 4 most recent old ones (each half of usedBytes,
      // rounded down: 4 of them must fit in 2 x usedBytes when usedBytes is odd).
      expect(await frames()).toEqual([...used, ...old.slice(0, 4)].sort());
    });
  });
}
