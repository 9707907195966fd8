import { describe, expect, it } from 'vitest';
import { type ImageDiff, renderImageDiff } from '../../scripts/diff/images.ts';

const side = (file: string, sha256: string) => ({ file, bytes: 2 ** 31, sha256: sha256.repeat(64) });

describe('renderImageDiff', () => {
  it('says identical images are identical, in one line', () => {
    const d: ImageDiff = { a: side('a.img', '1'), b: side('b.img', '1'), identical: true, comparedPartitions: [], files: [], laterDifferences: [] };
    expect(renderImageDiff(d)).toBe(`The images are identical (sha256 ${'1'.repeat(64)}).\n`);
  });

  it('leads with the files, caps them, then says where the bytes first differ', () => {
    const d: ImageDiff = {
      a: side('a.img', '1'),
      b: side('b.img', '2'),
      identical: false,
      partitionTables: { a: 'label: dos\nIMAGE1 : start=8192, size=524288, type=c\n', b: 'label: dos\nIMAGE1 : start=8192, size=1048576, type=c\n' },
      comparedPartitions: ['root partition (2)'],
      files: ['/etc/a', '/etc/b', '/etc/c'].map((path) => ({ path, change: 'changed' as const, details: ['mode 0644 -> 0600'] })),
      firstDifference: { offset: 272630832, region: 'root partition (2)', block: 0, owner: 'superblock of block group 0' },
      laterDifferences: [{ offset: 8340494, region: 'boot partition (1)', cluster: 2, owner: 'the directory /boot/firmware' }],
    };
    const lines = renderImageDiff(d, 2).trimEnd().split('\n');
    expect(lines[0]).toBe(`The images differ: a.img (sha256 ${'1'.repeat(16)}, 2147483648 bytes) and b.img (sha256 ${'2'.repeat(16)}, 2147483648 bytes).`);
    expect(lines).toContain('Partition tables differ:');
    expect(lines).toContain('  IMAGE1 : start=8192, size=1048576, type=c');
    expect(lines.slice(-6)).toEqual([
      'Files that differ (3, in root partition (2)):',
      '  ~ /etc/a: mode 0644 -> 0600',
      '  ~ /etc/b: mode 0644 -> 0600',
      '  and 1 more',
      'First differing byte: 272630832 (root partition (2), block 0): superblock of block group 0',
      'First differing byte in the boot partition (1): 8340494 (boot partition (1), cluster 2): the directory /boot/firmware',
    ]);
  });

  it('says when every file agrees yet the bytes differ', () => {
    const d: ImageDiff = {
      a: side('a.img', '1'),
      b: side('c.img', '3'),
      identical: false,
      comparedPartitions: ['root partition (2)'],
      files: [],
      firstDifference: { offset: 273696524, region: 'root partition (2)', block: 260, owner: 'inode table of block group 0 (inodes 113-128); differing: /etc/hostname (inode 120)' },
      laterDifferences: [],
    };
    expect(renderImageDiff(d)).toContain('Every file agrees in root partition (2) (content, type, mode, owner, symlink target), yet the bytes differ.\nFirst differing byte: 273696524 (root partition (2), block 260): inode table');
  });
});
