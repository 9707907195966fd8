import { describe, expect, it } from 'vitest';
import { type TreeEntry, compareTrees, renderFileDifferences } from '../../scripts/diff/trees.ts';

const file = (path: string, sha256: string, more: Partial<TreeEntry> = {}): TreeEntry => ({ path, type: 'file', mode: 0o644, uid: 0, gid: 0, size: 7, sha256, ...more });

describe('compareTrees', () => {
  const a: TreeEntry[] = [
    { path: '/etc', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
    file('/etc/hostname', 'aa'.repeat(32)),
    file('/etc/shadow', 'bb'.repeat(32), { mode: 0o640, gid: 42 }),
    { path: '/bin', type: 'symlink', target: 'usr/bin', mode: 0o777, uid: 0, gid: 0 },
    file('/etc/gone', 'cc'.repeat(32)),
    file('/boot/firmware/config.txt', 'dd'.repeat(32), { mode: undefined, uid: undefined, gid: undefined }),
  ];

  it('finds nothing between a tree and itself, in any order', () => {
    expect(compareTrees(a, [...a].reverse())).toEqual([]);
  });

  it('names each differing path once, sorted, with what differs', () => {
    const b: TreeEntry[] = [
      { path: '/etc', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
      file('/etc/hostname', 'ee'.repeat(32), { size: 9 }),
      file('/etc/shadow', 'bb'.repeat(32), { mode: 0o600, uid: 1000, gid: 42 }),
      // A symlink's own owner is the extraction's, not the image's: not a difference.
      { path: '/bin', type: 'symlink', target: 'usr/local/bin', mode: 0o777, uid: 1, gid: 1 },
      { path: '/etc/new', type: 'directory', mode: 0o755, uid: 0, gid: 0 },
      { path: '/boot/firmware/config.txt', type: 'directory' },
    ];
    const differences = compareTrees(a, b);
    expect(differences.map((d) => [d.path, d.change])).toEqual([
      ['/bin', 'changed'],
      ['/boot/firmware/config.txt', 'changed'],
      ['/etc/gone', 'removed'],
      ['/etc/hostname', 'changed'],
      ['/etc/new', 'added'],
      ['/etc/shadow', 'changed'],
    ]);
    const details = Object.fromEntries(differences.map((d) => [d.path, d.details]));
    expect(details['/bin']).toEqual(['symlink target usr/bin -> usr/local/bin']);
    expect(details['/boot/firmware/config.txt']).toEqual(['type file -> directory']);
    expect(details['/etc/hostname']).toEqual([`content 7 -> 9 bytes, sha256 ${'aa'.repeat(6)} -> ${'ee'.repeat(6)}`]);
    expect(details['/etc/shadow']).toEqual(['mode 0640 -> 0600', 'owner 0:42 -> 1000:42']);
  });

  it('lists the first ones and counts the rest', () => {
    const many = Array.from({ length: 5 }, (_, i) => file(`/f${i}`, 'aa'.repeat(32)));
    const lines = renderFileDifferences(compareTrees([], many), 3);
    expect(lines).toEqual(['+ /f0: added, file, 7 bytes', '+ /f1: added, file, 7 bytes', '+ /f2: added, file, 7 bytes', 'and 2 more']);
  });
});
