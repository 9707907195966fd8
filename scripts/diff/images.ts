/**
 * Two disk images compared in a builder container (the host has only Docker and Node; the container
 * is unprivileged: no loop devices, no mounts, no network). diff-image.mjs reads both images once
 * (checksums, the first differing byte, which partitions differ) and lists the trees of the
 * differing partitions; here the trees are compared, and the first differing byte is traced to what
 * owns it, so that a reproducibility check names the file whenever a file is the cause.
 */
import { basename } from 'node:path';
import { type Docker, type RunningContainer, execIn, startContainer } from '../lib/docker.ts';
import {
  type Ext4Layout,
  type ImagePartition,
  describeDirectoryEntry,
  describeRegion,
  ext4BlockRole,
  fatRegionAt,
  fileAtCluster,
  inodeAt,
  mountPointOf,
  parseDebugfsStats,
  parseFatBootSector,
  partitionName,
  regionAt,
  reservedInodes,
} from './layout.ts';
import { type FileDifference, type TreeEntry, compareTrees, renderFileDifferences } from './trees.ts';

export interface ImageSide {
  /** The path given on the host. */
  file: string;
  bytes: number;
  sha256: string;
}

export interface FirstDifference {
  /** Bytes into the (decompressed) image. */
  offset: number;
  /** MBR, gap, boot partition (1), root partition (2), after the last partition. */
  region: string;
  /** The ext4 block holding the byte. */
  block?: number;
  /** The FAT data cluster holding the byte. */
  cluster?: number;
  /** What the block is: a file's path, or which file system metadata. */
  owner?: string;
}

export interface ImageDiff {
  a: ImageSide;
  b: ImageSide;
  identical: boolean;
  /** Both partition tables (sfdisk --dump), when they differ. */
  partitionTables?: { a: string; b: string };
  /** The partitions whose file trees were compared (those holding differing bytes). */
  comparedPartitions: string[];
  /** Every path that differs in them, sorted. */
  files: FileDifference[];
  firstDifference?: FirstDifference;
  /**
   * The first differing byte of each other partition whose bytes differ: a root file system's
   * difference is named even when the boot partition's comes first.
   */
  laterDifferences: FirstDifference[];
}

/** What diff-image.mjs prints last. */
interface ContainerReport {
  images: Record<'a' | 'b', { bytes: number; sha256: string; partitions: ImagePartition[] | null; table: string }>;
  firstDifference?: number;
  differingPartitions: number[];
}

type Side = 'a' | 'b';

const tool = '/usr/local/lib/pibond/diff-image.mjs';
const inside: Record<Side, string> = { a: '/in/a', b: '/in/b' };

export interface DiffImagesOptions {
  /** Aborting removes the container at once (Ctrl-C). */
  signal?: AbortSignal;
  /** Progress, one line at a time. */
  say?: (message: string) => void;
}

