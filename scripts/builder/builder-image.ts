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
import { readFile, readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import tar from 'tar-stream';
import { $ } from 'zx';
import { type Docker, type LineSink, LineSplitter, engineStatus, imageExists } from '../lib/docker.ts';
import { UserError } from '../lib/errors.ts';

export const recipeDir = join(import.meta.dirname, 'recipe');
const registryBase = 'debian:bookworm-slim';

/** What apt (alone or under mmdebstrap) says when the mirror cannot be reached or lacks the suite. */
export const mirrorUnreachable = /Could not resolve|Failed to fetch|Temporary failure resolving|Connection failed|Unable to connect|404\s+Not Found/i;
const bootstrappedBase = 'pibond-base:bookworm';

interface RecipeFile {
  path: string;
  content: Buffer;
  mode: number;
}

async function readRecipe(): Promise<RecipeFile[]> {
  const files: RecipeFile[] = [];
  async function walk(rel: string): Promise<void> {
    for (const name of (await readdir(join(recipeDir, rel))).sort()) {
      const path = rel ? `${rel}/${name}` : name;
      const info = await stat(join(recipeDir, path));
      if (info.isDirectory()) await walk(path);
      else files.push({ path, content: await readFile(join(recipeDir, path)), mode: info.mode & 0o111 ? 0o755 : 0o644 });
    }
  }
  await walk('');
  return files;
}

/** A hash of the recipe's files (those `include` accepts), and the mirror they install from. */
export async function recipeHash(mirror: string, include: (path: string) => boolean = () => true): Promise<string> {
  const hash = createHash('sha256').update(mirror);
  for (const file of await readRecipe()) {
    if (include(file.path)) hash.update(`${file.path}\0${file.mode}\0`).update(file.content);
  }
  return hash.digest('hex').slice(0, 16);
}

/** The tag of the builder image for this recipe and mirror. */
export async function builderTag(mirror: string): Promise<string> {
  return `pibond-builder:${await recipeHash(mirror)}`;
}

/** Makes sure the builder image for this recipe exists; returns its tag. */
export async function ensureBuilderImage(docker: Docker, mirror: string, sink: LineSink, say: (m: string) => void): Promise<string> {
  const tag = await builderTag(mirror);
  if (await imageExists(docker, tag)) return tag;
  const base = await ensureBaseImage(docker, mirror, sink, say);
  say(`Building the builder image ${tag} from ${base}`);
  const context = await packContext(await readRecipe());
  const stream = await docker.buildImage(context, { t: tag, buildargs: { BASE: base, MIRROR: mirror }, rm: true, forcerm: true });
  // apt's own complaint about the mirror comes before a long list of packages it then lacks.
  const aptErrors: string[] = [];
  const out = new LineSplitter((line, stream) => {
    if (/^(W|E|Err):/.test(line.trim()) && aptErrors.length < 6) aptErrors.push(line.trim());
    sink(line, stream);
  }, 'stdout');
  await new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err) => (err ? reject(err) : resolve()),
      (event: { stream?: string; error?: string }) => {
        if (event.stream) out.write(event.stream);
        if (event.error) reject(builderBuildFailed(mirror, aptErrors, out.tail));
      },
    );
  });
  out.end();
  if (!(await imageExists(docker, tag))) throw new UserError(`building the builder image failed; its log is above:\n  ${out.tail.join('\n  ')}`);
  return tag;
}

async function ensureBaseImage(docker: Docker, mirror: string, sink: LineSink, say: (m: string) => void): Promise<string> {
  if (await imageExists(docker, bootstrappedBase)) return bootstrappedBase;
  if (await imageExists(docker, registryBase)) return registryBase;
  try {
    say(`Pulling ${registryBase}`);
    const stream = await docker.pull(registryBase);
    await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
    return registryBase;
  } catch (err) {
    say(`No container registry answered (${firstLine(err)}); bootstrapping ${bootstrappedBase} from ${mirror} instead`);
  }
  await bootstrapBase(docker, mirror, sink, say);
  return bootstrappedBase;
}

/** mmdebstrap | docker import: a minimal Debian with apt, made from the mirror alone (~15 s). */
async function bootstrapBase(docker: Docker, mirror: string, sink: LineSink, say: (m: string) => void): Promise<void> {
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
  const child = spawn('mmdebstrap', ['--variant=apt', '--quiet', 'bookworm', '-', mirror], { stdio: ['ignore', 'pipe', 'pipe'] });
  const errors = new LineSplitter(sink, 'stderr');
  child.stderr.on('data', (c: Buffer) => errors.write(c));
  const exited = new Promise<number>((resolve) => child.on('close', (code) => resolve(code ?? -1)));
  const [repo, tag] = bootstrappedBase.split(':');
  const stream = await docker.importImage(child.stdout, { repo, tag });
  await new Promise<void>((resolve, reject) => docker.modem.followProgress(stream, (err) => (err ? reject(err) : resolve())));
  const code = await exited;
  errors.end();
  if (code !== 0) {
    await docker.getImage(bootstrappedBase).remove().catch((err: unknown) => {
      if (engineStatus(err) !== 404) throw err;
    });
    throw new UserError(`bootstrapping the base image from ${mirror} failed (mmdebstrap exit ${code}):\n  ${errors.tail.join('\n  ')}`);
  }
}

async function packContext(files: RecipeFile[]): Promise<NodeJS.ReadableStream> {
  const pack = tar.pack();
  for (const file of files) pack.entry({ name: file.path, mode: file.mode, mtime: new Date(0), uid: 0, gid: 0 }, file.content);
  pack.finalize();
  // dockerode wants a Node stream; tar-stream's pack is a streamx one.
  return pack.pipe(new PassThrough());
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
  return ((err as Error)?.message ?? String(err)).split('\n')[0] ?? '';
}
