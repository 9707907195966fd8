/**
 * The stock image file a definition names (base.image): a path relative to the definition's
 * folder, or an http(s) URL downloaded once into the host's cache. Either way the file is checked
 * against base.sha256 before anything is made from it, and a download becomes its cache entry
 * only once whole and checked (written under a temporary name, renamed at the end).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { DownloadFailed, downloadHashed } from '../download.ts';
import { UserError } from '../errors.ts';
import { defaultRuntimeCacheDir } from '../node-runtime.ts';

export const isUrl = (image: string): boolean => /^https?:\/\//i.test(image);

/** Where downloaded stock images are kept: $XDG_CACHE_HOME/pibond/stock, or ~/.cache/pibond/stock. */
export function stockCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return join(defaultRuntimeCacheDir(env), 'stock');
}

/** The image's file name as the build sees it (foo.img.xz), for its suffix and for messages. */
export function stockFileName(image: string): string {
  return basename(isUrl(image) ? new URL(image).pathname : image);
}

/**
 * The local, checked file of `image` (as written in the definition `definitionFile`). A download
 * says what it fetches through `say`.
 */
export async function stockImageFile(image: string, sha256: string, definitionFile: string, say: (line: string) => void, cacheDir = stockCacheDir()): Promise<string> {
  if (!isUrl(image)) {
    const path = resolve(dirname(definitionFile), image);
    const info = await stat(path).catch(() => undefined);
    if (!info?.isFile()) throw new UserError(`${definitionFile}: base.image ${image}: ${info ? 'is not a file' : `no such file (looked at ${path})`}`);
    await checkSha256(path, sha256, `${definitionFile}: base.image ${image}`);
    return path;
  }
  const cached = join(cacheDir, sha256, stockFileName(image));
  if (await stat(cached).catch(() => undefined)) {
    await checkSha256(cached, sha256, `the cached download of ${image} (${cached}; delete it to download again)`);
    return cached;
  }
  await mkdir(dirname(cached), { recursive: true });
  const partial = `${cached}.partial-${process.pid}`;
  try {
    say(`Downloading ${image}`);
    let digest: Buffer;
    try {
      digest = await downloadHashed(image, partial, 'sha256');
    } catch (err) {
      if (!(err instanceof DownloadFailed)) throw err;
      const why = err.kind === 'status' ? `the server answered ${err.detail}` : err.kind === 'broken' ? `it broke off ${err.detail}` : err.detail;
      throw new UserError(`${definitionFile}: base.image ${image} could not be downloaded: ${why}`);
    }
    const actual = digest.toString('hex');
    if (actual !== sha256) throw checksumMismatch(`${definitionFile}: base.image ${image}`, sha256, actual);
    await rename(partial, cached);
    return cached;
  } finally {
    await rm(partial, { force: true });
  }
}

async function checkSha256(file: string, expected: string, what: string): Promise<void> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  const actual = hash.digest('hex');
  if (actual !== expected) throw checksumMismatch(what, expected, actual);
}

function checksumMismatch(what: string, expected: string, actual: string): UserError {
  return new UserError(
    `${what}: its sha256 is ${actual}, but base.sha256 says ${expected}. The file is not the one the definition names ` +
      '(a different release, or a damaged download): check the checksum its publisher lists, and the file.',
  );
}
