/**
 * The builder image: Debian bookworm with mmdebstrap, qemu-user/system and the disk tools, built
 * from the recipe in ./builder/ and tagged by the recipe's hash, so it is rebuilt only when the
 * recipe (or the mirror it installs from) changes.
 *
 * Its base is debian:bookworm-slim where a container registry answers. Where none does (air-gapped
 * sites), the base is bootstrapped from the Debian mirror with mmdebstrap on the host and imported;
 * as root on Debian or Ubuntu pibond installs mmdebstrap for that, like docker.io.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { Readable } from 'node:stream';
import { $ } from 'zx';
import {
  type Docker,
  type LineSink,
  EngineProgressError,
  LineSplitter,
  buildImage,
  imageExists,
  importImage,
  pullImage,
  removeImage,
} from '../lib/docker.ts';
import { UserError, errorMessage } from '../lib/errors.ts';
import { DEFAULT_SOURCE_DATE_EPOCH, type TarEntry, packTar, readTree } from '../lib/tar.ts';

export const recipeDir = join(import.meta.dirname, 'recipe');
const registryBase = 'debian:bookworm-slim';

/** What apt (alone or under mmdebstrap) says when the mirror cannot be reached or lacks the suite. */
export const mirrorUnreachable = /Could not resolve|Failed to fetch|Temporary failure resolving|Connection failed|Unable to connect|404\s+Not Found/i;
const bootstrapped = { repo: 'pibond-base', tag: 'bookworm' };
const bootstrappedBase = `${bootstrapped.repo}:${bootstrapped.tag}`;

/** zx from this checkout's node_modules: the container cannot count on reaching npm, and zx 8 needs nothing else. */
const zxDir = dirname(createRequire(import.meta.url).resolve('zx/package.json'));

/** The build context: the recipe's tree, and zx (as zx/) for the in-container scripts. */
async function readRecipe(): Promise<TarEntry[]> {
  const zx = (await readTree(zxDir)).map((entry) => ({ ...entry, path: `zx/${entry.path}` }));
  return [...(await readTree(recipeDir)), { type: 'directory', path: 'zx', mode: 0o755 }, ...zx];
}

/** A hash of the build context's files and symlinks (those `include` accepts), and the mirror they install from. */
export async function recipeHash(mirror: string, include: (path: string) => boolean = () => true): Promise<string> {
  const hash = createHash('sha256').update(mirror);
  for (const entry of await readRecipe()) {
    if (!include(entry.path)) continue;
    // Directories are implied by the paths. A file's line is the one the hash always had, so this
    // code changing does not retag the builder (nor the root filesystems cached under its hash).
    if (entry.type === 'file') hash.update(`${entry.path}\0${entry.mode}\0`).update(entry.content);
    else if (entry.type === 'symlink') hash.update(`${entry.path}\0symlink\0${entry.target}\0`);
  }
  return hash.digest('hex').slice(0, 16);
}

/** The tag of the builder image for this recipe and mirror. */
export async function builderTag(mirror: string): Promise<string> {
  return `pibond-builder:${await recipeHash(mirror)}`;
}

/**
 * Makes sure the builder image for this recipe exists; returns its tag. `arch` is the engine's CPU
 * (Debian's name): a bootstrapped base must be made for it, not for this machine.
 */