/** Compares two images (.img, .img.zst, .img.xz) in a container of `builderImage`. */
export async function diffImages(docker: Docker, builderImage: string, a: string, b: string, opts: DiffImagesOptions = {}): Promise<ImageDiff> {
  const paths: Record<Side, string> = { a: `${inside.a}/${basename(a)}`, b: `${inside.b}/${basename(b)}` };
  const running = await startContainer(docker, {
    image: builderImage,
    cmd: ['sleep', 'infinity'],
    init: true,
    networkMode: 'none',
    binds: [`${a}:${paths.a}:ro`, `${b}:${paths.b}:ro`],
    // Decompressed images and extracted trees: removed with the container.
    volumes: ['/scratch'],
    labels: { 'org.pibond.role': 'diff' },
  });
  const onAbort = () => void running.remove().catch(() => undefined);
  opts.signal?.addEventListener('abort', onAbort, { once: true });
  try {
    opts.signal?.throwIfAborted();
    opts.say?.(`Comparing ${a} and ${b} in a builder container (${builderImage})...`);
    const lines = await exec(docker, running, ['node', tool, JSON.stringify({ a: paths.a, b: paths.b, scratch: '/scratch' })]);
    const report = parseReport(lines);
    for (const side of ['a', 'b'] as const) {
      if (!report.images[side].partitions) throw new NotAnImage(side === 'a' ? a : b, report.images[side].table);
    }
    const sides = { a: { file: a, bytes: report.images.a.bytes, sha256: report.images.a.sha256 }, b: { file: b, bytes: report.images.b.bytes, sha256: report.images.b.sha256 } };
    const identical = report.firstDifference === undefined;
    if (identical) return { a: sides.a, b: sides.b, identical, comparedPartitions: [], files: [], laterDifferences: [] };

    const partitions = (side: Side) => report.images[side].partitions ?? [];
    const trees = treesFrom(lines, partitions('a'));
    opts.signal?.throwIfAborted();
    const where = new Locator(docker, running, { a: { image: decompressedPath(paths.a, 'a'), partitions: partitions('a') }, b: { image: decompressedPath(paths.b, 'b'), partitions: partitions('b') } });
    const firstDifference = await where.locate(report.firstDifference ?? 0);
    const laterDifferences: FirstDifference[] = [];
    for (const index of report.differingPartitions) {
      const partition = partitions('a').find((p) => p.index === index);
      if (!partition || regionAt(firstDifference.offset, [partition]).kind === 'partition') continue;
      const offset = await where.firstDifferenceIn(partition);
      if (offset !== undefined) laterDifferences.push(await where.locate(offset));
    }
    return {
      a: sides.a,
      b: sides.b,
      identical,
      partitionTables: report.images.a.table === report.images.b.table ? undefined : { a: report.images.a.table, b: report.images.b.table },
      comparedPartitions: report.differingPartitions.flatMap((index) => {
        const p = partitions('a').find((q) => q.index === index);
        return p ? [partitionName(p)] : [];
      }),
      files: compareTrees(trees.a, trees.b),
      firstDifference,
      laterDifferences,
    };
  } finally {
    opts.signal?.removeEventListener('abort', onAbort);
    await running.remove();
  }
}

/** An input that turned out not to be a disk image (no partition table). */
export class NotAnImage extends Error {
  override name = 'NotAnImage';
  constructor(
    readonly file: string,
    readonly reason: string,
  ) {
    super(`${file} is not a disk image: it has no MBR partition table (${reason})`);
  }
}

/** Where diff-image.mjs left a compressed image's decompressed copy. */
function decompressedPath(path: string, side: Side): string {
  return /\.(zst|xz)$/.test(path) ? `/scratch/${side}.img` : path;
}

async function exec(docker: Docker, running: RunningContainer, cmd: string[]): Promise<string[]> {
  const stdout: string[] = [];
  await execIn(docker, running.container, cmd, { sink: (line, stream) => stream === 'stdout' && stdout.push(line) });
  return stdout;
}

function parseReport(lines: readonly string[]): ContainerReport {
  const last = lines.findLast((line) => line.startsWith('{"images"'));
  if (!last) throw new Error(`diff-image.mjs printed no report; its output ended:\n  ${lines.slice(-5).join('\n  ')}`);
  return JSON.parse(last) as ContainerReport;
}

/** The entry lines, each path put where its partition is mounted on the running system. */
function treesFrom(lines: readonly string[], partitions: readonly ImagePartition[]): Record<Side, TreeEntry[]> {
  const trees: Record<Side, TreeEntry[]> = { a: [], b: [] };
  for (const line of lines) {
    if (!line.startsWith('{"entry"')) continue;
    const { entry } = JSON.parse(line) as { entry: TreeEntry & { side: Side; partition: number } };
    const partition = partitions.find((p) => p.index === entry.partition);
    const { side, partition: _, ...rest } = entry;
    trees[side].push({ ...rest, path: `${partition ? mountPointOf(partition) : `(partition ${entry.partition})`}${entry.path}` });
  }
  return trees;
}

/** Traces a differing byte to what owns it, asking debugfs and mtools in the container. */
class Locator {
  constructor(
    private readonly docker: Docker,
    private readonly running: RunningContainer,
    private readonly images: Record<Side, { image: string; partitions: ImagePartition[] }>,
  ) {}

  async locate(offset: number): Promise<FirstDifference> {
    const region = regionAt(offset, this.images.a.partitions);
    if (region.kind !== 'partition') return { offset, region: describeRegion(region) };
    const { partition, offsetInPartition } = region;
    const name = partitionName(partition);
    if (partition.fileSystem === 'ext4') return { offset, region: name, ...(await this.ext4Owner(partition, offsetInPartition)) };
    if (partition.fileSystem === 'vfat') return { offset, region: name, ...(await this.fatOwner(partition, offsetInPartition)) };
    return { offset, region: name };
  }

