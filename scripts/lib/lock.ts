/**
 * The lock of an image's package set (`<definition>.lock.json`, beside the definition): every
 * package of a build with its version, so a rebuild next year installs today's versions. Written
 * by `pibond lock MANIFEST` from a build's manifest; read by `pibond build` (or `--locked FILE`,
 * which also takes a manifest), which pins each version with apt preferences and checks what was
 * installed against it.
 */
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { z } from 'zod';
import type { Definition } from './definition.ts';
import { DefinitionError, schemaProblems } from './definition/problems.ts';
import { UserError } from './errors.ts';

export interface LockedPackage {
  name: string;
  version: string;
  architecture: string;
}

const packageName = z.string({ error: 'must be a Debian package name like bash' }).regex(/^[a-z0-9][a-z0-9+.-]+$/);
/** Debian policy 5.6.12: [epoch:]upstream[-revision]. */
const packageVersion = z.string({ error: 'must be a Debian version like 5.2.15-2+b2 or 1:9.2p1-2' }).regex(/^(\d+:)?[0-9][A-Za-z0-9.+~:-]*$/);
const packageArchitecture = z.string({ error: 'must be a Debian architecture like arm64 or all' }).regex(/^[a-z0-9-]+$/);
const lockedPackage = z.strictObject(
  { name: packageName, version: packageVersion, architecture: packageArchitecture },
  { error: 'must be a mapping with the keys name, version, architecture' },
);
const packages = z.array(lockedPackage, { error: 'must be a list of packages, each {name, version, architecture}' });
const suite = z.string({ error: 'must be a Debian suite like bookworm' }).regex(/^[a-z][a-z0-9-]*$/);
const architecture = z.string({ error: 'must be a Debian architecture like arm64' }).regex(/^[a-z0-9-]+$/);

/** When the locked versions were fetched: the snapshot.debian.org timestamp that still serves them. */
const created = z.string({ error: 'must be a UTC time like 2025-03-01T12:00:00Z' }).regex(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);

export const lockVersion = 1;

export const lockSchema = z.strictObject(
  {
    lockVersion: z.literal(lockVersion, { error: `must be ${lockVersion} (this pibond reads lock files of version ${lockVersion})` }),
    created,
    suite,
    architecture,
    mirror: z.string({ error: 'must be the mirror the packages came from, a URL' }),
    packages,
  },
  { error: 'must be a mapping with the keys lockVersion, created, suite, architecture, mirror, packages' },
);

export type PackageLock = z.output<typeof lockSchema>;

/** The parts of a build manifest (scripts/lib/manifest.ts) a lock is made from; the rest may be anything. */
const manifestSchema = z.looseObject({
  base: z.looseObject({ suite, architecture }),
  mirror: z.string({ error: 'must be the mirror the packages came from, a URL' }),
  packages,
  definition: z.looseObject({ file: z.string() }).optional(),
});

/** A lock file or a build manifest, from `--locked FILE`, the default lock file or `pibond lock`. */
export interface LoadedLock {
  file: string;
  lock: PackageLock;
  sha256: string;
  /** The definition a manifest says it was built from (undefined for a lock file). */
  definitionFile?: string;
}

/** Reads a lock file or a manifest; every problem is a UserError naming the file and the field. */
export async function readLock(file: string): Promise<LoadedLock> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new UserError(`cannot read the lock ${file}: ${(err as Error).message}`);
  }
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  return { file, sha256, ...parseLock(bytes.toString('utf8'), file, isoSeconds((await stat(file)).mtime)) };
}

/**
 * A lock from a file's text: a lock file as it is, a manifest turned into one. A manifest records
 * no time (two builds of the same inputs write the same bytes): its packages are taken to be as
 * old as the file, `fileTime` (its mtime, which the build's final rename keeps).
 */
export function parseLock(text: string, file: string, fileTime: string): { lock: PackageLock; definitionFile?: string } {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UserError(`${file}: not JSON (${(err as Error).message}); --locked takes a lock file (pibond lock) or a build manifest (out/<name>.manifest.json)`);
  }
  const isManifest = typeof raw === 'object' && raw !== null && !('lockVersion' in raw) && 'base' in raw;
  if (!isManifest) {
    const result = lockSchema.safeParse(raw);
    if (!result.success) throw new DefinitionError(schemaProblems(result.error.issues, raw, file, lockSchema));
    return { lock: result.data };
  }
  const result = manifestSchema.safeParse(raw);
  if (!result.success) throw new DefinitionError(schemaProblems(result.error.issues, raw, file, manifestSchema));
  const manifest = result.data;
  return {
    lock: sortedLock({
      lockVersion,
      created: fileTime,
      suite: manifest.base.suite,
      architecture: manifest.base.architecture,
      mirror: manifest.mirror,
      packages: manifest.packages,
    }),
    definitionFile: manifest.definition?.file,
  };
}

