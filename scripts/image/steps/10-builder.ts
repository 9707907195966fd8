/** The builder image, made from the recipe in the repo (only when the recipe changed). */
import { ensureBuilderImage } from '../../builder/builder-image.ts';
import type { Step } from '../context.ts';

export const builder: Step = {
  title: 'Prepare the builder image',
  async run(ctx) {
    if (!ctx.docker) throw new Error('no Docker engine (the host step did not run)');
    ctx.builderImage = await ensureBuilderImage(ctx.docker, ctx.def.mirror, ctx.progress.sink, ctx.progress.say);
  },
};
