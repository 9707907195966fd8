/**
 * What differs between two build manifests: what was asked for (the definition), what it was built
 * from (base, mirror, builder image, root filesystem cache key, epoch), what went in (packages) and
 * what came out (files, sizes). How it was built (step timings, whether the root filesystem came
 * from the cache) is left out: two builds of the same thing differ there without differing at all.
 */
import type { BuildManifest } from '../lib/manifest.ts';

/** The parts of a manifest `pibond diff` compares; older manifests may lack the optional ones. */
export type ComparedManifest = Pick<BuildManifest, 'name' | 'packages' | 'files' | 'sizes'> & {
  definition: { value: unknown };
} & Partial<Pick<BuildManifest, 'base' | 'mirror' | 'builderImage' | 'rootfsCache' | 'diskId' | 'sourceDateEpoch'>>;

export interface ValueChange {
  /** A dotted path: `bond.primary`, `uplink.targets.2`. */
  path: string;
  from: unknown;
  to: unknown;
}

export interface PackageChange {
  name: string;
  from?: string;
  to?: string;
}

export interface FileChange {
  file: string;
  from?: { bytes: number; sha256?: string };
  to?: { bytes: number; sha256?: string };
}

export interface SizeChange {
  name: keyof BuildManifest['sizes'];
  from: number;
  to: number;
}

export interface ManifestDiff {
  definition: ValueChange[];
  inputs: ValueChange[];
  packages: { added: PackageChange[]; removed: PackageChange[]; changed: PackageChange[] };
  files: FileChange[];
  sizes: SizeChange[];
}

export function diffManifests(a: ComparedManifest, b: ComparedManifest): ManifestDiff {
  return {
    definition: diffValues(a.definition.value, b.definition.value, ''),
    inputs: diffInputs(a, b),
    packages: diffPackages(a.packages, b.packages),
    files: diffFiles(a.files, b.files),
    sizes: (Object.keys(a.sizes) as SizeChange['name'][])
      .map((name) => ({ name, from: a.sizes[name], to: b.sizes[name] }))
      .filter((size) => size.from !== size.to),
  };
}

export function manifestsDiffer(d: ManifestDiff): boolean {
  const { added, removed, changed } = d.packages;
  return [d.definition, d.inputs, added, removed, changed, d.files, d.sizes].some((list) => list.length > 0);
}

