/**
 * Where a byte of a disk image lies, from numbers alone: the MBR, the gap before or between
 * partitions, or a partition; inside an ext4 partition, which block and whether it is file system
 * metadata (superblock, group descriptors, bitmaps, the inode table and the inodes it holds);
 * inside a FAT one, the boot sector, a FAT or a data cluster. The container supplies the numbers
 * (debugfs stats, the FAT boot sector); what owns a data block it asks debugfs.
 */

export interface ImagePartition {
  /** 1-4, as in /dev/mmcblk0p<index>. */
  index: number;
  /** Byte offset and length in the image. */
  start: number;
  bytes: number;
  fileSystem?: 'ext4' | 'vfat';
}

export type ImageRegion =
  | { kind: 'mbr' }
  | { kind: 'gap' }
  | { kind: 'partition'; partition: ImagePartition; offsetInPartition: number }
  | { kind: 'end' };

const sectorBytes = 512;

export function regionAt(offset: number, partitions: readonly ImagePartition[]): ImageRegion {
  if (offset < sectorBytes) return { kind: 'mbr' };
  const partition = partitions.find((p) => offset >= p.start && offset < p.start + p.bytes);
  if (partition) return { kind: 'partition', partition, offsetInPartition: offset - partition.start };
  return partitions.some((p) => p.start > offset) ? { kind: 'gap' } : { kind: 'end' };
}

/** A partition in the user's words: a Pi image's FAT partition is its boot partition, its ext4 one the root. */
export function partitionName(p: ImagePartition): string {
  if (p.fileSystem === 'vfat') return `boot partition (${p.index})`;
  if (p.fileSystem === 'ext4') return `root partition (${p.index})`;
  return `partition ${p.index}`;
}

export function describeRegion(region: ImageRegion): string {
  switch (region.kind) {
    case 'mbr':
      return 'MBR (partition table and boot code)';
    case 'gap':
      return 'gap outside the partitions';
    case 'end':
      return 'after the last partition';
    case 'partition':
      return partitionName(region.partition);
  }
}

/** Where the boot partition's mount point is on the running system (pibond's fstab). */
export function mountPointOf(p: ImagePartition): string {
  return p.fileSystem === 'vfat' ? '/boot/firmware' : '';
}

// ext4

export interface Ext4Group {
  index: number;
  /** The superblock's (or its backup's) block, where this group has one. */
  superblock?: number;
  descriptors?: [number, number];
  reservedDescriptors?: [number, number];
  blockBitmap: number;
  inodeBitmap: number;
  inodeTable: [number, number];
}

export interface Ext4Layout {
  blockSize: number;
  inodeSize: number;
  inodesPerGroup: number;
  groups: Ext4Group[];
}

/**
 * The layout from `debugfs -R stats` (dumpe2fs would say it outright, but it cannot open an
 * `image?offset=N` name: the "=" makes it look the name up as a LABEL=-style tag). stats gives each
 * group's bitmaps and inode table; where the superblock backups and group descriptors lie follows
 * from the counts (sparse_super: groups 0, 1 and the powers of 3, 5 and 7).
 */
