/** The host: a Docker engine that answers (installed and started if we may), and room for the image. */
import { statfs } from 'node:fs/promises';
import { describeEngine, engineEndpoint } from '../../lib/engine.ts';
import { ensureDockerEngine } from '../../lib/host.ts';
import { UserError } from '../../lib/errors.ts';
import type { Step } from '../context.ts';

export const host: Step = {
  title: 'Check the host',
  async verify(ctx) {
    // The raw image is sparse, but its compressed copy and the staging files need real room.
    const stats = await statfs(ctx.options.outDir);
    const free = stats.bavail * stats.bsize;
    const needed = ctx.def.disk.size * 1.5;
    if (free < needed) {
      throw new UserError(
        `not enough free disk space in ${ctx.options.outDir}: ${gib(free)} free, the build needs about ${gib(needed)} ` +
          `for a ${gib(ctx.def.disk.size)} image (disk.size). Free some space or choose another --out.`,
      );
    }
  },
  async run(ctx) {
    ctx.docker = await ensureDockerEngine(ctx.progress.say);
    ctx.engine = await describeEngine(ctx.docker, engineEndpoint());
    const { endpoint, arch } = ctx.engine;
    const where = endpoint.local ? 'on this machine' : 'elsewhere (not a local socket): the outputs come back through its API';
    ctx.progress.say(`Docker engine: ${endpoint.words}, ${arch}, ${where}`);
  },
};

function gib(bytes: number): string {
  return `${(bytes / 1024 ** 3).toFixed(1)} GiB`;
}
