/**
 * The root file system's delta (scripts/builder/recipe/bin/lib/root-delta.mjs): find's listings in,
 * the debugfs commands that turn the base image into the tree out, or the reason they cannot.
 */
import { describe, expect, it } from 'vitest';
import { accessTimeCommands, deltaCommands, layCommands, parseChangedListing, parseTypedListing } from '../../scripts/builder/recipe/bin/lib/root-delta.mjs';

const epoch = 1704067200;
const typed = (...entries: string[]) => parseTypedListing(entries.map((e) => `${e}\0`).join(''));
/** One changed-listing entry: "%y %m %U %G %T@ %n %P\0%l\0". */
const changed = (line: string, target = '') => `${line}\0${target}\0`;

describe('root-delta listings', () => {
  it('reads a typed listing, names with blanks included', () => {
    expect([...parseTypedListing('d etc\0f etc/host name\0l bin\0')]).toEqual([['etc', 'd'], ['etc/host name', 'f'], ['bin', 'l']]);
  });

  it('reads a changed listing: mode in octal, mtime in whole seconds, link targets', () => {
    const entries = parseChangedListing(changed('f 4755 0 0 1700000000.7 1 usr/bin/x') + changed('l 777 0 0 1.0 1 bin', 'usr/bin'));
    expect(entries).toEqual([
      { type: 'f', mode: 0o4755, uid: 0, gid: 0, mtime: 1700000000, links: 1, path: 'usr/bin/x', target: '' },
      { type: 'l', mode: 0o777, uid: 0, gid: 0, mtime: 1, links: 1, path: 'bin', target: 'usr/bin' },
    ]);
  });

  it('refuses an entry it cannot read', () => {
    expect(() => parseChangedListing(changed('f 0644 root 0 1 1 etc/x'))).toThrow(/cannot read the listing entry/);
  });
});

describe('deltaCommands', () => {
  const base = typed('d etc', 'f etc/hostname', 'd etc/old', 'f etc/old/a', 'l etc/mtab', 'd home');

  it('removes what is gone (deepest first), replaces changed files, makes new directories before their files, and sets every field', () => {
    const current = typed('d etc', 'f etc/hostname', 'l etc/mtab', 'd home', 'd home/pi', 'f home/pi/.profile');
    const delta = deltaCommands({
      base,
      current,
      changed: parseChangedListing(
        changed('d 755 0 0 1800000000 1 etc') + changed('f 644 0 0 1600000000 1 etc/hostname') + changed('f 644 1000 1000 1600000000 1 home/pi/.profile') + changed('d 700 1000 1000 1600000000 1 home/pi'),
      ),
      root: '/work/rootfs',
      sourceDateEpoch: epoch,
    });
    if ('fallback' in delta) throw new Error(delta.fallback);
    const sif = (path: string, mode: string, uid: number, mtime: number) => [
      `sif "${path}" mode ${mode}`,
      `sif "${path}" uid ${uid}`,
      `sif "${path}" gid ${uid}`,
      `sif "${path}" mtime @${mtime}`,
      `sif "${path}" atime @${epoch}`,
      `sif "${path}" ctime @${epoch}`,
      `sif "${path}" crtime @${epoch}`,
    ];
    expect(delta.commands).toEqual([
      'rm "/etc/old/a"',
      'rmdir "/etc/old"',
      // A directory's own fields only (it is in the base); its mtime clamped to the epoch.
      ...sif('/etc', '040755', 0, epoch),
      'rm "/etc/hostname"',
      'write "/work/rootfs/etc/hostname" "/etc/hostname"',
      ...sif('/etc/hostname', '0100644', 0, 1600000000),
      'mkdir "/home/pi"',
      ...sif('/home/pi', '040700', 1000, 1600000000),
      'write "/work/rootfs/home/pi/.profile" "/home/pi/.profile"',
      ...sif('/home/pi/.profile', '0100644', 1000, 1600000000),
    ]);
    expect(delta.summary).toEqual({ removed: 2, written: 2, directories: 1, links: 0 });
  });

  it('writes a changed symbolic link anew and sets the root directory by "/"', () => {
    const delta = deltaCommands({
      base,
      current: base,
      changed: parseChangedListing(changed('l 777 0 0 1 1 etc/mtab', '../proc/self/mounts') + changed('d 755 0 0 1 1 ')),
      root: '/r',
      sourceDateEpoch: epoch,
    });
    if ('fallback' in delta) throw new Error(delta.fallback);
    expect(delta.commands.filter((c) => !c.startsWith('sif'))).toEqual(['rm "/etc/mtab"', 'symlink "/etc/mtab" "../proc/self/mounts"']);
    expect(delta.commands).toContain('sif "/" mode 040755');
  });

  it.each([
    ['a hard link', changed('f 644 0 0 1 2 etc/hostname'), /\/etc\/hostname: a hard link \(2 names\)/],
    ['a device node', changed('c 644 0 0 1 1 dev/null'), /\/dev\/null: a file of type "c"/],
    ['a directory replaced by a file', changed('f 644 0 0 1 1 home'), /\/home: a file where the file system has a directory/],
    ['a name with a double quote', changed('f 644 0 0 1 1 etc/a"b'), /debugfs cannot quote/],
  ])('falls back to the whole tree for %s', (_, listing, reason) => {
    const delta = deltaCommands({ base, current: base, changed: parseChangedListing(listing), root: '/r', sourceDateEpoch: epoch });
    expect('fallback' in delta && delta.fallback).toMatch(reason);
  });

  it('has nothing to do when nothing changed', () => {
    expect(deltaCommands({ base, current: base, changed: [], root: '/r', sourceDateEpoch: epoch })).toEqual({ commands: [], summary: { removed: 0, written: 0, directories: 0, links: 0 } });
  });
});

