/**
 * The outputs: the compressed copy, checksums and the manifest, all written in the staging
 * directory (the publish step moves them into out/).
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { BuildManifest } from '../../lib/manifest.ts';
import { type BuildContext, type Step, paths, runTool, verifyTools } from '../context.ts';

const suffixes = { zstd: '.zst', xz: '.xz', none: '' } as const;

export function outputNames(name: string, compression: keyof typeof suffixes) {
  const image = `${name}.img`;
  const compressed = compression === 'none' ? undefined : `${image}${suffixes[compression]}`;
  return { image, compressed, checksums: `${image}.sha256`, manifest: `${name}.manifest.json` };
}

/** What outputs.mjs prints as its last line. */
export interface OutputsReport extends Pick<BuildManifest, 'packages' | 'sizes'> {
  compressSeconds: number;
  checksums: Record<string, string>;
}

export const outputs: Step = {
  title: 'Compress, checksum and write the manifest',
  async verify() {
    await verifyTools('outputs.mjs');
  },
  async run(ctx) {
    const names = outputNames(ctx.def.name, ctx.def.disk.compression);
    const lines = await runTool(ctx, 'outputs.mjs', [
      { dir: '/out', image: names.image, compression: ctx.def.disk.compression, checksums: names.checksums, root: paths.rootfs },
    ]);
    const report = parseOutputsReport(lines);

    const manifest: BuildManifest = {
      name: ctx.def.name,
      definition: { file: ctx.options.definitionFile, sha256: ctx.definitionHash, value: ctx.def },
      base: ctx.def.base,
      mirror: ctx.def.mirror,
      builderImage: ctx.builderImage,
      rootfsCache: ctx.rootfs,
      diskId: ctx.layout.diskId,
      sourceDateEpoch: ctx.options.sourceDateEpoch,
      files: await describeFiles(ctx, names, report.checksums),
      sizes: report.sizes,
      packages: report.packages,
      steps: [...ctx.progress.timings, { name: 'Compress', seconds: report.compressSeconds }],
    };
    await writeFile(join(ctx.stagingDir, names.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
  },
};

/** The script's report: its last line of standard output, one JSON object. */
export function parseOutputsReport(lines: readonly string[]): OutputsReport {
  const last = lines.findLast((line) => line.startsWith('{'));
  if (!last) throw new Error(`outputs.mjs printed no report; its output ended:\n  ${lines.slice(-5).join('\n  ')}`);
  return JSON.parse(last) as OutputsReport;
}

async function describeFiles(ctx: BuildContext, names: ReturnType<typeof outputNames>, checksums: Record<string, string | undefined>) {
  const files: Record<string, { bytes: number; sha256?: string }> = {};
  for (const file of [names.image, names.compressed, names.checksums]) {
    if (!file) continue;
    files[file] = { bytes: (await stat(join(ctx.stagingDir, file))).size, sha256: checksums[file] };
  }
  return files;
}
