/** The boot-chain self-check on the finished image: a broken chain fails the build. */
import { CommandFailed } from '../../lib/docker.ts';
import { UserError } from '../../lib/errors.ts';
import { type Step, paths, runTool, verifyTools } from '../context.ts';
import { applianceModules, initrdModules } from '../packages.ts';

export const check: Step = {
  title: 'Check the boot chain',
  async verify() {
    await verifyTools('check-boot-chain.mjs');
  },
  async run(ctx) {
    const problems: string[] = [];
    try {
      await runTool(ctx, 'check-boot-chain.mjs', [{ image: paths.image(ctx.def.name), root: paths.rootfs, requiredModules: initrdModules, applianceModules }], (line, stream) => {
        if (line.startsWith('self-check: ') && stream === 'stderr') problems.push(line.slice('self-check: '.length));
      });
    } catch (err) {
      if (err instanceof CommandFailed && problems.length > 0) {
        throw new UserError(`the image would not boot; the self-check found:\n  ${problems.join('\n  ')}`);
      }
      throw err;
    }
  },
};