  /** The first byte of the partition that differs between the images (cmp stops there). */
  async firstDifferenceIn(partition: ImagePartition): Promise<number | undefined> {
    const other = this.partitionOn('b', partition);
    const cmd = ['sh', '-c', 'cmp -n "$1" -i "$2:$3" "$4" "$5"; [ $? -le 1 ]', 'sh', String(partition.bytes), String(partition.start), String(other.start), this.images.a.image, this.images.b.image];
    const byte = /differ: (?:byte|char) (\d+)/.exec((await this.run(cmd)).join('\n'))?.[1];
    return byte === undefined ? undefined : partition.start + Number(byte) - 1;
  }

  private async ext4Owner(partition: ImagePartition, offsetInPartition: number): Promise<{ block: number; owner: string }> {
    const device = this.ext4Device('a', partition);
    const layout = parseDebugfsStats((await this.run(['debugfs', '-R', 'stats', device])).join('\n'));
    const block = Math.floor(offsetInPartition / layout.blockSize);
    const role = ext4BlockRole(layout, block);
    if (role.kind === 'data') return { block, owner: await this.dataBlockOwner(partition, block) };
    if (role.kind !== 'inode table') return { block, owner: `${role.kind} of block group ${role.group}` };
    const inodes = await this.differingInodes(partition, layout, role, block);
    const owners = await Promise.all(inodes.map((inode) => this.inodePath('a', partition, inode)));
    return { block, owner: `inode table of block group ${role.group} (inodes ${role.firstInode}-${role.lastInode}); differing: ${owners.join(', ')}` };
  }

  /** The file whose data (or extent tree, or directory entries) the block is: debugfs icheck, on either side. */
  private async dataBlockOwner(partition: ImagePartition, block: number): Promise<string> {
    for (const side of ['a', 'b'] as const) {
      const answer = (await this.run(['debugfs', '-R', `icheck ${block}`, this.ext4Device(side, partition)])).join('\n');
      const inode = Number(new RegExp(`^${block}\\s+(\\d+)`, 'm').exec(answer)?.[1]);
      if (Number.isInteger(inode) && inode > 0) return this.inodePath(side, partition, inode);
    }
    return 'no file (a free block, unused by both file systems)';
  }

  /** The inodes whose 256-byte slots differ in that inode table block (cmp -l lists the bytes). */
  private async differingInodes(partition: ImagePartition, layout: Ext4Layout, role: Parameters<typeof inodeAt>[0], block: number): Promise<number[]> {
    const blockOffset = (side: Side) => this.partitionOn(side, partition).start + block * layout.blockSize;
    const cmd = ['sh', '-c', 'cmp -l -n "$1" -i "$2:$3" "$4" "$5"; [ $? -le 1 ]', 'sh', String(layout.blockSize), String(blockOffset('a')), String(blockOffset('b')), this.images.a.image, this.images.b.image];
    const bytes = (await this.run(cmd)).map((line) => Number(line.trim().split(/\s+/)[0]) - 1).filter((n) => Number.isInteger(n) && n >= 0);
    return [...new Set(bytes.map((byte) => inodeAt(role, layout, byte)))];
  }

  private async inodePath(side: Side, partition: ImagePartition, inode: number): Promise<string> {
    const reserved = reservedInodes[inode];
    if (reserved) return reserved;
    const answer = await this.run(['debugfs', '-R', `ncheck ${inode}`, this.ext4Device(side, partition)]);
    // ncheck prints "//bin" for an entry of the root directory.
    const paths = answer.map((line) => new RegExp(`^${inode}\\s+(.+)$`).exec(line.trim())?.[1]?.replace(/^\/+/, '/')).filter((p): p is string => p !== undefined);
    return paths.length > 0 ? `${paths.join(' and ')} (inode ${inode})` : `inode ${inode} (no path names it: deleted or unused)`;
  }

