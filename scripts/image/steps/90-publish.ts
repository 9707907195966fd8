/**
 * Publishing: every staged output renamed into out/ (each rename is atomic), the manifest last.
 * Only a build whose every step succeeded gets here, so a failed build leaves nothing in out/
 * that looks like a result.
 */
import { rename } from 'node:fs/promises';
import { join } from 'node:path';
import type { Step } from '../context.ts';
import { outputNames } from './80-outputs.ts';

export const publish: Step = {
  title: 'Publish into the output directory',
  async run(ctx) {
    const names = outputNames(ctx.def.name, ctx.def.disk.compression);
    ctx.outputs = [];
    for (const file of [names.image, names.compressed, names.checksums, names.manifest]) {
      if (!file) continue;
      await rename(join(ctx.stagingDir, file), join(ctx.options.outDir, file));
      ctx.outputs.push(join(ctx.options.outDir, file));
    }
  },
};