function sortedLock(lock: PackageLock): PackageLock {
  const packages = [...lock.packages].sort((a, b) => compare(a.name, b.name) || compare(a.architecture, b.architecture));
  return { ...lock, packages };
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The lock file's text: fixed key order, packages sorted, one package a line, so diffs stay small. */
export function renderLock(lock: PackageLock): string {
  const sorted = sortedLock(lock);
  const head = { lockVersion: sorted.lockVersion, created: sorted.created, suite: sorted.suite, architecture: sorted.architecture, mirror: sorted.mirror };
  const rows = sorted.packages.map((p) => `    ${JSON.stringify({ name: p.name, version: p.version, architecture: p.architecture })}`);
  const fields = Object.entries(head).map(([key, value]) => `  ${JSON.stringify(key)}: ${JSON.stringify(value)},`);
  return `{\n${fields.join('\n')}\n  "packages": [\n${rows.join(',\n')}\n  ]\n}\n`;
}

/** The lock file pibond build picks up by itself: images/x.yaml -> images/x.lock.json. */
export function defaultLockFile(definitionFile: string): string {
  return join(dirname(definitionFile), `${basename(definitionFile, extname(definitionFile))}.lock.json`);
}

/** The lock belongs to another suite or architecture than the definition: no version in it could fit. */
export function checkLockFits(loaded: Pick<LoadedLock, 'file' | 'lock'>, def: Definition): void {
  for (const field of ['suite', 'architecture'] as const) {
    if (loaded.lock[field] !== def.base[field]) {
      throw new UserError(
        `${loaded.file}: ${field}: the lock is for ${loaded.lock[field]}, the definition's base.${field} is ${def.base[field]}; ` +
          `make a lock from a build of this definition (pibond build --no-lock, then pibond lock out/${def.name}.manifest.json)`,
      );
    }
  }
}

/** A definition package the lock does not hold: the lock was made before it was added. */
export function checkLockCovers(loaded: Pick<LoadedLock, 'file' | 'lock'>, wanted: readonly string[], def: Pick<Definition, 'name'>): void {
  const locked = new Set(loaded.lock.packages.map((p) => p.name));
  const missing = wanted.filter((name) => !locked.has(name));
  if (missing.length > 0) {
    throw new UserError(
      `${loaded.file}: packages: the definition installs ${missing.join(', ')}, which the lock does not hold; ` +
        `build once with --no-lock, then pibond lock out/${def.name}.manifest.json to lock the new set`,
    );
  }
}

/** The lock's fingerprint for the rootfs cache key: its package list, not when or from where it was made. */
export function lockHash(lock: PackageLock): string {
  const list = sortedLock(lock).packages.map((p) => `${p.name} ${p.version} ${p.architecture}`).join('\n');
  return createHash('sha256').update(list).digest('hex');
}

/**
 * apt preferences pinning every locked version. 1001 makes apt take that version even over a
 * newer one (a downgrade included); a version the mirror lacks matches nothing, so apt falls back,
 * which the checks before and after the bootstrap catch.
 */
export function aptPreferences(lock: PackageLock): string {
  return sortedLock(lock)
    .packages.map((p) => `Package: ${p.name}\nPin: version ${p.version}\nPin-Priority: 1001\n`)
    .join('\n');
}

/** One package whose installed (or installable) version is not the locked one. */
export interface LockMismatch {
  name: string;
  /** undefined: installed but not in the lock. */
  locked?: string;
  /** undefined: not installed (or not in the mirror at all). */
  installed?: string;
}

/** Every package where `installed` (name -> version) and the lock disagree, by name. */
export function lockMismatches(lock: PackageLock, installed: ReadonlyMap<string, string>): LockMismatch[] {
  const mismatches: LockMismatch[] = [];
  const locked = new Map(lock.packages.map((p) => [p.name, p.version]));
  for (const [name, version] of locked) {
    const actual = installed.get(name);
    if (actual !== version) mismatches.push({ name, locked: version, installed: actual });
  }
  for (const [name, version] of installed) if (!locked.has(name)) mismatches.push({ name, installed: version });
  return mismatches.sort((a, b) => compare(a.name, b.name));
}

/** `dpkg-query -W -f '${Package} ${Version}\n'` lines (or apt's candidates, same shape) as name -> version. */
export function parsePackageVersions(lines: readonly string[]): Map<string, string> {
  const versions = new Map<string, string>();
  for (const line of lines) {
    const [name, version, extra] = line.trim().split(/\s+/);
    if (name && version && extra === undefined) versions.set(name, version);
  }
  return versions;
}

/** The snapshot.debian.org mirror that served the Debian archive as it was at `created`. */
export function snapshotMirror(created: string, archive = 'debian'): string {
  return `http://snapshot.debian.org/archive/${archive}/${created.replaceAll(/[-:]/g, '')}/`;
}

/**
 * What a user reads when the mirror could not give the locked versions: every package, then the
 * way out (the snapshot of the day the lock was made, or a new lock when the package set changed).
 * `stage` says whether this was found in the mirror's index (before installing) or in the result.
 */
export function lockMismatchError(loaded: Pick<LoadedLock, 'file' | 'lock'>, mismatches: readonly LockMismatch[], stage: 'mirror' | 'installed'): UserError {
  const lines = mismatches.map((m) => {
    if (m.locked === undefined) return `  ${m.name}: not locked, installed ${m.installed}`;
    const found = m.installed === undefined ? (stage === 'mirror' ? 'not in the mirror' : 'not installed') : `${stage === 'mirror' ? 'the mirror has' : 'installed'} ${m.installed}`;
    return `  ${m.name}: locked ${m.locked}, ${found}`;
  });
  const versionsGone = mismatches.some((m) => m.locked !== undefined);
  const setChanged = mismatches.some((m) => m.locked === undefined);
  const hints = [
    ...(versionsGone
      ? [
          `The mirror no longer serves these versions. Build from the Debian snapshot of the day the lock was made (${loaded.lock.created}): set the definition's\n` +
            `  mirror: ${snapshotMirror(loaded.lock.created)}`,
        ]
      : []),
    ...(setChanged ? ['Packages outside the lock were installed: the package set changed; build with --no-lock and make a new lock (pibond lock).'] : []),
  ];
  const what = stage === 'mirror' ? 'cannot give' : 'did not install';
  return new UserError(`the mirror ${what} the package set locked in ${loaded.file}:\n${lines.join('\n')}\n${hints.join('\n')}`);
}

/** A time as the lock records it: UTC, whole seconds. */
export function isoSeconds(time: Date): string {
  return `${time.toISOString().slice(0, 19)}Z`;
}
