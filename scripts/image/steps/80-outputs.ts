/**
 * The outputs: the compressed copy, checksums, the block map, the Raspberry Pi Imager entry, the
 * manifest (what was built: the same bytes for the same inputs) and the timings (how the build
 * went), all written in the staging directory (the publish step moves them into out/).
 */
import { readFile, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { type Bmap, renderBmap } from '../../lib/bmap.ts';
import { imagerRepository } from '../../lib/imager.ts';
import type { BuildManifest, BuildTimings } from '../../lib/manifest.ts';
import { fetchFile } from '../../lib/fetch-file.ts';
import { nodeRuntime } from '../../lib/node-runtime.ts';
import { type BuildContext, type Step, paths, requireContainer, runTool, verifyTools } from '../context.ts';
import { stockDpkgRoot } from './62-lay.ts';

const suffixes = { zstd: '.zst', xz: '.xz', none: '' } as const;

export function outputNames(name: string, compression: keyof typeof suffixes) {
  const image = `${name}.img`;
  const compressed = compression === 'none' ? undefined : `${image}${suffixes[compression]}`;
  return {
    image,
    compressed,
    checksums: `${image}.sha256`,
    bmap: `${image}.bmap`,
    imager: `${name}.rpi-imager.json`,
    timings: `${name}.timings.json`,
    manifest: `${name}.manifest.json`,
  };
}

/** Where outputs.mjs leaves the block map's ranges for renderBmap (in the staging directory, not published). */
const bmapRangesFile = '.bmap-ranges.json';

/**
 * The .img.zst is one zstd frame per 16 MiB of the image, each kept in the cache volume under its
 * chunk's sha256 (and the level and zstd's version): a rebuild compresses only the chunks that
 * changed. outputs.mjs keeps the cache to a few images' frames.
 */
export const zstdFrameCache = `${paths.cache}/zstd-frames`;

/** What outputs.mjs prints as its last line; the frame counts and level come with zstd only. */
export interface OutputsReport extends Pick<BuildManifest, 'packages' | 'sizes'>, Partial<NonNullable<BuildTimings['compression']>> {
  compressSeconds: number;
  bmapSeconds: number;
  checksums: Record<string, string>;
}

export const outputs: Step = {
  title: 'Compress, checksum and write the manifest',
  async verify() {
    await verifyTools('outputs.mjs', 'send-file.mjs');
  },
  async run(ctx) {
    const names = outputNames(ctx.def.name, ctx.def.disk.compression);
    const compression = ctx.def.disk.compression;
    // --no-cache compresses every frame again (and replaces the cached ones).
    const frames = compression === 'zstd' ? { frames: { dir: zstdFrameCache, reuse: ctx.options.cache } } : {};
    const lines = await runTool(ctx, 'outputs.mjs', [
      {
        dir: paths.out,
        image: names.image,
        compression,
        checksums: names.checksums,
        bmapRanges: bmapRangesFile,
        ...(ctx.stock ? { root: stockDpkgRoot, sizes: ctx.stockSizes } : { root: paths.rootfs }),
        ...frames,
      },
    ]);
    const report = parseOutputsReport(lines);
    if (!ctx.engine?.endpoint.local) await fetchOutputs(ctx, [names.image, names.compressed, names.checksums, bmapRangesFile]);
    if (!ctx.card) throw new Error('the disk step recorded no card slot (a step ran out of order)');

    const ranges = join(ctx.stagingDir, bmapRangesFile);
    await writeFile(join(ctx.stagingDir, names.bmap), renderBmap(JSON.parse(await readFile(ranges, 'utf8')) as Bmap));
    await rm(ranges);

    const described = async (file: string) => ({ file, bytes: (await stat(join(ctx.stagingDir, file))).size, sha256: checksumOf(report, file) });
    const image = await described(names.image);
    const repository = imagerRepository(ctx.def, image, names.compressed ? await described(names.compressed) : image, ctx.options.sourceDateEpoch);
    await writeFile(join(ctx.stagingDir, names.imager), `${JSON.stringify(repository, null, 2)}\n`);

    const manifest: BuildManifest = {
      name: ctx.def.name,
      definition: { file: ctx.options.definitionFile, sha256: ctx.definitionHash, value: ctx.def },
      base: ctx.def.base,
      mirror: ctx.def.mirror,
      builderImage: ctx.builderImage,
      rootfsCache: ctx.rootfs && { key: ctx.rootfs.key },
      diskId: ctx.stock?.diskId ?? ctx.layout.diskId,
      ...(ctx.stock && { stock: stockRecord(ctx) }),
      sourceDateEpoch: ctx.options.sourceDateEpoch,
      card: ctx.card,
      lock: ctx.lock && { file: ctx.lock.file, sha256: ctx.lock.sha256 },
      files: await describeFiles(ctx, names, report.checksums),
      sizes: report.sizes,
      packages: report.packages,
    };
    await writeFile(join(ctx.stagingDir, names.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
    const timings: BuildTimings = {
      name: ctx.def.name,
      rootfsFromCache: ctx.rootfs?.fromCache ?? false,
      steps: [...ctx.progress.timings, { name: 'Compress', seconds: report.compressSeconds }, { name: 'Block map', seconds: report.bmapSeconds }],
      ...(report.level !== undefined && {
        compression: { framesReused: report.framesReused ?? 0, framesCompressed: report.framesCompressed ?? 0, level: report.level },
      }),
    };
    await writeFile(join(ctx.stagingDir, names.timings), `${JSON.stringify(timings, null, 2)}\n`);
  },
};

/**
 * From an engine that does not share this machine's files: each output through the API into the
 * staging directory, holes kept (the image's 2 GiB cost its data, ~0.7 GiB).
 */
async function fetchOutputs(ctx: BuildContext, files: (string | undefined)[]): Promise<void> {
  const { container } = requireContainer(ctx);
  const started = performance.now();
  let crossed = 0;
  for (const file of files) {
    if (!file) continue;
    const { written } = await fetchFile(container, `${paths.tools}/send-file.mjs`, `${paths.out}/${file}`, join(ctx.stagingDir, file), ctx.progress.sink);
    crossed += written;
  }
  const seconds = (performance.now() - started) / 1000;
  ctx.progress.sink(`fetched the outputs from the engine: ${(crossed / 1e6).toFixed(1)} MB of data in ${seconds.toFixed(1)} s`, 'stdout');
}

/** What the stock base was found to be, and which Node the services run on. */
function stockRecord(ctx: BuildContext): BuildManifest['stock'] {
  const found = ctx.stock?.image;
  if (!found) return undefined;
  return {
    file: ctx.def.base.image ?? '',
    sha256: ctx.def.base.sha256 ?? '',
    rule: found.rule,
    name: found.name,
    release: found.release,
    stack: found.stack,
    cloudInit: found.cloudInit,
    kernels: found.kernels,
    kernelBootsVirt: found.kernelBootsVirt,
    node: found.nodejs === undefined ? `runtime ${nodeRuntime.version}` : `the image's nodejs ${found.nodejs}`,
  };
}

function checksumOf(report: OutputsReport, file: string): string {
  const sha256 = report.checksums[file];
  if (!sha256) throw new Error(`outputs.mjs reported no checksum for ${file}`);
  return sha256;
}

/** The script's report: its last line of standard output, one JSON object. */
export function parseOutputsReport(lines: readonly string[]): OutputsReport {
  const last = lines.findLast((line) => line.startsWith('{'));
  if (!last) throw new Error(`outputs.mjs printed no report; its output ended:\n  ${lines.slice(-5).join('\n  ')}`);
  return JSON.parse(last) as OutputsReport;
}

async function describeFiles(ctx: BuildContext, names: ReturnType<typeof outputNames>, checksums: Record<string, string | undefined>) {
  const files: Record<string, { bytes: number; sha256?: string }> = {};
  for (const file of [names.image, names.compressed, names.checksums, names.bmap, names.imager]) {
    if (!file) continue;
    files[file] = { bytes: (await stat(join(ctx.stagingDir, file))).size, sha256: checksums[file] };
  }
  return files;
}
