/**
 * Byte-reproducible tar archives: the same entries give the same bytes on any machine, whatever
 * the files' mtimes, the umask or the order readdir returned them in. Nothing about the host
 * reaches the archive: owners are root, modes are explicit, every mtime is SOURCE_DATE_EPOCH.
 */
import { lstat, readFile, readdir, readlink } from 'node:fs/promises';
import { join } from 'node:path';
import { pack } from 'tar-stream';
import { UserError } from './errors.ts';

export type TarEntry =
  | { type: 'file'; path: string; content: string | Buffer; mode: number }
  | { type: 'directory'; path: string; mode: number }
  | { type: 'symlink'; path: string; target: string };

/** 2024-01-01T00:00:00Z: any fixed instant will do; it only has to be the same on every build. */
export const DEFAULT_SOURCE_DATE_EPOCH = 1_704_067_200;

/** Reads SOURCE_DATE_EPOCH (seconds since 1970) from an environment; for the CLI edge only. */
export function sourceDateEpochFrom(env: Record<string, string | undefined>): number {
  const value = env.SOURCE_DATE_EPOCH;
  if (value === undefined || value === '') return DEFAULT_SOURCE_DATE_EPOCH;
  if (!/^\d{1,11}$/.test(value)) throw new UserError(`SOURCE_DATE_EPOCH must be a whole number of seconds since 1970 (got "${value}")`);
  return Number(value);
}

/**
 * Packs entries into a tar. Entries are sorted by path and every parent directory is emitted
 * (0755) before its children, so extraction never creates a directory with the umask's mode.
 * Paths are relative (`etc/network/interfaces`); a later entry with the same path wins.
 */
export async function packTar(entries: readonly TarEntry[], sourceDateEpoch: number): Promise<Buffer> {
  const mtime = new Date(sourceDateEpoch * 1000);
  const tar = pack();
  const chunks: Buffer[] = [];
  tar.on('data', (chunk: unknown) => {
    chunks.push(chunk as Buffer);
  });
  const done = new Promise<void>((resolve, reject) => {
    tar.on('end', resolve);
    tar.on('error', reject);
  });

  for (const entry of withParents(entries)) {
    const header = { name: entry.path, mtime, uid: 0, gid: 0, uname: 'root', gname: 'root' };
    if (entry.type === 'file') {
      tar.entry({ ...header, type: 'file', mode: entry.mode }, Buffer.from(entry.content));
    } else if (entry.type === 'directory') {
      tar.entry({ ...header, type: 'directory', mode: entry.mode });
    } else {
      tar.entry({ ...header, type: 'symlink', mode: 0o777, linkname: entry.target });
    }
  }
  tar.finalize();
  await done;
  return Buffer.concat(chunks);
}

/**
 * A directory tree on disk as entries, relative to `root`, each directory's names in sorted order
 * (depth first, so a directory comes right before its contents). Only what an image needs
 * survives: files keep just their exec bit (0755 or 0644), directories are 0755, symlinks stay
 * symlinks. Owner, mtime and the umask the tree was checked out with are dropped, so they cannot
 * make two builds differ. Anything else (a socket, a device) is refused with its path.
 */
export async function readTree(root: string): Promise<TarEntry[]> {
  const entries: TarEntry[] = [];
  async function walk(dir: string, prefix: string): Promise<void> {
    for (const name of (await readdir(dir)).sort()) {
      const source = join(dir, name);
      const path = prefix ? `${prefix}/${name}` : name;
      const stats = await lstat(source);
      if (stats.isSymbolicLink()) {
        entries.push({ type: 'symlink', path, target: await readlink(source) });
      } else if (stats.isDirectory()) {
        entries.push({ type: 'directory', path, mode: 0o755 });
        await walk(source, path);
      } else if (stats.isFile()) {
        entries.push({ type: 'file', path, content: await readFile(source), mode: stats.mode & 0o111 ? 0o755 : 0o644 });
      } else {
        throw new UserError(`${source}: only files, directories and symlinks can go into an image`);
      }
    }
  }
  await walk(root, '');
  return entries;
}

/** The entries by path (later ones replacing earlier ones), each missing parent added as 0755. */
function withParents(entries: readonly TarEntry[]): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const entry of entries) {
    checkPath(entry.path);
    byPath.set(entry.path, entry);
  }
  for (const path of [...byPath.keys()]) {
    const parts = path.split('/');
    for (let i = 1; i < parts.length; i++) {
      const parent = parts.slice(0, i).join('/');
      const existing = byPath.get(parent);
      if (existing === undefined) byPath.set(parent, { type: 'directory', path: parent, mode: 0o755 });
      else if (existing.type !== 'directory') throw new Error(`tar: ${path} needs ${parent} to be a directory, but it is a ${existing.type}`);
    }
  }
  // Plain code-unit order, not localeCompare: the order must not depend on the host's locale.
  // A parent is a prefix of its children's paths, so it always sorts before them.
  return [...byPath.values()].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

function checkPath(path: string): void {
  const parts = path.split('/');
  if (path === '' || path.startsWith('/') || parts.some((part) => part === '' || part === '.' || part === '..')) {
    throw new Error(`tar: entry path must be relative and normalized, like etc/hostname (got "${path}")`);
  }
}