describe('accessTimeCommands', () => {
  it('gives the root and every path the epoch as access time, and reports names debugfs cannot quote', () => {
    expect(accessTimeCommands(['etc', 'etc/host name', 'etc/a"b'], epoch)).toEqual({
      commands: [`sif "/" atime @${epoch}`, `sif "/etc" atime @${epoch}`, `sif "/etc/host name" atime @${epoch}`],
      unquoted: ['etc/a"b'],
    });
  });
});

describe('layCommands (pibond laid onto a stock image)', () => {
  const existing = new Map([
    ['etc', 'd'],
    ['etc/shadow', 'f'],
    ['etc/ssh', 'd'],
    ['etc/ssh/ssh_host_ed25519_key', 'f'],
    ['usr', 'd'],
    ['usr/lib', 'd'],
    ['lib', 'l'],
  ]);
  const lay = (listing: string, removed: string[] = []) =>
    layCommands({ existing, entries: parseChangedListing(listing), removed, root: '/work/rootfs', sourceDateEpoch: epoch });

  it("leaves the image's own directories alone, replaces its files, makes what it lacks with the tree's owner and mode, and removes per-device files", () => {
    const { commands, summary } = lay(
      changed('d 755 0 0 1 1 ') +
        changed('d 700 0 0 1 1 etc') +
        changed('f 640 0 42 1 1 etc/shadow') +
        changed('d 755 0 0 1 1 usr') +
        changed('d 755 0 0 1 1 usr/lib') +
        changed('d 755 0 0 1 1 usr/lib/pibond') +
        changed('l 777 0 0 1 1 usr/lib/pibond/node', '/usr/bin/node'),
      ['etc/ssh/ssh_host_ed25519_key', 'var/lib/systemd/random-seed'],
    );
    expect(commands.filter((command) => !command.startsWith('sif'))).toEqual([
      'rm "/etc/ssh/ssh_host_ed25519_key"',
      'rm "/etc/shadow"',
      'write "/work/rootfs/etc/shadow" "/etc/shadow"',
      'mkdir "/usr/lib/pibond"',
      'symlink "/usr/lib/pibond/node" "/usr/bin/node"',
    ]);
    // The tree's /etc is 0700 here: the image's /etc must not get that, nor any field of the tree's.
    expect(commands.some((command) => command.startsWith('sif "/etc" '))).toBe(false);
    expect(commands).toContain('sif "/etc/shadow" gid 42');
    expect(commands).toContain('sif "/usr/lib/pibond" mode 040755');
    expect(summary).toEqual({ removed: 1, written: 1, directories: 1, links: 1 });
  });

  it('refuses to lay a directory where the image has a file or a link, and the other way round', () => {
    expect(() => lay(changed('d 755 0 0 1 1 lib'))).toThrow('/lib: a directory where the file system has a file or link');
    expect(() => lay(changed('f 644 0 0 1 1 etc'))).toThrow('/etc: a file where the file system has a directory');
    expect(() => lay('', ['etc/ssh'])).toThrow(/is a directory in the image; only files are removed/);
  });

  it('refuses hard links and names debugfs cannot quote', () => {
    expect(() => lay(changed('f 644 0 0 1 2 etc/a'))).toThrow(/hard link/);
    expect(() => lay(changed('f 644 0 0 1 1 etc/a"b'))).toThrow(/cannot quote/);
  });
});
