/** The builder image, made from the recipe in the repo (only when the recipe changed). */
import { ensureBuilderImage } from '../../builder/builder-image.ts';
import { UserError } from '../../lib/errors.ts';
import type { Step } from '../context.ts';

export const builder: Step = {
  title: 'Prepare the builder image',
  async verify(ctx) {
    // The schema took an http(s) URL; apt's sources.list and mmdebstrap take a plain base URL only.
    const mirror = new URL(ctx.def.mirror);
    if (mirror.search || mirror.hash) {
      throw new UserError(`mirror ${ctx.def.mirror}: must be the archive's base URL, like http://deb.debian.org/debian, without "?" or "#" parts (field "mirror")`);
    }
  },
  async run(ctx) {
    if (!ctx.docker) throw new Error('no Docker engine (the host step did not run)');
    ctx.builderImage = await ensureBuilderImage(ctx.docker, ctx.def.mirror, ctx.progress.sink, ctx.progress.say, ctx.engine?.arch);
  },
};