  private async fatOwner(partition: ImagePartition, offsetInPartition: number): Promise<{ cluster?: number; owner: string }> {
    const image = this.images.a.image;
    const geometry = parseFatBootSector(await this.bytesAt('a', partition.start, 48));
    const region = fatRegionAt(geometry, offsetInPartition);
    if (region.kind === 'fat') return { owner: `FAT (copy ${region.copy}): the cluster chains` };
    if (region.kind !== 'cluster') return { owner: region.kind };
    const at = `${image}@@${partition.start}`;
    // The root directory and the files (mdir -b lists directories with a trailing slash).
    const paths = ['::/', ...(await this.run(['mdir', '-/', '-b', '-i', at])).map((line) => line.trim()).filter((line) => line.startsWith('::/'))];
    const owner = fileAtCluster((await this.run(['mshowfat', '-i', at, ...paths])).join('\n'), region.cluster);
    if (owner === undefined) return { cluster: region.cluster, owner: `cluster ${region.cluster}, which no file or directory uses` };
    const path = `${mountPointOf(partition)}${owner}`.replace(/(.)\/$/, '$1');
    if (owner !== '/' && !owner.endsWith('/')) return { cluster: region.cluster, owner: path };
    // A directory's cluster: its entries (32 bytes each) carry the names, sizes and times of files.
    const entry = partition.start + offsetInPartition - (offsetInPartition % 32);
    const other = this.partitionOn('b', partition).start - partition.start;
    const { name, differing } = describeDirectoryEntry(await this.bytesAt('a', entry, 32), await this.bytesAt('b', entry + other, 32));
    return { cluster: region.cluster, owner: `the directory ${path}: the entry of ${name}${differing.length > 0 ? ` (its ${differing.join(', ')} differ${differing.length === 1 ? 's' : ''})` : ''}` };
  }

  private async bytesAt(side: Side, offset: number, bytes: number): Promise<Uint8Array> {
    const dump = await this.run(['od', '-An', '-v', '-tu1', '-N', String(bytes), '-j', String(offset), this.images[side].image]);
    return Uint8Array.from(dump.join(' ').trim().split(/\s+/).map(Number));
  }

  private ext4Device(side: Side, partition: ImagePartition): string {
    return `${this.images[side].image}?offset=${this.partitionOn(side, partition).start}`;
  }

  /** The same partition on the other image (by index), which may start elsewhere. */
  private partitionOn(side: Side, partition: ImagePartition): ImagePartition {
    return this.images[side].partitions.find((p) => p.index === partition.index) ?? partition;
  }

  private run(cmd: string[]): Promise<string[]> {
    return exec(this.docker, this.running, cmd);
  }
}

/** The image comparison as text, most telling first; files beyond `limit` are counted, not listed. */
export function renderImageDiff(d: ImageDiff, limit = 200): string {
  if (d.identical) return `The images are identical (sha256 ${d.a.sha256}).\n`;
  const lines = [`The images differ: ${d.a.file} (sha256 ${d.a.sha256.slice(0, 16)}, ${d.a.bytes} bytes) and ${d.b.file} (sha256 ${d.b.sha256.slice(0, 16)}, ${d.b.bytes} bytes).`];
  if (d.partitionTables) {
    lines.push('Partition tables differ:', ...indent(`--- ${d.a.file}\n${d.partitionTables.a}`), ...indent(`+++ ${d.b.file}\n${d.partitionTables.b}`));
  }
  if (d.files.length > 0) {
    lines.push(`Files that differ (${d.files.length}, in ${d.comparedPartitions.join(' and ')}):`, ...indent(renderFileDifferences(d.files, limit).join('\n')));
  } else if (d.comparedPartitions.length > 0) {
    lines.push(`Every file agrees in ${d.comparedPartitions.join(' and ')} (content, type, mode, owner, symlink target), yet the bytes differ.`);
  }
  const first = d.firstDifference;
  if (first) {
    lines.push(`First differing byte: ${describeDifference(first)}`);
  }
  for (const later of d.laterDifferences) lines.push(`First differing byte in the ${later.region}: ${describeDifference(later)}`);
  return `${lines.join('\n')}\n`;
}

function describeDifference(d: FirstDifference): string {
  const unit = d.block !== undefined ? `, block ${d.block}` : d.cluster !== undefined ? `, cluster ${d.cluster}` : '';
  return `${d.offset} (${d.region}${unit})${d.owner ? `: ${d.owner}` : ''}`;
}

function indent(text: string): string[] {
  return text.trimEnd().split('\n').map((line) => `  ${line}`);
}
