/**
 * Publishing: every staged output renamed into out/ (each rename is atomic), the manifest last.
 * Only a build whose every step succeeded gets here, so a failed build leaves nothing in out/
 * that looks like a result.
 */
import { lstat, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { UserError } from '../../lib/errors.ts';
import type { BuildContext, Step } from '../context.ts';
import { outputNames } from './80-outputs.ts';

export const publish: Step = {
  title: 'Publish into the output directory',
  async verify(ctx) {
    // A rename replaces an old output file, but not a directory in its place: say so now, not at the end.
    for (const file of outputFiles(ctx)) {
      const path = join(ctx.options.outDir, file);
      const existing = await lstat(path).catch(() => undefined);
      if (existing && !existing.isFile()) throw new UserError(`${path} is in the way of an output (it is not a file): move it away or choose another --out`);
    }
  },
  async run(ctx) {
    ctx.outputs = [];
    for (const file of outputFiles(ctx)) {
      await rename(join(ctx.stagingDir, file), join(ctx.options.outDir, file));
      ctx.outputs.push(join(ctx.options.outDir, file));
    }
  },
};

/** The outputs in the order they are published: the manifest, which describes the others, last. */
function outputFiles(ctx: BuildContext): string[] {
  const names = outputNames(ctx.def.name, ctx.def.disk.compression);
  return [names.image, names.compressed, names.checksums, names.bmap, names.imager, names.timings, names.manifest].filter((file): file is string => file !== undefined);
}
