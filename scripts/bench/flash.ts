/**
 * Flash benchmark: the image's .img.zst written by `pibond flash` onto a loop device over a sparse
 * file (as root), once with the decoder pibond picks (the host's zstd when installed) and once with
 * the bundled one. Figures: the write and verify times, what verifying adds, the bytes written
 * (pibond's count and the kernel's, from the loop device's stat) against the image's used blocks.
 *
 * Goals (issue 12): written bytes <= 1.1 x the used blocks; verification adds <= 30 % to the time.
 * Alone: `tsx scripts/bench/flash.ts [out/NAME.img]`.
 */
import { mkdtemp, open, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { $ } from 'zx';
import { flashCard, loadImage } from '../flash/cli.ts';
import type { DecoderChoice } from '../flash/source.ts';
import type { WriteResult } from '../flash/writer.ts';

const goals = { writtenOverUsed: 1.1, verifyPercent: 30 };

export async function benchFlash(image: string): Promise<Record<string, number | string>> {
  if (process.getuid?.() !== 0) throw new Error('the flash benchmark needs root (losetup)');
  const loaded = await loadImage(`${image}.zst`);
  if (!loaded.bmap) throw new Error(`${image}.bmap is missing: rebuild the image (pibond build) to get its block map`);
  const usedBytes = (await stat(image)).blocks * 512;
  const figures: Record<string, number | string> = { 'flash image': `${image}.zst`, 'flash image used MB (du)': usedBytes / 1e6 };
  for (const decoder of ['auto', 'bundled'] as const) {
    const run = await flashOnce(loaded, decoder);
    const label = decoder === 'auto' ? '' : ' (bundled decoder)';
    figures[`flash${label} write s`] = run.result.writeSeconds;
    figures[`flash${label} verify s`] = run.result.verifySeconds;
    figures[`flash${label} verify adds % (goal <= ${goals.verifyPercent})`] = (100 * run.result.verifySeconds) / run.result.writeSeconds;
    if (decoder === 'auto') {
      figures['flash written MB (pibond)'] = run.result.writtenBytes / 1e6;
      figures['flash written MB (kernel, loop stat)'] = run.kernelWrittenBytes / 1e6;
      figures[`flash written / used (goal <= ${goals.writtenOverUsed})`] = run.kernelWrittenBytes / usedBytes;
    }
  }
  return figures;
}

async function flashOnce(image: Awaited<ReturnType<typeof loadImage>>, decoder: DecoderChoice): Promise<{ result: WriteResult; kernelWrittenBytes: number }> {
  const dir = await mkdtemp(join(tmpdir(), 'pibond-bench-flash-'));
  const file = join(dir, 'card.img');
  let loop: string | undefined;
  try {
    const card = await open(file, 'w');
    await card.truncate((image.size ?? 0) + 64 * 1024 * 1024);
    await card.close();
    loop = (await $({ quiet: true })`losetup --find --show --partscan ${file}`).stdout.trim();
    const before = await sectorsWritten(loop);
    let result: WriteResult | undefined;
    const status = await flashCard({ ...image, patch: undefined, target: loop, blockDevice: true, decoder, diskName: basename(loop), onResult: (r) => (result = r) });
    if (status !== 0 || !result) throw new Error(`pibond flash onto ${loop} ended with status ${status}`);
    return { result, kernelWrittenBytes: ((await sectorsWritten(loop)) - before) * 512 };
  } finally {
    if (loop) await $({ quiet: true, nothrow: true })`losetup -d ${loop}`;
    await rm(dir, { recursive: true, force: true });
  }
}

async function sectorsWritten(device: string): Promise<number> {
  return Number((await readFile(`/sys/block/${basename(device)}/stat`, 'utf8')).trim().split(/\s+/)[6]);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await benchFlash(process.argv[2] ?? 'out/pibond-bookworm-arm64.img');
  for (const [key, value] of Object.entries(figures)) console.log(`${key.padEnd(56)} ${typeof value === 'number' ? value.toFixed(2) : value}`);
}