/** Every leaf that differs, by dotted path; arrays are compared element by element. */
export function diffValues(a: unknown, b: unknown, path: string): ValueChange[] {
  if (isContainer(a) && isContainer(b) && Array.isArray(a) === Array.isArray(b)) {
    const keys = [...new Set([...Object.keys(a), ...Object.keys(b)])];
    if (!Array.isArray(a)) keys.sort();
    return keys.flatMap((key) => diffValues((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key], path ? `${path}.${key}` : key));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [{ path: path || '(the whole value)', from: a, to: b }];
}

function isContainer(value: unknown): value is object {
  return typeof value === 'object' && value !== null;
}

/** Compared on their own (definition, packages, files, sizes), or not at all (the step timings: how the build went). */
const notInputs = new Set(['name', 'definition', 'packages', 'files', 'sizes', 'steps', 'rootfsCache']);

/**
 * What the image was built from, besides the definition: base, mirror, builder image, root
 * filesystem cache key, epoch, disk id, and any field a newer pibond adds to the manifest.
 */
function diffInputs(a: ComparedManifest, b: ComparedManifest): ValueChange[] {
  const inputs = (m: ComparedManifest) => {
    const fields = Object.fromEntries(Object.entries(m).filter(([key]) => !notInputs.has(key)));
    return { ...fields, 'rootfsCache.key': m.rootfsCache?.key };
  };
  const from: Record<string, unknown> = inputs(a);
  const to: Record<string, unknown> = inputs(b);
  const keys = [...new Set([...Object.keys(from), ...Object.keys(to)])].sort();
  return keys.flatMap((key) => diffValues(from[key], to[key], key));
}

/**
 * Packages matched by name; a name installed for two architectures at once (multiarch) is matched
 * by name:architecture instead, so that neither copy hides the other.
 */
function diffPackages(a: BuildManifest['packages'], b: BuildManifest['packages']): ManifestDiff['packages'] {
  const multiarch = new Set([a, b].flatMap((list) => list.map((p) => p.name).filter((name, i, names) => names.indexOf(name) !== i)));
  const keyOf = (p: BuildManifest['packages'][number]) => (multiarch.has(p.name) ? `${p.name}:${p.architecture}` : p.name);
  const versions = (list: BuildManifest['packages']) => new Map(list.map((p) => [keyOf(p), p.version]));
  const from = versions(a);
  const to = versions(b);
  const names = [...new Set([...from.keys(), ...to.keys()])].sort();
  const result: ManifestDiff['packages'] = { added: [], removed: [], changed: [] };
  for (const name of names) {
    const [old, now] = [from.get(name), to.get(name)];
    if (old === undefined) result.added.push({ name, to: now });
    else if (now === undefined) result.removed.push({ name, from: old });
    else if (old !== now) result.changed.push({ name, from: old, to: now });
  }
  return result;
}

function diffFiles(a: BuildManifest['files'], b: BuildManifest['files']): FileChange[] {
  const names = [...new Set([...Object.keys(a), ...Object.keys(b)])].sort();
  return names
    .map((file) => ({ file, from: a[file], to: b[file] }))
    .filter(({ from, to }) => from?.bytes !== to?.bytes || from?.sha256 !== to?.sha256);
}

/** The differences as lines, most telling first; empty when the manifests agree. */
export function renderManifestDiff(d: ManifestDiff): string {
  const lines: string[] = [];
  const section = (title: string, entries: string[]) => {
    if (entries.length > 0) lines.push(`${title}:`, ...entries.map((entry) => `  ${entry}`));
  };
  const change = (c: ValueChange) => `${c.path}: ${shown(c.from)} -> ${shown(c.to)}`;
  section('Definition', d.definition.map(change));
  section('Built from', d.inputs.map(change));
  const { added, removed, changed } = d.packages;
  section(
    `Packages (${added.length} added, ${removed.length} removed, ${changed.length} changed)`,
    [...added.map((p) => `+ ${p.name} ${p.to}`), ...removed.map((p) => `- ${p.name} ${p.from}`), ...changed.map((p) => `~ ${p.name} ${p.from} -> ${p.to}`)],
  );
  section('Output files', d.files.map(describeFileChange));
  section('Sizes', d.sizes.map((s) => `${sizeNames[s.name]}: ${formatBytes(s.from)} -> ${formatBytes(s.to)} (${signedBytes(s.to - s.from)})`));
  return lines.length > 0 ? `${lines.join('\n')}\n` : '';
}

const sizeNames: Record<SizeChange['name'], string> = { rootfsBytes: 'root filesystem', kernelModulesBytes: 'kernel modules', bootBytes: 'boot partition files' };

function describeFileChange(c: FileChange): string {
  if (!c.from) return `+ ${c.file} (${formatBytes(c.to?.bytes ?? 0)})`;
  if (!c.to) return `- ${c.file} (${formatBytes(c.from.bytes)})`;
  const what: string[] = [];
  if (c.from.bytes !== c.to.bytes) what.push(`${c.from.bytes} -> ${c.to.bytes} bytes`);
  if (c.from.sha256 !== c.to.sha256) what.push(`sha256 ${short(c.from.sha256)} -> ${short(c.to.sha256)}`);
  return `~ ${c.file}: ${what.join(', ')}`;
}

function short(sha256: string | undefined): string {
  return sha256 === undefined ? '(none)' : sha256.slice(0, 12);
}

function shown(value: unknown): string {
  return value === undefined ? '(absent)' : JSON.stringify(value);
}

export function formatBytes(bytes: number): string {
  if (Math.abs(bytes) >= 1024 * 1024) return `${(bytes / (1024 * 1024)).toFixed(1)} MiB`;
  return Math.abs(bytes) >= 1024 ? `${(bytes / 1024).toFixed(1)} KiB` : `${bytes} bytes`;
}

function signedBytes(delta: number): string {
  return `${delta >= 0 ? '+' : '-'}${formatBytes(Math.abs(delta))}`;
}
