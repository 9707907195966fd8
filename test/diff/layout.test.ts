import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import {
  type ImagePartition,
  describeDirectoryEntry,
  describeRegion,
  ext4BlockRole,
  fatRegionAt,
  fileAtCluster,
  hasSuperblockBackup,
  inodeAt,
  parseDebugfsStats,
  parseFatBootSector,
  regionAt,
} from '../../scripts/diff/layout.ts';

// The default image's layout: 2 GiB, boot (FAT32) at 4 MiB for 256 MiB, root (ext4) after it.
const boot: ImagePartition = { index: 1, start: 4 * 2 ** 20, bytes: 256 * 2 ** 20, fileSystem: 'vfat' };
const root: ImagePartition = { index: 2, start: 260 * 2 ** 20, bytes: 2048 * 2 ** 20 - 260 * 2 ** 20, fileSystem: 'ext4' };

describe('regionAt', () => {
  it('tells the MBR, the gap, each partition and what lies past them', () => {
    expect(describeRegion(regionAt(0, [boot, root]))).toBe('MBR (partition table and boot code)');
    expect(describeRegion(regionAt(511, [boot, root]))).toBe('MBR (partition table and boot code)');
    expect(describeRegion(regionAt(512, [boot, root]))).toBe('gap outside the partitions');
    expect(regionAt(boot.start, [boot, root])).toEqual({ kind: 'partition', partition: boot, offsetInPartition: 0 });
    expect(describeRegion(regionAt(root.start - 1, [boot, root]))).toBe('boot partition (1)');
    expect(regionAt(root.start + 4096, [boot, root])).toEqual({ kind: 'partition', partition: root, offsetInPartition: 4096 });
    expect(describeRegion(regionAt(root.start + root.bytes, [boot, root]))).toBe('after the last partition');
  });
});

describe('ext4 blocks', async () => {
  // debugfs -R stats of the default image's root file system (14 groups, flex_bg, 4 KiB blocks).
  const layout = parseDebugfsStats(await readFile(join(import.meta.dirname, 'fixtures', 'debugfs-stats.txt'), 'utf8'));

  it('reads the geometry and every group from debugfs stats', () => {
    expect(layout).toMatchObject({ blockSize: 4096, inodeSize: 256, inodesPerGroup: 8176 });
    expect(layout.groups).toHaveLength(14);
    // What dumpe2fs says of groups 0, 1 and 2 of the same file system.
    expect(layout.groups[0]).toEqual({ index: 0, superblock: 0, descriptors: [1, 1], reservedDescriptors: [2, 224], blockBitmap: 225, inodeBitmap: 239, inodeTable: [253, 763] });
    expect(layout.groups[1]).toEqual({ index: 1, superblock: 32768, descriptors: [32769, 32769], reservedDescriptors: [32770, 32992], blockBitmap: 226, inodeBitmap: 240, inodeTable: [764, 1274] });
    expect(layout.groups[2]).toEqual({ index: 2, blockBitmap: 227, inodeBitmap: 241, inodeTable: [1275, 1785] });
  });

  it('puts superblock backups in groups 0, 1 and the powers of 3, 5 and 7', () => {
    expect([...Array(50).keys()].filter(hasSuperblockBackup)).toEqual([0, 1, 3, 5, 7, 9, 25, 27, 49]);
  });

  it('names metadata blocks, with flex_bg groups whose bitmaps lie in group 0', () => {
    expect(ext4BlockRole(layout, 0)).toEqual({ kind: 'superblock', group: 0 });
    expect(ext4BlockRole(layout, 1)).toEqual({ kind: 'group descriptors', group: 0 });
    expect(ext4BlockRole(layout, 100)).toEqual({ kind: 'reserved group descriptors', group: 0 });
    expect(ext4BlockRole(layout, 32768)).toEqual({ kind: 'superblock', group: 1 });
    expect(ext4BlockRole(layout, 226)).toEqual({ kind: 'block bitmap', group: 1 });
    expect(ext4BlockRole(layout, 252)).toEqual({ kind: 'inode bitmap', group: 13 });
    expect(ext4BlockRole(layout, 6896 + 511)).toEqual({ kind: 'data' });
  });

  it('gives the inodes an inode table block holds, and the one a byte belongs to', () => {
    // 16 inodes of 256 bytes per 4 KiB block, numbered from 1.
    expect(ext4BlockRole(layout, 253)).toEqual({ kind: 'inode table', group: 0, firstInode: 1, lastInode: 16 });
    const role = ext4BlockRole(layout, 260);
    expect(role).toEqual({ kind: 'inode table', group: 0, firstInode: 113, lastInode: 128 });
    if (role.kind !== 'inode table') throw new Error('not an inode table block');
    expect(inodeAt(role, layout, 7 * 256 + 12)).toBe(120);
    expect(ext4BlockRole(layout, 764)).toMatchObject({ kind: 'inode table', group: 1, firstInode: 8177 });
  });
});

