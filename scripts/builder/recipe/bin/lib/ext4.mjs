// Reading an ext4 file system inside a disk image with debugfs, without mounting it: the file
// system is named `image?offset=BYTES` (e2fsprogs' unix_io option), so it may sit anywhere in a
// whole-disk image. Used on stock images, whose root pibond reads and lays files onto.
import { mkdtemp, rename, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { $ } from 'zx';

/** debugfs reports a failed command on standard error and still exits 0: its lines other than the banner. */
export function debugfsErrors(stderr) {
  return stderr.split('\n').filter((line) => line.trim() !== '' && !/^debugfs \d/.test(line));
}

/** A file system inside `image` at `offset` bytes. */
export function ext4At(image, offset) {
  const device = `${image}?offset=${offset}`;
  const run = async (request) => (await $`debugfs -R ${request} ${device}`.quiet().nothrow());

  /** What an inode at `path` is (stat's "Type:" line), or undefined when nothing is there. */
  async function type(path) {
    const { stdout } = await run(`stat ${quote(path)}`);
    return /Type: (\w+)/.exec(stdout)?.[1];
  }

  /** A symbolic link's target (fast or slow link), or undefined for anything else. */
  async function linkTarget(path) {
    const { stdout } = await run(`stat ${quote(path)}`);
    if (!/Type: symlink/.test(stdout)) return undefined;
    const fast = /Fast link dest: "(.*)"/.exec(stdout);
    if (fast) return fast[1];
    return (await run(`cat ${quote(path)}`)).stdout;
  }

  /** `path` with every symbolic link along it followed (at most 16), as the kernel would. */
  async function resolve(path) {
    let parts = path.split('/').filter(Boolean);
    for (let hops = 0, i = 0; i < parts.length; i++) {
      const here = `/${parts.slice(0, i + 1).join('/')}`;
      const target = await linkTarget(here);
      if (target === undefined) continue;
      if (++hops > 16) throw new Error(`ext4: too many symbolic links resolving ${path}`);
      const base = target.startsWith('/') ? [] : parts.slice(0, i);
      parts = [...base, ...target.split('/').filter(Boolean), ...parts.slice(i + 1)];
      parts = parts.reduce((kept, part) => (part === '..' ? kept.slice(0, -1) : part === '.' ? kept : [...kept, part]), []);
      i = -1;
    }
    return `/${parts.join('/')}`;
  }

  return {
    device,
    type,
    resolve,
    /** Whether anything is at `path`, following links like the system would. */
    async exists(path) {
      return (await type(await resolve(path))) !== undefined;
    },
    /** A regular file's text (links followed), or undefined when there is none. */
    async readText(path) {
      const real = await resolve(path);
      if ((await type(real)) !== 'regular') return undefined;
      return (await run(`cat ${quote(real)}`)).stdout;
    },
    /**
     * A directory's entries: name -> {type letter (f, d, l, ...), mode, uid, gid}, from `ls -p`
     * (lines "/inode/mode/uid/gid/name/size/"); undefined when there is no such directory.
     */
    async list(dir) {
      if ((await type(dir)) !== 'directory') return undefined;
      const entries = new Map();
      for (const line of (await run(`ls -p ${quote(dir)}`)).stdout.split('\n')) {
        const match = /^\/\d+\/(\d+)\/(\d+)\/(\d+)\/(.*)\/\d*\/$/.exec(line.trim());
        if (!match || match[4] === '.' || match[4] === '..') continue;
        const mode = parseInt(match[1], 8);
        entries.set(match[4], { type: typeLetter(mode), mode: mode & 0o7777, uid: Number(match[2]), gid: Number(match[3]) });
      }
      return entries;
    },
    /** Copies a file or a tree out, owners and modes kept (debugfs dump -p / rdump). */
    async copyOut(path, to) {
      const real = await resolve(path);
      const kind = await type(real);
      if (kind === undefined) return false;
      // rdump makes DIR/<name> inside an existing DIR: made in a directory of its own, then moved.
      const into = kind === 'directory' ? await mkdtemp(`${to}.rdump-`) : undefined;
      try {
        const { stderr } = await run(into ? `rdump ${quote(real)} ${quote(into)}` : `dump -p ${quote(real)} ${quote(to)}`);
        const errors = debugfsErrors(stderr);
        if (errors.length > 0) throw new Error(`ext4: could not copy ${path} out of ${device}: ${errors.join('; ')}`);
        if (into) await rename(join(into, basename(real)), to);
      } finally {
        if (into) await rm(into, { recursive: true, force: true });
      }
      return true;
    },
    /** The superblock's block size, block count and free blocks. */
    async space() {
      const { stdout } = await run('stats');
      const field = (name) => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(stdout)?.[1]);
      return { blockSize: field('Block size'), blocks: field('Block count'), freeBlocks: field('Free blocks') };
    },
  };
}

/** debugfs's command parser splits on blanks and understands double quotes, nothing more. */
export function quote(path) {
  if (/["\\\n]/.test(path)) throw new Error(`ext4: ${JSON.stringify(path)} is a name debugfs cannot quote`);
  return `"${path}"`;
}

function typeLetter(mode) {
  switch (mode & 0o170000) {
    case 0o040000:
      return 'd';
    case 0o120000:
      return 'l';
    case 0o100000:
      return 'f';
    default:
      return 'o';
  }
}
