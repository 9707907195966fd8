// The root file system as a cached base image plus a delta: what the overlays and the system's
// configuration changed in the tree after the base image was made, as debugfs commands that apply
// it to a copy of the base. Pure functions over find(1)'s listings, so that unit tests run them.
//
// The listings (find -printf, entries ended by NUL):
//   typed:   "%y %P\0"                          every path of a tree, with its type letter
//   changed: "%y %m %U %G %T@ %n %P\0%l\0"      paths whose inode changed after the base was made

/** debugfs's command parser splits on blanks and understands double quotes, nothing more. */
const unquotable = /["\\\n]/;
const typeBits = { f: 0o100000, d: 0o040000, l: 0o120000 };

/** Parses a typed listing into a Map from path to type letter (f, d, l, ...). */
export function parseTypedListing(text) {
  const paths = new Map();
  for (const entry of text.split('\0')) {
    if (entry === '') continue;
    paths.set(entry.slice(2), entry[0]);
  }
  return paths;
}

/** Parses a changed listing into entries {type, mode, uid, gid, mtime, links, path, target}. */
export function parseChangedListing(text) {
  const fields = text.split('\0');
  const entries = [];
  for (let i = 0; i + 1 < fields.length; i += 2) {
    const match = /^(\S) (\d+) (\d+) (\d+) ([\d.]+) (\d+) (.*)$/s.exec(fields[i]);
    if (!match) throw new Error(`root-delta: cannot read the listing entry ${JSON.stringify(fields[i])}`);
    const [, type, mode, uid, gid, mtime, links, path] = match;
    entries.push({ type, mode: parseInt(mode, 8), uid: Number(uid), gid: Number(gid), mtime: Math.floor(Number(mtime)), links: Number(links), path, target: fields[i + 1] });
  }
  return entries;
}

/**
 * The debugfs commands that turn the base image into the current tree, or the reason the delta
 * cannot be expressed that way (then the caller makes the file system from the whole tree).
 *   base:    typed listing of the tree the base image was made from
 *   current: typed listing of the tree now
 *   changed: the changed listing (paths whose inode changed since the base was made)
 *   root:    where the tree is, for debugfs's write to read the files from
 *   sourceDateEpoch: the time given to every inode (mtimes are clamped to it)
 * Returns {commands: string[], summary: {removed, written, directories, links}} or {fallback: string}.
 */
export function deltaCommands({ base, current, changed, root, sourceDateEpoch }) {
  const quote = (path) => `"${path}"`;
  const unsupported = (path, why) => ({ fallback: `/${path}: ${why}` });
  const commands = [];
  const summary = { removed: 0, written: 0, directories: 0, links: 0 };

  // Removed first, deepest first, so that a directory is empty when it goes.
  const removed = [...base.keys()].filter((path) => !current.has(path)).sort().reverse();
  for (const path of removed) {
    if (unquotable.test(path)) return unsupported(path, 'a name debugfs cannot quote');
    commands.push(`${base.get(path) === 'd' ? 'rmdir' : 'rm'} ${quote(`/${path}`)}`);
    summary.removed++;
  }

  // Then what changed, parents before their children (a path sorts after its prefix).
  for (const entry of [...changed].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const { path } = entry;
    const was = path === '' ? 'd' : base.get(path);
    const why = cannotPlace(entry, was);
    if (why) return unsupported(path, why);
    commands.push(...placeEntry(entry, was, root, summary));
    commands.push(...settleInode(path === '' ? '/' : `/${path}`, entry, sourceDateEpoch));
  }
  return { commands, summary };
}

/** Why an entry cannot be put where the file system has `was` (a type letter, or undefined), or undefined. */
function cannotPlace(entry, was) {
  const { type } = entry;
  if (unquotable.test(entry.path) || unquotable.test(entry.target)) return 'a name debugfs cannot quote';
  if (!(type in typeBits)) return `a file of type "${type}" (only files, directories and symbolic links are written)`;
  if (type === 'f' && entry.links > 1) return `a hard link (${entry.links} names)`;
  if (was !== undefined && (was === 'd') !== (type === 'd')) return `a ${type === 'd' ? 'directory' : 'file'} where the file system has a ${was === 'd' ? 'directory' : 'file or link'}`;
  return undefined;
}

/** The commands that put an entry where the file system has `was`: a new directory, or a file or link replacing what is there. */
function placeEntry(entry, was, root, summary) {
  const target = `"/${entry.path}"`;
  if (entry.type === 'd') {
    if (was !== undefined) return [];
    summary.directories++;
    return [`mkdir ${target}`];
  }
  const commands = was === undefined ? [] : [`rm ${target}`];
  if (entry.type === 'f') {
    commands.push(`write "${root}/${entry.path}" ${target}`);
    summary.written++;
  } else {
    commands.push(`symlink ${target} "${entry.target}"`);
    summary.links++;
  }
  return commands;
}

/** debugfs commands giving an inode the entry's type and mode, owner, and times (mtime clamped). */
function settleInode(inode, entry, sourceDateEpoch) {
  const quoted = `"${inode}"`;
  return [
    `sif ${quoted} mode 0${(typeBits[entry.type] | entry.mode).toString(8)}`,
    `sif ${quoted} uid ${entry.uid}`,
    `sif ${quoted} gid ${entry.gid}`,
    `sif ${quoted} mtime @${Math.min(entry.mtime, sourceDateEpoch)}`,
    ...['atime', 'ctime', 'crtime'].map((field) => `sif ${quoted} ${field} @${sourceDateEpoch}`),
  ];
}

/**
 * The debugfs commands that lay a tree onto a stock image's root file system (lay-stock.mjs): only
 * the tree's own paths are touched. A directory the image has keeps its owner and mode (the tree's
 * /etc is not the image's /etc); a new one gets the tree's. A file or link replaces the image's.
 *   existing: Map path -> type letter, the image's entries at the tree's paths (and none other)
 *   entries:  the tree as a changed listing (parseChangedListing), every path
 *   removed:  paths to delete from the image first (files and links only), where they exist
 * Returns {commands, summary: {removed, written, directories, links}}; throws on what cannot be laid.
 */
export function layCommands({ existing, entries, removed, root, sourceDateEpoch }) {
  const quote = (path) => `"${path}"`;
  const commands = [];
  const summary = { removed: 0, written: 0, directories: 0, links: 0 };
  for (const path of removed) {
    if (unquotable.test(path)) throw new Error(`root-delta: /${path} is a name debugfs cannot quote`);
    const was = existing.get(path);
    if (was === undefined) continue;
    if (was === 'd') throw new Error(`root-delta: /${path} is a directory in the image; only files are removed`);
    commands.push(`rm ${quote(`/${path}`)}`);
    summary.removed++;
  }
  for (const entry of [...entries].sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0))) {
    const { path, type } = entry;
    if (path === '') continue;
    const was = existing.get(path);
    const why = cannotPlace(entry, was);
    if (why) throw new Error(`root-delta: /${path}: ${why}`);
    // The image's own directory keeps its owner and mode.
    if (type === 'd' && was !== undefined) continue;
    commands.push(...placeEntry(entry, was, root, summary));
    commands.push(...settleInode(`/${path}`, entry, sourceDateEpoch));
  }
  return { commands, summary };
}

/**
 * debugfs commands giving every path of a tree (and the root) the access time sourceDateEpoch.
 * mke2fs -d copies each file's atime, which says whether something read the file since it was
 * unpacked (a plain tree's files are read by the cache's copy, an overlay's lower files are not),
 * not what the file is. Names debugfs cannot quote are left out (and reported).
 */
export function accessTimeCommands(paths, sourceDateEpoch) {
  const commands = [`sif "/" atime @${sourceDateEpoch}`];
  const unquoted = [];
  for (const path of paths) {
    if (unquotable.test(path)) unquoted.push(path);
    else commands.push(`sif "/${path}" atime @${sourceDateEpoch}`);
  }
  return { commands, unquoted };
}
