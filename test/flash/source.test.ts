import { createHash } from 'node:crypto';
import { copyFile, mkdtemp, rm, truncate } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { type DecoderChoice, openImageStream } from '../../scripts/flash/source.ts';

const fixtures = join(import.meta.dirname, 'fixtures');
// small.img: 1 MiB, 8 KiB of hash chain, zeros, a line at 1 MiB - 4 KiB (compressed with zstd -19, xz -9).
const smallImageSha256 = 'ea73c3dba802e19d7361847209dfa933e5539bbac9fa5ae8c99962cba1fb7e2f';
const dir = await mkdtemp(join(tmpdir(), 'pibond-flash-source-'));
afterAll(() => rm(dir, { recursive: true, force: true }));

async function decoded(file: string, choice: DecoderChoice): Promise<{ decoder: string; sha256: string; bytes: number }> {
  const stream = await openImageStream(file, choice);
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of stream.chunks) {
    hash.update(chunk);
    bytes += chunk.length;
  }
  return { decoder: stream.decoder, sha256: hash.digest('hex'), bytes };
}

describe('image sources', () => {
  it.each([
    ['small.img.zst', 'bundled', 'fzstd (bundled)'],
    ['small.img.xz', 'bundled', 'xz-decompress (bundled)'],
  ] as const)('%s decompressed by the %s decoder', async (name, choice, decoder) => {
    await expect(decoded(join(fixtures, name), choice)).resolves.toEqual({ decoder, sha256: smallImageSha256, bytes: 1024 * 1024 });
  });

  it.each([
    ['small.img.zst', 'zstd -dc'],
    ['small.img.xz', 'xz -dc'],
  ])('%s decompressed by the host\'s tool (%s), when it has one', async (name, decoder) => {
    const result = await decoded(join(fixtures, name), 'host').catch((err: Error) => err.message);
    // A host without zstd/xz says so plainly.
    expect([{ decoder, sha256: smallImageSha256, bytes: 1024 * 1024 }, expect.stringMatching(/is not installed on this host/)]).toContainEqual(result);
  });

  it.each(['bundled', 'auto'] as const)('a truncated download is named as such (%s decoder)', async (choice) => {
    for (const name of ['small.img.zst', 'small.img.xz']) {
      const cut = join(dir, `cut-${choice}-${name}`);
      await copyFile(join(fixtures, name), cut);
      await truncate(cut, 4000);
      await expect(decoded(cut, choice)).rejects.toThrow(`${cut} cannot be decompressed (a damaged or truncated download?)`);
    }
  });

  it('a file that is no image is refused by its name', async () => {
    await expect(openImageStream('out/x.tar.gz')).rejects.toThrow('out/x.tar.gz: pibond flash takes a .img, .img.zst or .img.xz file');
  });
});