describe('FAT regions', () => {
  // The default image's boot sector: 512-byte sectors, 1 sector per cluster, 32 reserved, 2 FATs of 4033 sectors, root directory at cluster 2.
  const sector = Uint8Array.from([
    235, 88, 144, 109, 107, 102, 115, 46, 102, 97, 116, 0, 2, 1, 32, 0, 2, 0, 0, 0, 0, 248, 0, 0, 32, 0, 16, 0, 0, 0, 0, 0, 0, 0, 8, 0, 193, 15, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0,
  ]);
  const geometry = parseFatBootSector(sector);

  it('reads the geometry from the boot sector', () => {
    expect(geometry).toEqual({ bytesPerSector: 512, sectorsPerCluster: 1, reservedSectors: 32, fats: 2, sectorsPerFat: 4033, rootCluster: 2 });
  });

  it('tells the boot sector, the reserved sectors, each FAT and the data clusters', () => {
    expect(fatRegionAt(geometry, 100)).toEqual({ kind: 'boot sector' });
    expect(fatRegionAt(geometry, 6 * 512)).toEqual({ kind: 'reserved sectors' });
    expect(fatRegionAt(geometry, 32 * 512)).toEqual({ kind: 'fat', copy: 1 });
    expect(fatRegionAt(geometry, (32 + 4033) * 512)).toEqual({ kind: 'fat', copy: 2 });
    const dataStart = (32 + 2 * 4033) * 512;
    expect(fatRegionAt(geometry, dataStart)).toEqual({ kind: 'cluster', cluster: 2 });
    expect(fatRegionAt(geometry, dataStart + 414 * 512 + 3)).toEqual({ kind: 'cluster', cluster: 416 });
  });

  it('finds the file holding a cluster in mshowfat output', () => {
    const chains = '::/config.txt <416-417>\n::/overlays/a.dtbo <20-21><30>\n::/cmdline.txt <418>';
    expect(fileAtCluster(chains, 417)).toBe('/config.txt');
    expect(fileAtCluster(chains, 30)).toBe('/overlays/a.dtbo');
    expect(fileAtCluster(chains, 25)).toBeUndefined();
  });

  it('says whose directory entry differs, and which of its fields', () => {
    // The volume label entry of two builds' boot partitions, as mkfs.vfat stamped them with its clock.
    const label = (seconds: number) => Uint8Array.from([66, 79, 79, 84, 70, 83, 32, 32, 32, 32, 32, 8, 0, 0, seconds, 128, 131, 93, 131, 93, 0, 0, seconds, 128, 131, 93, 0, 0, 0, 0, 0, 0]);
    expect(describeDirectoryEntry(label(41), label(71))).toEqual({ name: 'BOOTFS (the volume label)', differing: ['creation time', 'write time'] });
    const file = Uint8Array.from([...'CONFIG  TXT'].map((c) => c.charCodeAt(0)).concat([0x20, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 160, 1, 0, 0, 4, 0, 0, 0]));
    const bigger = Uint8Array.from(file);
    bigger[28] = 161;
    expect(describeDirectoryEntry(file, bigger)).toEqual({ name: 'CONFIG.TXT', differing: ['size'] });
  });
});
