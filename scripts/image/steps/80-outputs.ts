/**
 * The outputs: the compressed copy, checksums and the manifest, all written in the staging
 * directory (the publish step moves them into out/).
 */
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execIn } from '../../lib/docker.ts';
import { type BuildContext, type Step, paths, requireContainer } from '../context.ts';

const compressors = {
  zstd: { suffix: '.zst', command: (file: string) => `zstd -T0 -10 --sparse -q -f ${file}` },
  xz: { suffix: '.xz', command: (file: string) => `xz -T0 -6 -k -f ${file}` },
  none: { suffix: '', command: () => 'true' },
} as const;

export function outputNames(name: string, compression: keyof typeof compressors) {
  const image = `${name}.img`;
  const compressed = compression === 'none' ? undefined : `${image}${compressors[compression].suffix}`;
  return { image, compressed, checksums: `${image}.sha256`, manifest: `${name}.manifest.json` };
}

export const outputs: Step = {
  title: 'Compress, checksum and write the manifest',
  async run(ctx) {
    const { docker, container } = requireContainer(ctx);
    const names = outputNames(ctx.def.name, ctx.def.disk.compression);
    /** Runs a script in the container; returns its standard output's lines. */
    const sh = async (script: string): Promise<string[]> => {
      const lines: string[] = [];
      await execIn(docker, container, ['bash', '-euo', 'pipefail', '-c', script], {
        sink: (line, stream) => {
          ctx.progress.sink(line, stream);
          if (stream === 'stdout') lines.push(line);
        },
      });
      return lines;
    };

    const started = Date.now();
    await sh(`cd /out && ${compressors[ctx.def.disk.compression].command(names.image)}`);
    const compressSeconds = (Date.now() - started) / 1000;
    const sums = await sh(`cd /out && sha256sum ${[names.image, names.compressed].filter(Boolean).join(' ')} > ${names.checksums} && cat ${names.checksums}`);
    const checksums = Object.fromEntries(sums.map((l) => l.split(/\s+/)).map(([sum, file]) => [file, sum]));
    const installed = await sh(`dpkg-query --admindir=${paths.rootfs}/var/lib/dpkg -W -f '\${Package}\\t\${Version}\\t\${Architecture}\\n'`);
    const packages = installed.filter((l) => l.includes('\t')).map((l) => {
      const [name, version, architecture] = l.split('\t');
      return { name, version, architecture };
    });
    const sizes = await sh(`du -sb --exclude=./proc --exclude=./sys ${paths.rootfs} | cut -f1; du -sb ${paths.rootfs}/usr/lib/modules | cut -f1; du -sb ${paths.rootfs}/boot | cut -f1`);
    const [rootfsBytes, modulesBytes, bootBytes] = sizes.map(Number);

    const manifest = {
      name: ctx.def.name,
      definition: { file: ctx.options.definitionFile, sha256: ctx.definitionHash, value: ctx.def },
      base: ctx.def.base,
      mirror: ctx.def.mirror,
      builderImage: ctx.builderImage,
      rootfsCache: ctx.rootfs,
      diskId: ctx.layout.diskId,
      sourceDateEpoch: ctx.options.sourceDateEpoch,
      files: await describeFiles(ctx, names, checksums),
      sizes: { rootfsBytes, kernelModulesBytes: modulesBytes, bootBytes },
      packages,
      steps: [...ctx.progress.timings, { name: 'Compress', seconds: compressSeconds }],
    };
    await writeFile(join(ctx.stagingDir, names.manifest), `${JSON.stringify(manifest, null, 2)}\n`);
  },
};

async function describeFiles(ctx: BuildContext, names: ReturnType<typeof outputNames>, checksums: Record<string, string | undefined>) {
  const files: Record<string, { bytes: number; sha256?: string }> = {};
  for (const file of [names.image, names.compressed, names.checksums]) {
    if (!file) continue;
    files[file] = { bytes: (await stat(join(ctx.stagingDir, file))).size, sha256: checksums[file] };
  }
  return files;
}
