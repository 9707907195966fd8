/**
 * The build container: one per build, holding the root filesystem in an anonymous volume that is
 * removed with it. The named volume pibond-cache keeps downloaded packages and cached root
 * filesystems between builds; the staging directory is bind-mounted as /out.
 */
import { execIn, removeContainer } from '../../lib/docker.ts';
import { type Step, paths } from '../context.ts';

// mmdebstrap mounts /proc and /dev in the chroot, and binfmt_misc is registered from here:
// that needs CAP_SYS_ADMIN without AppArmor's and seccomp's mount rules. Not --privileged: that
// also grants devices and capabilities the build has no use for.
const buildPrivileges = {
  CapAdd: ['SYS_ADMIN'],
  SecurityOpt: ['apparmor=unconfined', 'seccomp=unconfined'],
};

export const container: Step = {
  title: 'Start the build container',
  async run(ctx) {
    if (!ctx.docker || !ctx.builderImage) throw new Error('no builder image (the builder step did not run)');
    ctx.container = await ctx.docker.createContainer({
      Image: ctx.builderImage,
      name: `pibond-build-${ctx.def.name}-${process.pid}`,
      Labels: { 'org.pibond.role': 'build', 'org.pibond.definition': ctx.def.name },
      Cmd: ['sleep', 'infinity'],
      Tty: false,
      Volumes: { '/work': {} },
      HostConfig: {
        ...buildPrivileges,
        Init: true,
        Binds: [`${ctx.options.cacheVolume}:${paths.cache}`, `${ctx.stagingDir}:/out`],
      },
    });
    await ctx.container.start();
    const arch = ctx.def.base.architecture === 'arm64' ? 'aarch64' : 'arm';
    await execIn(ctx.docker, ctx.container, [`${paths.tools}/register-binfmt`, arch], { sink: ctx.progress.sink });
  },
  async cleanup(ctx) {
    if (ctx.container) await removeContainer(ctx.container);
  },
};
