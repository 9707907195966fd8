/**
 * The writer against a regular file standing in for the card: a synthetic image of 12 MiB with
 * data in a few places (some across the 4 MiB write boundaries), its bmap, a card prefilled with
 * 0xff so that anything written where it should not be shows.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { type Bmap, parseBmap, renderBmap } from '../../scripts/lib/bmap.ts';
import { flashCard, loadImage } from '../../scripts/flash/cli.ts';
import { type Patch, type Progress, type WriteOptions, plannedBytes, writeAndVerify, writePlan } from '../../scripts/flash/writer.ts';

const mib = 1024 * 1024;
const block = 4096;
const imageSize = 12 * mib + 1000; // the last block is partial
const dir = await mkdtemp(join(tmpdir(), 'pibond-flash-writer-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

/** Blocks with data: the partition table, a run across the 4 MiB boundary, one across 8 MiB, the partial last block. */
const dataBlocks: [number, number][] = [
  [0, 3],
  [1000, 1100],
  [2040, 2060],
  [3072, 3072],
];

function syntheticImage(): { image: Buffer; bmap: Bmap } {
  const image = Buffer.alloc(imageSize);
  let seed = Buffer.from('writer test');
  const ranges = dataBlocks.map(([first, last]) => {
    const end = Math.min((last + 1) * block, imageSize);
    for (let at = first * block; at < end; at += 32) {
      seed = createHash('sha256').update(seed).digest();
      seed.copy(image, at, 0, Math.min(32, end - at));
    }
    return { first, last, sha256: createHash('sha256').update(image.subarray(first * block, end)).digest('hex') };
  });
  // Through text and back, as the CLI reads it.
  return { image, bmap: parseBmap(renderBmap({ imageSize, blockSize: block, ranges }), 'test.img.bmap') };
}

const { image, bmap } = syntheticImage();
const mappedBytes = dataBlocks.reduce((sum, [first, last]) => sum + Math.min((last + 1) * block, imageSize) - first * block, 0);

async function* chunksOf(bytes: Buffer, size = 77_777): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function blankCard(name: string): Promise<string> {
  const file = join(dir, name);
  await writeFile(file, Buffer.alloc(imageSize + 3 * mib, 0xff));
  return file;
}

async function write(cardFile: string, options: Partial<WriteOptions> & { source?: Buffer } = {}) {
  const card = await open(cardFile, 'r+');
  try {
    return await writeAndVerify({
      chunks: chunksOf(options.source ?? image),
      imageFile: 'test.img.zst',
      bmapFile: 'test.img.bmap',
      cardName: cardFile,
      card,
      segments: writePlan(imageSize, bmap, options.patch),
      ...options,
    });
  } finally {
    await card.close();
  }
}

describe('writing a card from the bmap', () => {
  it('writes the mapped blocks only, and reads them back', async () => {
    const cardFile = await blankCard('mapped.card');
    const progress: Progress[] = [];
    const result = await write(cardFile, { onProgress: (p) => progress.push(p) });
    expect(result.writtenBytes).toBe(mappedBytes);

    const card = await readFile(cardFile);
    for (const [first, last] of dataBlocks) {
      const end = Math.min((last + 1) * block, imageSize);
      expect(card.subarray(first * block, end).equals(image.subarray(first * block, end)), `blocks ${first}-${last}`).toBe(true);
    }
    // Between the ranges the card keeps what it had.
    expect(card.subarray(4 * block, 1000 * block).every((byte) => byte === 0xff)).toBe(true);
    expect(card.subarray(1101 * block, 2040 * block).every((byte) => byte === 0xff)).toBe(true);
    expect(card.subarray(imageSize).every((byte) => byte === 0xff)).toBe(true);

    expect(progress.filter((p) => p.phase === 'write').at(-1)).toEqual({ phase: 'write', done: mappedBytes, total: mappedBytes });
    expect(progress.filter((p) => p.phase === 'verify').at(-1)).toEqual({ phase: 'verify', done: mappedBytes, total: mappedBytes });
  });

  it('writes the whole image when there is no bmap', async () => {
    const cardFile = await blankCard('whole.card');
    const card = await open(cardFile, 'r+');
    try {
      const result = await writeAndVerify({ chunks: chunksOf(image), imageFile: 'x.img', cardName: cardFile, card, segments: writePlan(undefined, undefined) });
      expect(result.writtenBytes).toBe(imageSize);
    } finally {
      await card.close();
    }
    expect((await readFile(cardFile)).subarray(0, imageSize).equals(image)).toBe(true);
  });

  it('puts the card settings in while writing, also where the image has a hole', async () => {
    // From inside blocks 1000-1100, past their end into unmapped blocks: those are written too.
    const patch: Patch = { offset: 1100 * block - 1000, data: Buffer.alloc(64 * 1024, 'hostname: kitchen\n') };
    const plan = writePlan(imageSize, bmap, patch);
    expect(plannedBytes(plan)).toBe(mappedBytes + patch.data.length - (1101 * block - patch.offset));
    const cardFile = await blankCard('patched.card');
    await write(cardFile, { patch });
    const card = await readFile(cardFile);
    expect(card.subarray(patch.offset, patch.offset + patch.data.length).equals(patch.data)).toBe(true);
    expect(card.subarray(1000 * block, patch.offset).equals(image.subarray(1000 * block, patch.offset))).toBe(true);
    expect(card[patch.offset + patch.data.length]).toBe(0xff);
  });

  it('names the offset of what the card does not hold when read back', async () => {
    const cardFile = await blankCard('corrupted.card');
    const damageAt = 2050 * block + 123; // in the run across 8 MiB
    const damage = async () => {
      const card = await open(cardFile, 'r+');
      await card.write(Buffer.from([0x00]), 0, 1, damageAt);
      await card.close();
    };
    const unit = Math.floor(damageAt / 65536) * 65536;
    await expect(write(cardFile, { beforeVerify: damage })).rejects.toThrow(`${cardFile} does not hold what was written: the 65536 bytes at byte offset ${unit} (0x${unit.toString(16)}) differ when read back`);
  });

  it('a damaged image (bmap checksum mismatch) is named as such', async () => {
    const damaged = Buffer.from(image);
    damaged.writeUInt8(damaged.readUInt8(1050 * block) ^ 0x01, 1050 * block);
    const cardFile = await blankCard('damaged-source.card');
    await expect(write(cardFile, { source: damaged })).rejects.toThrow(
      `test.img.zst is damaged: bytes ${1000 * block}-${1101 * block - 1} (blocks 1000-1100) do not match their checksum in test.img.bmap (a damaged or incomplete download, or a bmap of another build). The card is incomplete`,
    );
  });

  it('an image that ends early is named as truncated', async () => {
    const cardFile = await blankCard('truncated.card');
    await expect(write(cardFile, { source: image.subarray(0, 3000 * block) })).rejects.toThrow(`test.img.zst ended at byte ${3000 * block}, before the end of the image (${imageSize} bytes): a truncated download?`);
  });
});

