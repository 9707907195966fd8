/**
 * The build container: one per build, holding the root filesystem in an anonymous volume that is
 * removed with it. The named volume pibond-cache keeps downloaded packages and cached root
 * filesystems between builds. On a local engine the staging directory is bind-mounted as /out; on
 * any other, /out is a second anonymous volume, and the outputs step fetches from it.
 */
import { checkCacheVolume, removeContainer, startContainer } from '../../lib/docker.ts';
import { needsEmulation } from '../../lib/engine.ts';
import { UserError } from '../../lib/errors.ts';
import { type Step, paths, runTool, verifyTools } from '../context.ts';

// mmdebstrap mounts /proc and /dev in the chroot, and binfmt_misc is registered from here:
// that needs CAP_SYS_ADMIN without AppArmor's and seccomp's mount rules. Not --privileged: that
// also grants devices and capabilities the build has no use for.
const buildPrivileges = {
  capAdd: ['SYS_ADMIN'],
  securityOpt: ['apparmor=unconfined', 'seccomp=unconfined'],
};

export const container: Step = {
  title: 'Start the build container',
  async verify(ctx) {
    checkCacheVolume(ctx.options.cacheVolume);
    // The staging directory is bind-mounted as "HOST:/out": a colon in it would split the mount.
    if (ctx.stagingDir.includes(':')) throw new UserError(`--out ${ctx.options.outDir}: the output directory's path must not contain ":" (Docker reads it as a mount separator)`);
    await verifyTools('register-binfmt.mjs');
  },
  async run(ctx) {
    if (!ctx.docker || !ctx.builderImage || !ctx.engine) throw new Error('no builder image (the builder step did not run)');
    const { endpoint: { local }, arch } = ctx.engine;
    const running = await startContainer(ctx.docker, {
      image: ctx.builderImage,
      name: `pibond-build-${ctx.def.name}-${process.pid}`,
      labels: { 'org.pibond.role': 'build', 'org.pibond.definition': ctx.def.name },
      cmd: ['sleep', 'infinity'],
      volumes: local ? [paths.work] : [paths.work, paths.out],
      ...buildPrivileges,
      init: true,
      binds: [`${ctx.options.cacheVolume}:${paths.cache}`, ...(local ? [`${ctx.stagingDir}:${paths.out}`] : [])],
      sink: ctx.progress.sink,
      // Known to the cleanup from its creation on, so an interrupt before start still removes it.
      onCreated: (created) => (ctx.container = created),
    });
    ctx.container = running.container;
    // Stopped while the container was being made: the cleanups ran before it existed, so nothing
    // else removes it (and its attached output would keep pibond running).
    if (ctx.signal?.aborted) {
      await removeContainer(running.container);
      ctx.signal.throwIfAborted();
    }
    // An engine whose CPU runs the image's binaries (arm64 for arm64 or armhf) needs no qemu-user.
    if (!needsEmulation(arch, ctx.def.base.architecture)) {
      ctx.progress.say(`The engine runs ${arch}: no emulation for ${ctx.def.base.architecture}`);
      return;
    }
    await runTool(ctx, 'register-binfmt.mjs', [ctx.def.base.architecture === 'arm64' ? 'aarch64' : 'arm']);
  },
  async cleanup(ctx) {
    if (ctx.container) await removeContainer(ctx.container);
  },
};
