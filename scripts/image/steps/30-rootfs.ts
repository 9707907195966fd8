/**
 * The root filesystem before the overlays: the cached tree (mounted as the lower layer of an
 * overlay, so the build's changes never reach the cache) when everything it depends on is
 * unchanged, else bootstrapped with mmdebstrap (and then cached). Only the fields that reach
 * mmdebstrap are in the key, so a change to an overlay or to the hostname reuses it.
 */
import { createHash } from 'node:crypto';
import { CommandFailed, execIn } from '../../lib/docker.ts';
import type { Definition } from '../../lib/definition.ts';
import { UserError } from '../../lib/errors.ts';
import { type LockMismatch, type PackageLock, aptPreferences, checkLockCovers, checkLockFits, lockHash, lockMismatchError, lockMismatches, parsePackageVersions, readLock } from '../../lib/lock.ts';
import { mirrorUnreachable, recipeHash } from '../../builder/builder-image.ts';
import { type BuildContext, type Step, paths, requireContainer, runTool, verifyTools } from '../context.ts';
import { initrdModules, mirrorArgument, packageList } from '../packages.ts';

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
  /** The locked package set: a locked build never reuses a root filesystem of other versions. */
  lock?: PackageLock;
}

export async function rootfsCacheKey(def: Definition, build: RootfsInputs = {}): Promise<string> {
  const inputs = {
    sourceDateEpoch: build.sourceDateEpoch,
    lock: build.lock && lockHash(build.lock),
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

/**
 * Each cache entry is a ~0.7 GB tree: keep the newest few (another definition may still want its
 * own). Five: the four stacks' example definitions (which npm test builds in turn) and one more; with
 * three, building four definitions in a row found every root evicted (each one cold, 5-7 min).
 */
export const keptRootfsEntries = 5;
/** rootfs-cache.mjs restore's exit code when there is no entry for the key. */
export const notCached = 3;

export const rootfs: Step = {
  title: 'Root filesystem',
  async verify(ctx) {
    await verifyTools('rootfs-cache.mjs', 'bootstrap-rootfs');
    if (ctx.options.lock) {
      // A lock that cannot fit is found here, in a second, not after the bootstrap.
      const loaded = await readLock(ctx.options.lock.file);
      checkLockFits(loaded, ctx.def);
      checkLockCovers(loaded, packageList(ctx.def), ctx.def);
      ctx.lock = loaded;
    }
  },
  async run(ctx) {
    const { docker, container } = requireContainer(ctx);
    const lock = ctx.lock;
    const key = await rootfsCacheKey(ctx.def, { sourceDateEpoch: ctx.options.sourceDateEpoch, lock: lock?.lock });
    // The entry is an unpacked tree the build's root filesystem is an overlay of (rootfs-cache.mjs).
    const entry = { entry: `${paths.rootfsCache}/${key}.tree`, rootfs: paths.rootfs };
    if (lock) ctx.progress.say(`Installing the locked package set from ${lock.file}${ctx.options.lock?.from === 'beside the definition' ? ' (--no-lock ignores it)' : ''}`);

    if (ctx.options.cache) {
      try {
        await runTool(ctx, 'rootfs-cache.mjs', ['restore', { ...entry, work: paths.work }]);
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
    const unavailable: string[] = [];
    try {
      await execIn(docker, container, [`${paths.tools}/bootstrap-rootfs`, paths.rootfs], {
        sink: (line, stream) => {
          ctx.progress.sink(line, stream);
          if (line.startsWith(lockCheckPrefix)) unavailable.push(line.slice(lockCheckPrefix.length));
        },
        env: {
          SUITE: ctx.def.base.suite,
          ARCH: ctx.def.base.architecture,
          MIRROR: mirrorArgument(ctx.def),
          PACKAGES: packageList(ctx.def).join(' '),
          INITRD_MODULES: initrdModules.join(' '),
          APT_CACHE: paths.aptCache,
          // mmdebstrap clamps the times it writes to it, and maintainer scripts read it too.
          SOURCE_DATE_EPOCH: String(ctx.options.sourceDateEpoch),
          ...(lock && { LOCKED: lock.lock.packages.map((p) => `${p.name} ${p.version}`).join('\n'), APT_PREFERENCES: aptPreferences(lock.lock) }),
        },
      });
    } catch (err) {
      if (lock && unavailable.length > 0) throw lockMismatchError(lock, parseLockCheck(unavailable), 'mirror');
      throw explainBootstrapFailure(err, ctx);
    }
    if (lock) {
      // The check before installing saw the index; this one sees what dpkg installed (a locked
      // version apt resolved away, say): a root filesystem of other versions is never cached as locked.
      const mismatches = lockMismatches(lock.lock, await installedPackages(ctx));
      if (mismatches.length > 0) throw lockMismatchError(lock, mismatches, 'installed');
    }
    await runTool(ctx, 'rootfs-cache.mjs', ['save', { ...entry, keep: keptRootfsEntries, sourceDateEpoch: ctx.options.sourceDateEpoch }]);
    ctx.rootfs = { key, fromCache: false };
  },
};

/** What bootstrap-rootfs --check-locked prints for each locked package the mirror cannot give. */
const lockCheckPrefix = 'pibond-lock: ';

/** bootstrap-rootfs --check-locked's lines, "NAME LOCKED CANDIDATE" ("-": none), as mismatches. */
export function parseLockCheck(lines: readonly string[]): LockMismatch[] {
  return lines
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length === 3)
    .map(([name = '', locked, candidate]) => ({ name, locked, installed: candidate === '-' ? undefined : candidate }))
    .sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/** The root filesystem's installed packages, name -> version, from its own dpkg database. */
async function installedPackages(ctx: BuildContext): Promise<Map<string, string>> {
  const { docker, container } = requireContainer(ctx);
  const lines: string[] = [];
  await execIn(docker, container, ['dpkg-query', `--admindir=${paths.rootfs}/var/lib/dpkg`, '-W', '-f', '${db:Status-Status} ${Package} ${Version}\n'], {
    sink: (line, stream) => {
      if (stream === 'stdout' && line.startsWith('installed ')) lines.push(line.slice('installed '.length));
      else if (stream === 'stderr') ctx.progress.sink(line, stream);
    },
  });
  return parsePackageVersions(lines);
}

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