describe('Ctrl-C while flashing', () => {
  it('stops, says the card is incomplete, and exits with 130', async () => {
    const imageFile = join(dir, 'stop.img');
    await writeFile(imageFile, image);
    const cardFile = await blankCard('stopped.card');
    const output = new PassThrough();
    let text = '';
    output.on('data', (data: Buffer) => (text += data.toString()));
    let writes = 0;
    const status = await flashCard({
      file: imageFile,
      bmap: undefined,
      bmapFile: `${imageFile}.bmap`,
      size: imageSize,
      patch: undefined,
      target: cardFile,
      blockDevice: false,
      decoder: 'auto',
      stream: output as unknown as NodeJS.WriteStream,
      onProgress: (progress) => {
        writes += 1;
        // As the terminal sends it: the process receives SIGINT after the first 4 MiB.
        if (progress.phase === 'write' && writes === 1) process.emit('SIGINT', 'SIGINT');
      },
    });
    expect(status).toBe(130);
    expect(text).toContain('SIGINT: stopping; flushing what was written...');
    expect(text).toMatch(/Stopped by SIGINT after writing [\d.]+ MB: the card is incomplete: flash it again before use\./);
    expect(writes).toBeLessThan(3);
  });
});

describe('which image pibond flash takes', () => {
  it('a definition\'s name means out/<name>.img.zst, else .img.xz, else .img, with the bmap and manifest beside it', async () => {
    const out = await mkdtemp(join(dir, 'out-'));
    await writeFile(join(out, 'pi.img'), image);
    expect((await loadImage('pi', out)).file).toBe(join(out, 'pi.img'));
    await writeFile(join(out, 'pi.img.xz'), '');
    expect((await loadImage('pi', out)).file).toBe(join(out, 'pi.img.xz'));
    await writeFile(join(out, 'pi.img.zst'), '');
    await writeFile(join(out, 'pi.img.bmap'), renderBmap(bmap));
    await writeFile(join(out, 'pi.manifest.json'), JSON.stringify({ files: { 'pi.img': { bytes: imageSize } } }));
    const loaded = await loadImage('pi', out);
    expect(loaded).toMatchObject({ file: join(out, 'pi.img.zst'), bmapFile: join(out, 'pi.img.bmap'), size: imageSize, manifestFile: join(out, 'pi.manifest.json') });
    expect(loaded.bmap?.ranges).toHaveLength(dataBlocks.length);
    await expect(loadImage('nothing-here', out)).rejects.toThrow(`no image named nothing-here in ${out}/ (looked for nothing-here.img.zst, .img.xz and .img)`);
    await expect(loadImage(join(out, 'pi.manifest.json'), out)).rejects.toThrow('pibond flash takes a .img, .img.zst or .img.xz file');
  });

  it('a damaged bmap is refused before anything is written', async () => {
    const out = await mkdtemp(join(dir, 'out-'));
    await writeFile(join(out, 'pi.img'), image);
    await writeFile(join(out, 'pi.img.bmap'), renderBmap(bmap).replace('<BlockSize> 4096', '<BlockSize> 4097'));
    await expect(loadImage(join(out, 'pi.img'))).rejects.toThrow(`${join(out, 'pi.img.bmap')} is not a usable bmap file`);
  });
});
