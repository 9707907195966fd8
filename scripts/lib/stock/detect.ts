/**
 * What a stock image is (base.image), from facts read out of it without mounting anything
 * (stock-image.mjs inspect): its os-release, which marker files exist, its installed packages and
 * architecture, its MBR partitions. Decided by the rules in rules.ts; everything here is pure, so
 * it is tested on facts recorded from the real images (test/fixtures/stock). Each refusal is a
 * UserError that names the image file and says what was found.
 */
import { UserError } from '../errors.ts';
import { type KernelFamily, type NetworkStack, type StockRule, otherKernels, stockRules } from './rules.ts';

export interface StockFacts {
  /** /etc/os-release's text (or /usr/lib/os-release's), undefined when neither exists. */
  osRelease: string | undefined;
  /** Which of `markerPaths` exist in the root file system. */
  files: readonly string[];
  /** Installed packages (dpkg status "install ok installed") name -> version. */
  packages: ReadonlyMap<string, string>;
  /** dpkg's native architecture (e.g. arm64, armhf), from the dpkg package's Architecture field. */
  architecture: string | undefined;
  /** The MBR's partitions in order: type byte, file system found (vfat/ext4/other), label if any. */
  partitions: readonly StockPartition[];
}

export interface StockPartition {
  type: number;
  filesystem: 'vfat' | 'ext4' | 'other';
  label?: string;
}

export interface StockImage {
  /** The matching rule's id. */
  rule: string;
  /** e.g. "Raspberry Pi OS bookworm". */
  name: string;
  distribution: 'raspios' | 'ubuntu';
  /** The release's codename. */
  release: string;
  /** os-release's VERSION_ID. */
  version: string | undefined;
  architecture: 'arm64';
  stack: NetworkStack;
  /** Where the FAT boot partition is mounted: '/boot/firmware' (or '/boot'). */
  bootMount: string;
  /** Whether cloud-init is installed. */
  cloudInit: boolean;
  /** The version of the image's own nodejs package when it can run pibond's services (Node 18 or later). */
  nodejs: string | undefined;
  /** The kernel packages found. */
  kernels: string[];
  kernelBootsVirt: boolean;
  labels: { boot?: string; root?: string };
  /** What the user should know, e.g. "partition labels are BOOTFS/rootfs (Ubuntu ... has system-boot/writable)". */
  notes: string[];
}

/** The services' bundle targets Node 18 (scripts/lib/bundle.ts): an older nodejs cannot run them. */
const minimumNodeMajor = 18;

/** Every path any rule looks at: the inspector checks which of these exist. */
export const markerPaths: readonly string[] = [...new Set(stockRules.flatMap((rule) => rule.markers.files))].sort();

/** Every package any rule takes as a marker, to say which were found when none matched. */
const markerPackages: readonly string[] = [...new Set(stockRules.flatMap((rule) => rule.markers.packages))].sort();

/** The kernels pibond can tell apart: each rule's own, then generic ones (rules share their kernel objects). */
const kernelFamilies: readonly KernelFamily[] = [...new Set([...stockRules.map((rule) => rule.kernel), ...otherKernels])];

/**
 * os-release(5)'s shell-style assignments, KEY=value, the value unquoted: "double quotes" with
 * backslash escapes, 'single quotes' taken as they are, or a bare word. Comments and blank lines
 * are skipped.
 */
export function parseOsRelease(text: string): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const line of text.split(/\r?\n/)) {
    const match = /^\s*([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line);
    if (!match) continue;
    const [, key = '', value = ''] = match;
    fields[key] = shellWord(value.trim());
  }
  return fields;
}

