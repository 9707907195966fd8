/** The boot-chain self-check on the finished image: a broken chain fails the build. */
import { CommandFailed, execIn } from '../../lib/docker.ts';
import { UserError } from '../../lib/errors.ts';
import { type Step, paths, requireContainer } from '../context.ts';
import { initrdModules } from '../packages.ts';

export const check: Step = {
  title: 'Check the boot chain',
  async run(ctx) {
    const { docker, container } = requireContainer(ctx);
    const problems: string[] = [];
    try {
      await execIn(
        docker,
        container,
        [`${paths.tools}/check-boot-chain`, paths.image(ctx.def.name)],
        {
          sink: (line, stream) => {
            ctx.progress.sink(line, stream);
            if (line.startsWith('self-check: ') && stream === 'stderr') problems.push(line.slice('self-check: '.length));
          },
          env: {
            REQUIRED_MODULES: initrdModules.join(' '),
            BUILTIN_MODULES: `${paths.rootfs}/usr/lib/modules/*/modules.builtin`,
          },
        },
      );
    } catch (err) {
      if (err instanceof CommandFailed && problems.length > 0) {
        throw new UserError(`the image would not boot; the self-check found:\n  ${problems.join('\n  ')}`);
      }
      throw err;
    }
  },
};