export function parseDebugfsStats(text: string): Ext4Layout {
  const number = (label: string, fallback?: number) => {
    const match = new RegExp(`^${label}:\\s+(\\d+)`, 'm').exec(text);
    if (match?.[1]) return Number(match[1]);
    if (fallback !== undefined) return fallback;
    throw new Error(`debugfs stats printed no "${label}"`);
  };
  const blockSize = number('Block size');
  const blocksPerGroup = number('Blocks per group');
  const firstBlock = number('First block', 0);
  const groupCount = Math.ceil((number('Block count') - firstBlock) / blocksPerGroup);
  const descriptorBlocks = Math.ceil((groupCount * number('Group descriptor size', 32)) / blockSize);
  const reservedDescriptorBlocks = number('Reserved GDT blocks', 0);
  const inodeTableBlocks = number('Inode blocks per group');
  const sparse = /^Filesystem features:.*\bsparse_super\b/m.test(text);
  const groups: Ext4Group[] = [];
  for (const match of text.matchAll(/^\s*Group\s+(\d+): block bitmap at (\d+), inode bitmap at (\d+), inode table at (\d+)/gm)) {
    const index = Number(match[1]);
    const itable = Number(match[4]);
    const group: Ext4Group = { index, blockBitmap: Number(match[2]), inodeBitmap: Number(match[3]), inodeTable: [itable, itable + inodeTableBlocks - 1] };
    if (!sparse || hasSuperblockBackup(index)) {
      const superblock = firstBlock + index * blocksPerGroup;
      group.superblock = superblock;
      group.descriptors = [superblock + 1, superblock + descriptorBlocks];
      if (reservedDescriptorBlocks > 0) group.reservedDescriptors = [superblock + descriptorBlocks + 1, superblock + descriptorBlocks + reservedDescriptorBlocks];
    }
    groups.push(group);
  }
  if (groups.length === 0) throw new Error('debugfs stats listed no block groups');
  return { blockSize, inodeSize: number('Inode size'), inodesPerGroup: number('Inodes per group'), groups };
}

/** sparse_super: the superblock is copied into groups 0 and 1 and those numbered by a power of 3, 5 or 7. */
export function hasSuperblockBackup(group: number): boolean {
  if (group <= 1) return true;
  return [3, 5, 7].some((base) => {
    let n = base;
    while (n < group) n *= base;
    return n === group;
  });
}

export type Ext4BlockRole =
  | { kind: 'superblock' | 'group descriptors' | 'reserved group descriptors' | 'block bitmap' | 'inode bitmap'; group: number }
  | { kind: 'inode table'; group: number; firstInode: number; lastInode: number }
  | { kind: 'data' };

/**
 * Which metadata a block is, if any. With flex_bg a group's bitmaps and inode table lie in another
 * group's blocks, so every group's are looked at.
 */
export function ext4BlockRole(layout: Ext4Layout, block: number): Ext4BlockRole {
  const within = (range: [number, number] | undefined) => range !== undefined && block >= range[0] && block <= range[1];
  for (const g of layout.groups) {
    // Block 0 of a 4 KiB-block file system holds the superblock at byte 1024 (after the boot sector room).
    if (g.superblock === block) return { kind: 'superblock', group: g.index };
    if (within(g.descriptors)) return { kind: 'group descriptors', group: g.index };
    if (within(g.reservedDescriptors)) return { kind: 'reserved group descriptors', group: g.index };
    if (g.blockBitmap === block) return { kind: 'block bitmap', group: g.index };
    if (g.inodeBitmap === block) return { kind: 'inode bitmap', group: g.index };
    if (within(g.inodeTable)) {
      const perBlock = layout.blockSize / layout.inodeSize;
      const firstInode = g.index * layout.inodesPerGroup + (block - g.inodeTable[0]) * perBlock + 1;
      return { kind: 'inode table', group: g.index, firstInode, lastInode: firstInode + perBlock - 1 };
    }
  }
  return { kind: 'data' };
}

/** The inode whose slot holds byte `byteInBlock` of an inode table block. */
export function inodeAt(role: Extract<Ext4BlockRole, { kind: 'inode table' }>, layout: Ext4Layout, byteInBlock: number): number {
  return role.firstInode + Math.floor(byteInBlock / layout.inodeSize);
}

/** The reserved inodes below ext4's first ordinary one (11), which no path names. */
export const reservedInodes: Record<number, string> = {
  1: 'the bad blocks list (inode 1)',
  2: 'the root directory / (inode 2)',
  5: 'the boot loader inode (5)',
  7: 'the resize inode (7: room for more group descriptors)',
  8: 'the journal (inode 8)',
};

// FAT

