/**
 * Two file trees side by side (the partitions of two images, as diff-image.mjs lists them): which
 * paths were added or removed, and for the rest what differs (type, content, mode, owner, symlink
 * target). Modes and owners are compared only where the file system has them (not on FAT).
 */

export interface TreeEntry {
  /** Where the file is on the running system: /etc/hostname, /boot/firmware/config.txt. */
  path: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  mode?: number;
  uid?: number;
  gid?: number;
  size?: number;
  sha256?: string;
  target?: string;
}

export interface FileDifference {
  path: string;
  change: 'added' | 'removed' | 'changed';
  /** For a change, each attribute that differs, said as `what: old -> new`. */
  details: string[];
}

/** The paths that differ, sorted by path. */
export function compareTrees(a: readonly TreeEntry[], b: readonly TreeEntry[]): FileDifference[] {
  const before = new Map(a.map((entry) => [entry.path, entry]));
  const after = new Map(b.map((entry) => [entry.path, entry]));
  const paths = [...new Set([...before.keys(), ...after.keys()])].sort();
  const differences: FileDifference[] = [];
  for (const path of paths) {
    const [old, now] = [before.get(path), after.get(path)];
    if (!old) differences.push({ path, change: 'added', details: [describeEntry(now)] });
    else if (!now) differences.push({ path, change: 'removed', details: [describeEntry(old)] });
    else {
      const details = entryChanges(old, now);
      if (details.length > 0) differences.push({ path, change: 'changed', details });
    }
  }
  return differences;
}

/** What differs between two entries at the same path; a change of type says only that. */
export function entryChanges(a: TreeEntry, b: TreeEntry): string[] {
  if (a.type !== b.type) return [`type ${a.type} -> ${b.type}`];
  const details: string[] = [];
  if (a.sha256 !== b.sha256 || a.size !== b.size) {
    details.push(`content ${a.size} -> ${b.size} bytes, sha256 ${short(a.sha256)} -> ${short(b.sha256)}`);
  }
  if (a.target !== b.target) details.push(`symlink target ${a.target} -> ${b.target}`);
  // A symlink's own mode and owner are whatever the extraction made of them (debugfs sets neither).
  if (a.type === 'symlink') return details;
  if (a.mode !== b.mode) details.push(`mode ${octal(a.mode)} -> ${octal(b.mode)}`);
  if (a.uid !== b.uid || a.gid !== b.gid) details.push(`owner ${a.uid}:${a.gid} -> ${b.uid}:${b.gid}`);
  return details;
}

function describeEntry(entry: TreeEntry | undefined): string {
  if (!entry) return '';
  if (entry.type === 'file') return `file, ${entry.size} bytes`;
  if (entry.type === 'symlink') return `symlink -> ${entry.target}`;
  return entry.type;
}

function short(sha256: string | undefined): string {
  return sha256 === undefined ? '(none)' : sha256.slice(0, 12);
}

function octal(mode: number | undefined): string {
  return mode === undefined ? '(none)' : mode.toString(8).padStart(4, '0');
}

/** One line per difference, the first `limit` of them, then how many more there are. */
export function renderFileDifferences(differences: readonly FileDifference[], limit: number): string[] {
  const marks = { added: '+', removed: '-', changed: '~' } as const;
  const lines = differences.slice(0, limit).map((d) => `${marks[d.change]} ${d.path}: ${d.change === 'changed' ? '' : `${d.change}, `}${d.details.join('; ')}`);
  if (differences.length > limit) lines.push(`and ${differences.length - limit} more`);
  return lines;
}