function shellWord(word: string): string {
  const quoted = word.length >= 2 && (word[0] === '"' || word[0] === "'") && word.endsWith(word[0]);
  if (!quoted) return word.replace(/\\(.)/g, '$1');
  const inner = word.slice(1, -1);
  return word[0] === "'" ? inner : inner.replace(/\\(["\\$`])/g, '$1');
}

/**
 * The installed packages in a dpkg status file, and dpkg's own architecture (the native one: the
 * dpkg package is never foreign). A package installed for two architectures (multiarch) counts
 * with its native version.
 */
export function parseDpkgStatus(text: string): { packages: Map<string, string>; architecture: string | undefined } {
  const installed = stanzas(text).filter((stanza) => isInstalled(stanza.get('Status')));
  const architecture = installed.find((stanza) => stanza.get('Package') === 'dpkg')?.get('Architecture');
  const packages = new Map<string, string>();
  for (const stanza of installed) {
    const name = stanza.get('Package');
    const version = stanza.get('Version');
    if (!name || !version) continue;
    if (packages.has(name) && stanza.get('Architecture') !== architecture) continue;
    packages.set(name, version);
  }
  return { packages, architecture };
}

/**
 * Status is "want error status": what counts is the last word, so a package held with
 * `apt-mark hold` ("hold ok installed") is installed too; "deinstall ok config-files" is not.
 */
function isInstalled(status: string | undefined): boolean {
  return /^\S+ ok installed$/.test(status?.trim() ?? '');
}

/** deb822 paragraphs as field -> value; continuation lines (Description, Conffiles) are not needed and skipped. */
function stanzas(text: string): Map<string, string>[] {
  const paragraphs: Map<string, string>[] = [];
  let current = new Map<string, string>();
  for (const line of text.split(/\r?\n/)) {
    if (line.trim() === '') {
      if (current.size > 0) paragraphs.push(current);
      current = new Map();
    } else if (!/^[ \t]/.test(line)) {
      const colon = line.indexOf(':');
      if (colon > 0) current.set(line.slice(0, colon), line.slice(colon + 1).trim());
    }
  }
  if (current.size > 0) paragraphs.push(current);
  return paragraphs;
}

/** What `facts` say the image is, by the rules in rules.ts; a UserError naming `source` (the image file) when pibond cannot lay onto it. */
export function detectStock(facts: StockFacts, source: string): StockImage {
  const { boot, root, rest } = checkLayout(facts.partitions, source);
  if (facts.osRelease === undefined) {
    throw new UserError(`${source}: its root file system (p2, ${describePartition(root)}) has neither /etc/os-release nor /usr/lib/os-release, so pibond cannot tell what system it is`);
  }
  const osRelease = parseOsRelease(facts.osRelease);
  const rule = matchingRule(osRelease, facts, source);
  checkArchitecture(facts.architecture, rule, osRelease, source);
  if (!rule) throw new UserError(unknownImageMessage(osRelease, facts, source));
  checkStackPackage(rule, facts.packages, source);

  const kernel = kernelsIn(facts.packages);
  const cloudInit = facts.packages.has('cloud-init');
  const node = ownNode(facts.packages.get('nodejs'));
  return {
    rule: rule.id,
    name: rule.name,
    distribution: rule.distribution,
    release: rule.release,
    version: osRelease.VERSION_ID,
    architecture: 'arm64',
    stack: rule.stack,
    bootMount: rule.bootMount,
    cloudInit,
    nodejs: node.usable,
    kernels: kernel.packages,
    kernelBootsVirt: kernel.bootsVirt,
    labels: { ...(boot.label !== undefined && { boot: boot.label }), ...(root.label !== undefined && { root: root.label }) },
    notes: [
      ...labelNotes(rule, boot, root),
      ...cloudInitNotes(rule, cloudInit),
      ...kernelNotes(rule, kernel.packages),
      ...node.notes,
      ...rest.map((partition, i) => `p${i + 3}, ${describePartition(partition)}, is left as it is`),
      ...rule.notes,
    ],
  };
}

/**
 * Raspberry Pi OS and Ubuntu both ship an MBR with the FAT boot partition first and the ext4 root
 * second; the inspector and the lay step read them at those places.
 */
function checkLayout(partitions: readonly StockPartition[], source: string): { boot: StockPartition; root: StockPartition; rest: StockPartition[] } {
  const [boot, root, ...rest] = partitions;
  if (boot?.filesystem === 'vfat' && root?.filesystem === 'ext4') return { boot, root, rest };
  const found = partitions.length === 0 ? 'no MBR partitions (a GPT or unpartitioned image?)' : `partitions ${partitions.map((p, i) => `p${i + 1} ${describePartition(p)}`).join(', ')}`;
  throw new UserError(
    `${source}: found ${found}; pibond lays onto an MBR image whose first partition is the FAT boot partition and whose second is the ext4 root, as Raspberry Pi OS's and Ubuntu's are`,
  );
}

function describePartition(partition: StockPartition): string {
  const label = partition.label === undefined ? 'without a label' : `"${partition.label}"`;
  return `${partition.filesystem} ${label} (type 0x${partition.type.toString(16).padStart(2, '0')})`;
}

/** The one rule whose os-release and markers the image has; two would be a fault in rules.ts. */
function matchingRule(osRelease: Record<string, string>, facts: StockFacts, source: string): StockRule | undefined {
  const matches = stockRules.filter((rule) => saysItIs(rule, osRelease) && markersOf(rule, facts).length > 0);
  if (matches.length > 1) throw new Error(`rules ${matches.map((rule) => rule.id).join(' and ')} both match ${source}: the rules in rules.ts must not overlap`);
  return matches[0];
}

function saysItIs(rule: StockRule, osRelease: Record<string, string>): boolean {
  return rule.osRelease.ids.includes(osRelease.ID ?? '') && osRelease.VERSION_CODENAME === rule.osRelease.codename;
}

/** The rule's markers the image has. */
function markersOf(rule: StockRule, facts: StockFacts): string[] {
  return [...rule.markers.files.filter((file) => facts.files.includes(file)), ...rule.markers.packages.filter((name) => facts.packages.has(name))];
}

/** pibond lays arm64 binaries (its Node runtime) and renders for 64-bit images only. */
function checkArchitecture(architecture: string | undefined, rule: StockRule | undefined, osRelease: Record<string, string>, source: string): void {
  if (architecture === 'arm64') return;
  const what = rule ? `${rule.name} (os-release: ${systemName(osRelease)})` : systemName(osRelease);
  if (architecture === undefined) {
    // Without dpkg there is nothing to tell the architecture by; an unknown image is refused as such.
    if (!rule) return;
    throw new UserError(`${source}: ${what}, but its dpkg status lists no installed dpkg package, so its architecture is unknown; pibond lays onto 64-bit (arm64) images only`);
  }
  const thirtyTwoBit = architecture.startsWith('arm') ? ': 32-bit Raspberry Pi OS (armhf) is not supported, take the 64-bit (arm64) image of the same release' : '';
  throw new UserError(`${source}: ${what} is built for ${architecture}; pibond lays onto 64-bit (arm64) images only${thirtyTwoBit}`);
}

function systemName(osRelease: Record<string, string>): string {
  return osRelease.PRETTY_NAME ?? `${osRelease.ID ?? 'an unnamed system'} ${osRelease.VERSION_CODENAME ?? ''}`.trim();
}

/** pibond renders the bond for the image's stack: without the stack's package nothing would run it. */
function checkStackPackage(rule: StockRule, packages: ReadonlyMap<string, string>, source: string): void {
  if (packages.has(rule.stackPackage)) return;
  throw new UserError(
    `${source}: ${rule.name} without its network stack: package ${rule.stackPackage} is not installed. ` +
      `pibond renders the bond for ${rule.stack}, the stack ${rule.name} runs; start from an image that still has it`,
  );
}

/** No rule matched: what the image says it is, what it has, and what pibond knows. */
function unknownImageMessage(osRelease: Record<string, string>, facts: StockFacts, source: string): string {
  const said = `ID=${osRelease.ID ?? '(none)'} VERSION_CODENAME=${osRelease.VERSION_CODENAME ?? '(none)'}`;
  const found = [...markerPaths.filter((file) => facts.files.includes(file)), ...markerPackages.filter((name) => facts.packages.has(name))];
  const alike = stockRules.filter((rule) => saysItIs(rule, osRelease));
  const why =
    alike.length > 0
      ? `${alike.map((rule) => rule.name).join(', ')} says so too, but has one of ${alike.flatMap((rule) => [...rule.markers.files, ...rule.markers.packages]).join(', ')}`
      : 'no image pibond knows says so';
  return (
    `${source}: pibond does not know this image. Its os-release says ${said} (${systemName(osRelease)}) and ` +
    `${found.length > 0 ? `it has ${found.join(', ')}` : 'it has none of the markers'}; ${why}. ` +
    `pibond knows ${stockRules.map((rule) => rule.name).join(', ')} (scripts/lib/stock/rules.ts)`
  );
}

/** The installed kernel packages, and whether any of them boots QEMU's `virt` machine. */
function kernelsIn(packages: ReadonlyMap<string, string>): { packages: string[]; bootsVirt: boolean } {
  const found = [...packages.keys()].sort().flatMap((name) => {
    const family = kernelFamilies.find((kernel) => kernel.packages.some((pattern) => packageMatches(pattern, name)));
    return family ? [{ name, family }] : [];
  });
  return { packages: found.map(({ name }) => name), bootsVirt: found.some(({ family }) => family.bootsVirt) };
}

/** A package name against a rule's pattern, where one `*` stands for a version (linux-image-*-rpi-v8). */
function packageMatches(pattern: string, name: string): boolean {
  const star = pattern.indexOf('*');
  if (star < 0) return pattern === name;
  const head = pattern.slice(0, star);
  const tail = pattern.slice(star + 1);
  return name.length > head.length + tail.length && name.startsWith(head) && name.endsWith(tail);
}

function labelNotes(rule: StockRule, boot: StockPartition, root: StockPartition): string[] {
  if (boot.label === rule.labels.boot && root.label === rule.labels.root) return [];
  return [`partition labels are ${boot.label ?? '(none)'}/${root.label ?? '(none)'} (${rule.name} has ${rule.labels.boot}/${rule.labels.root})`];
}

function cloudInitNotes(rule: StockRule, installed: boolean): string[] {
  if (installed === rule.cloudInit) return [];
  return [installed ? `cloud-init is installed, which ${rule.name} does not ship` : `cloud-init is not installed (${rule.name} ships it)`];
}

function kernelNotes(rule: StockRule, kernels: readonly string[]): string[] {
  if (kernels.length === 0) return ['no kernel package found'];
  if (kernels.some((name) => rule.kernel.packages.some((pattern) => packageMatches(pattern, name)))) return [];
  const own = rule.kernel.packages.filter((pattern) => !pattern.includes('*'));
  return [`its kernel is not ${rule.name}'s own (${own.join(', ')}): ${kernels.join(', ')}`];
}

/** The image's nodejs package, usable when it is Node 18 or later; an older one is noted. */
function ownNode(version: string | undefined): { usable: string | undefined; notes: string[] } {
  if (version === undefined) return { usable: undefined, notes: [] };
  if ((nodeMajor(version) ?? 0) >= minimumNodeMajor) return { usable: version, notes: [] };
  return { usable: undefined, notes: [`its nodejs ${version} is older than Node ${minimumNodeMajor}: the services get pibond's Node runtime`] };
}

/** The upstream major version of a Debian version: 18 from 18.19.0+dfsg-6~deb12u2, 12 from 1:12.22.12~dfsg-1. */
function nodeMajor(version: string): number | undefined {
  const match = /^(?:\d+:)?(\d+)/.exec(version);
  return match ? Number(match[1]) : undefined;
}
