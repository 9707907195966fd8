/**
 * The root filesystem before the overlays: restored from the cache when everything it depends on
 * is unchanged, else bootstrapped with mmdebstrap (and then cached). Only the fields that reach
 * mmdebstrap are in the key, so a change to an overlay or to the hostname reuses it.
 */
import { createHash } from 'node:crypto';
import { CommandFailed, execIn } from '../../lib/docker.ts';
import type { Definition } from '../../lib/definition.ts';
import { UserError } from '../../lib/errors.ts';
import { mirrorUnreachable, recipeHash } from '../../builder/builder-image.ts';
import { type BuildContext, type Step, paths, requireContainer, runTool, verifyTools } from '../context.ts';
import { initrdModules, packageList } from '../packages.ts';

/**
 * The builder files a root filesystem depends on: the image's tools and the bootstrap script.
 * bootstrap-rootfs stays bash, unlike the other in-container scripts: it is one mmdebstrap call
 * whose hooks are shell snippets mmdebstrap itself runs, so zx would only wrap the same strings.
 */
const bootstrapInputs = (path: string) => path === 'Dockerfile' || path === 'bin/bootstrap-rootfs';

/** What besides the definition a root filesystem is made from. */
export interface RootfsInputs {
  /** SOURCE_DATE_EPOCH: mmdebstrap and the maintainer scripts stamp the files they write with it. */
  sourceDateEpoch?: number;
}

export async function rootfsCacheKey(def: Definition, build: RootfsInputs = {}): Promise<string> {
  const inputs = {
    sourceDateEpoch: build.sourceDateEpoch,
    suite: def.base.suite,
    architecture: def.base.architecture,
    distribution: def.base.distribution,
    mirror: def.mirror,
    packages: packageList(def),
    initrdModules,
    builder: await recipeHash(def.mirror, bootstrapInputs),
  };
  return createHash('sha256').update(JSON.stringify(inputs)).digest('hex').slice(0, 24);
}

/** Each cache entry is ~220 MB: keep the newest few (another definition may still want its own). */
const keptRootfsEntries = 3;
/** rootfs-cache.mjs restore's exit code when there is no entry for the key. */
export const notCached = 3;

export const rootfs: Step = {
  title: 'Root filesystem',
  async verify() {
    await verifyTools('rootfs-cache.mjs', 'bootstrap-rootfs');
  },
  async run(ctx) {
    const { docker, container } = requireContainer(ctx);
    const key = await rootfsCacheKey(ctx.def, { sourceDateEpoch: ctx.options.sourceDateEpoch });
    const entry = { entry: `${paths.rootfsCache}/${key}.tar.zst`, rootfs: paths.rootfs };
    const sink = ctx.progress.sink;

    if (ctx.options.cache) {
      try {
        await runTool(ctx, 'rootfs-cache.mjs', ['restore', entry]);
        ctx.progress.say(`Reused the cached root filesystem ${key}`);
        ctx.rootfs = { key, fromCache: true };
        return;
      } catch (err) {
        if (!(err instanceof CommandFailed)) throw err;
        if (err.exitCode !== notCached) {
          throw new UserError(
            `the cached root filesystem ${key} could not be restored; build once with --no-cache to replace it ` +
              `(or empty the cache: docker volume rm ${ctx.options.cacheVolume}). The restore said:\n  ${err.tail.slice(-5).join('\n  ')}`,
          );
        }
      }
    }
    ctx.progress.say(`Bootstrapping Debian ${ctx.def.base.suite} ${ctx.def.base.architecture} from ${ctx.def.mirror} (a cold build: several minutes)`);
    try {
      await execIn(docker, container, [`${paths.tools}/bootstrap-rootfs`, paths.rootfs], {
        sink,
        env: {
          SUITE: ctx.def.base.suite,
          ARCH: ctx.def.base.architecture,
          MIRROR: ctx.def.mirror,
          PACKAGES: packageList(ctx.def).join(' '),
          INITRD_MODULES: initrdModules.join(' '),
          APT_CACHE: paths.aptCache,
          // mmdebstrap clamps the times it writes to it, and maintainer scripts read it too.
          SOURCE_DATE_EPOCH: String(ctx.options.sourceDateEpoch),
        },
      });
    } catch (err) {
      throw explainBootstrapFailure(err, ctx);
    }
    await runTool(ctx, 'rootfs-cache.mjs', ['save', { ...entry, keep: keptRootfsEntries }]);
    ctx.rootfs = { key, fromCache: false };
  },
};

/** Turns mmdebstrap's most common failures into one clear paragraph naming the field to fix. */
export function explainBootstrapFailure(err: unknown, ctx: Pick<BuildContext, 'def'>): unknown {
  if (!(err instanceof CommandFailed)) return err;
  const log = err.tail.join('\n');
  const missing = /Unable to locate package (\S+)|Package '?(\S+?)'? has no installation candidate/.exec(log);
  if (missing) {
    const name = missing[1] ?? missing[2];
    return new UserError(
      `package "${name}" is not in ${ctx.def.mirror} for ${ctx.def.base.suite}/${ctx.def.base.architecture} ` +
        `(components main, non-free-firmware). Check the spelling in the definition's "packages" field.`,
    );
  }
  if (mirrorUnreachable.test(log)) {
    return new UserError(
      `the Debian mirror ${ctx.def.mirror} could not be reached or does not serve ${ctx.def.base.suite} ` +
        `(field "mirror"). mmdebstrap said:\n  ${err.tail.slice(-5).join('\n  ')}`,
    );
  }
  if (/No space left on device/i.test(log)) {
    return new UserError('the disk is full: Docker\'s storage (usually /var/lib/docker) ran out of space while bootstrapping. Free some space (`docker system prune`) and build again.');
  }
  return err;
}