export async function ensureBuilderImage(docker: Docker, mirror: string, sink: LineSink, say: (m: string) => void, arch?: string): Promise<string> {
  const tag = await builderTag(mirror);
  if (await imageExists(docker, tag)) return tag;
  const base = await ensureBaseImage(docker, mirror, sink, say, arch);
  say(`Building the builder image ${tag} from ${base}`);
  // The context's bytes do not name the image (the recipe hash does), so any fixed epoch will do.
  const context = Readable.from([await packTar(await readRecipe(), DEFAULT_SOURCE_DATE_EPOCH)]);
  // apt's own complaint about the mirror comes before a long list of packages it then lacks.
  const aptErrors: string[] = [];
  const tail: string[] = [];
  const collect: LineSink = (line, stream) => {
    if (/^(W|E|Err):/.test(line.trim()) && aptErrors.length < 6) aptErrors.push(line.trim());
    tail.push(line);
    if (tail.length > 15) tail.shift();
    sink(line, stream);
  };
  try {
    await buildImage(docker, context, { tag, buildArgs: { BASE: base, MIRROR: mirror } }, collect);
  } catch (err) {
    if (err instanceof EngineProgressError) throw builderBuildFailed(mirror, aptErrors, [...err.tail, err.message]);
    throw err;
  }
  if (!(await imageExists(docker, tag))) throw new UserError(`building the builder image failed; its log is above:\n  ${tail.join('\n  ')}`);
  return tag;
}

async function ensureBaseImage(docker: Docker, mirror: string, sink: LineSink, say: (m: string) => void, arch: string | undefined): Promise<string> {
  if (await imageExists(docker, bootstrappedBase)) return bootstrappedBase;
  if (await imageExists(docker, registryBase)) return registryBase;
  try {
    say(`Pulling ${registryBase}`);
    await pullImage(docker, registryBase);
    return registryBase;
  } catch (err) {
    say(`No container registry answered (${firstLine(err)}); bootstrapping ${bootstrappedBase} from ${mirror} instead`);
  }
  await bootstrapBase(docker, mirror, sink, say, arch);
  return bootstrappedBase;
}

/**
 * mmdebstrap | docker import: a minimal Debian with apt, made from the mirror alone (~15 s), for
 * the engine's CPU (another CPU than this machine's needs qemu-user-static here, as mmdebstrap says).
 */
async function bootstrapBase(docker: Docker, mirror: string, sink: LineSink, say: (m: string) => void, arch: string | undefined): Promise<void> {
  if (!existsSync('/usr/bin/mmdebstrap')) {
    if (process.getuid?.() !== 0 || !existsSync('/usr/bin/apt-get')) {
      throw new UserError(
        `no container registry answered and mmdebstrap is not installed, so the builder's Debian base cannot be made. ` +
          `Install mmdebstrap (e.g. \`apt-get install mmdebstrap\`), or load a Debian bookworm image as ${registryBase} (\`docker load\`).`,
      );
    }
    say('Installing mmdebstrap with apt-get, to bootstrap the base image from the mirror');
    const sh = $({ quiet: true, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
    await sh`apt-get update -qq`;
    await sh`apt-get install -y -qq mmdebstrap`;
  }
  const architectures = arch ? [`--architectures=${arch}`] : [];
  const child = spawn('mmdebstrap', ['--variant=apt', '--quiet', ...architectures, 'bookworm', '-', mirror], { stdio: ['ignore', 'pipe', 'pipe'] });
  const errors = new LineSplitter(sink, 'stderr');
  child.stderr.on('data', (c: Buffer) => errors.write(c));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  await importImage(docker, child.stdout, bootstrapped.repo, bootstrapped.tag);
  const code = await exited;
  errors.end();
  if (code !== 0) {
    await removeImage(docker, bootstrappedBase);
    throw new UserError(`bootstrapping the base image from ${mirror} failed (mmdebstrap exit ${code}):\n  ${errors.tail.join('\n  ')}`);
  }
}

function builderBuildFailed(mirror: string, aptErrors: string[], tail: string[]): UserError {
  if (aptErrors.some((line) => mirrorUnreachable.test(line))) {
    return new UserError(
      `the Debian mirror ${mirror} could not be reached while building the builder image (field "mirror"). apt said:\n  ${aptErrors.join('\n  ')}`,
    );
  }
  return new UserError(`building the builder image failed; its last lines:\n  ${[...aptErrors, ...tail].join('\n  ')}`);
}

function firstLine(err: unknown): string {
  return errorMessage(err).split('\n')[0] ?? '';
}