export interface FatGeometry {
  bytesPerSector: number;
  sectorsPerCluster: number;
  reservedSectors: number;
  fats: number;
  sectorsPerFat: number;
  /** FAT32 keeps its root directory in clusters, from this one. */
  rootCluster: number;
}

/** A FAT32 boot sector's geometry (its first 48 bytes are enough). */
export function parseFatBootSector(bytes: Uint8Array): FatGeometry {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return {
    bytesPerSector: view.getUint16(11, true),
    sectorsPerCluster: view.getUint8(13),
    reservedSectors: view.getUint16(14, true),
    fats: view.getUint8(16),
    sectorsPerFat: view.getUint32(36, true),
    rootCluster: view.getUint32(44, true),
  };
}

export type FatRegion =
  | { kind: 'boot sector' | 'reserved sectors' }
  | { kind: 'fat'; copy: number }
  | { kind: 'cluster'; cluster: number };

export function fatRegionAt(g: FatGeometry, offsetInPartition: number): FatRegion {
  const sector = Math.floor(offsetInPartition / g.bytesPerSector);
  if (sector === 0) return { kind: 'boot sector' };
  if (sector < g.reservedSectors) return { kind: 'reserved sectors' };
  const fatSector = sector - g.reservedSectors;
  if (fatSector < g.fats * g.sectorsPerFat) return { kind: 'fat', copy: Math.floor(fatSector / g.sectorsPerFat) + 1 };
  // Data clusters are numbered from 2.
  const dataSector = fatSector - g.fats * g.sectorsPerFat;
  return { kind: 'cluster', cluster: 2 + Math.floor(dataSector / g.sectorsPerCluster) };
}

/** The file whose clusters (as mshowfat prints them: `::/config.txt <416-417>`) hold `cluster`. */
export function fileAtCluster(mshowfat: string, cluster: number): string | undefined {
  for (const line of mshowfat.split('\n')) {
    const match = /^::(.*?) (<.*)$/.exec(line.trim());
    if (!match?.[1] || !match[2]) continue;
    for (const run of match[2].matchAll(/<(\d+)(?:-(\d+))?>/g)) {
      const from = Number(run[1]);
      const to = Number(run[2] ?? run[1]);
      if (cluster >= from && cluster <= to) return match[1];
    }
  }
  return undefined;
}

/** The byte ranges of a FAT directory entry (32 bytes), by what they hold. */
const directoryEntryFields: [string, number, number][] = [
  ['name', 0, 11],
  ['attributes', 11, 12],
  ['creation time', 13, 18],
  ['access date', 18, 20],
  ['first cluster', 20, 22],
  ['write time', 22, 26],
  ['first cluster', 26, 28],
  ['size', 28, 32],
];

/**
 * One directory entry as it is in two images: whose it is (its 8.3 name, or a long-name part) and
 * which of its fields differ. The entries' times are what a clock that was not pinned leaves behind.
 */
export function describeDirectoryEntry(a: Uint8Array, b: Uint8Array): { name: string; differing: string[] } {
  const attributes = a[11] ?? 0;
  const text = (bytes: Uint8Array) => String.fromCharCode(...bytes).trimEnd();
  let name: string;
  if (a[0] === 0) name = 'an unused entry';
  else if (a[0] === 0xe5) name = 'a deleted entry';
  else if ((attributes & 0x0f) === 0x0f) name = 'a long-name entry';
  else if (attributes & 0x08) name = `${text(a.subarray(0, 11))} (the volume label)`;
  else {
    const extension = text(a.subarray(8, 11));
    name = `${text(a.subarray(0, 8))}${extension ? `.${extension}` : ''}`;
  }
  const differing = directoryEntryFields
    .filter(([, from, to]) => a.subarray(from, to).some((byte, i) => byte !== b[from + i]))
    .map(([field]) => field);
  return { name, differing: [...new Set(differing)] };
}
