import { execFileSync } from 'node:child_process';
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DEFAULT_SOURCE_DATE_EPOCH, packTar, readTree, sourceDateEpochFrom, type TarEntry } from '../../scripts/lib/tar.ts';
import { listTar } from './_tar-entries.ts';

const epoch = 1_700_000_000;

describe('packTar', () => {
  it('sorts entries, adds every missing parent before its children, owns all by root at SOURCE_DATE_EPOCH', async () => {
    const entries: TarEntry[] = [
      { type: 'file', path: 'usr/lib/pibond/enslave', content: '#!/bin/sh\n', mode: 0o755 },
      { type: 'symlink', path: 'etc/systemd/system/multi-user.target.wants/x.service', target: '/usr/lib/systemd/system/x.service' },
      { type: 'file', path: 'etc/hostname', content: 'pibond\n', mode: 0o644 },
      { type: 'directory', path: 'etc/ssh', mode: 0o700 },
      { type: 'file', path: 'etc-extra', content: 'x', mode: 0o600 },
    ];
    const listed = await listTar(await packTar(entries, epoch));
    expect(listed.map((e) => [e.name, e.type, e.mode.toString(8)])).toEqual([
      ['etc', 'directory', '755'],
      ['etc-extra', 'file', '600'],
      ['etc/hostname', 'file', '644'],
      ['etc/ssh', 'directory', '700'],
      ['etc/systemd', 'directory', '755'],
      ['etc/systemd/system', 'directory', '755'],
      ['etc/systemd/system/multi-user.target.wants', 'directory', '755'],
      ['etc/systemd/system/multi-user.target.wants/x.service', 'symlink', '777'],
      ['usr', 'directory', '755'],
      ['usr/lib', 'directory', '755'],
      ['usr/lib/pibond', 'directory', '755'],
      ['usr/lib/pibond/enslave', 'file', '755'],
    ]);
    for (const entry of listed) {
      expect(entry).toMatchObject({ uid: 0, gid: 0, uname: 'root', gname: 'root', mtime: epoch });
    }
    expect(listed.find((e) => e.type === 'symlink')?.linkname).toBe('/usr/lib/systemd/system/x.service');
    expect(listed.find((e) => e.name === 'usr/lib/pibond/enslave')?.content).toBe('#!/bin/sh\n');
  });

  it('gives the same bytes for the same entries in any order, and other bytes for any change', async () => {
    const entries: TarEntry[] = [
      { type: 'file', path: 'a/b', content: 'one', mode: 0o644 },
      { type: 'file', path: 'a/c', content: Buffer.from('two'), mode: 0o755 },
    ];
    const tar = await packTar(entries, epoch);
    expect((await packTar([...entries].reverse(), epoch)).equals(tar)).toBe(true);
    expect((await packTar([entries[0]!, { type: 'file', path: 'a/c', content: 'twO', mode: 0o755 }], epoch)).equals(tar)).toBe(false);
    expect((await packTar([entries[0]!, { type: 'file', path: 'a/c', content: 'two', mode: 0o644 }], epoch)).equals(tar)).toBe(false);
    expect((await packTar(entries, epoch + 1)).equals(tar)).toBe(false);
  });

  it('keeps the last of two entries with the same path', async () => {
    const listed = await listTar(
      await packTar(
        [
          { type: 'file', path: 'etc/motd', content: 'first', mode: 0o644 },
          { type: 'file', path: 'etc/motd', content: 'second', mode: 0o644 },
        ],
        epoch,
      ),
    );
    expect(listed.map((e) => [e.name, e.content])).toEqual([
      ['etc', ''],
      ['etc/motd', 'second'],
    ]);
  });

  it('refuses absolute or unnormalized paths, and a file standing where a directory must be', async () => {
    await expect(packTar([{ type: 'file', path: '/etc/motd', content: '', mode: 0o644 }], epoch)).rejects.toThrow('must be relative');
    await expect(packTar([{ type: 'file', path: 'etc/../motd', content: '', mode: 0o644 }], epoch)).rejects.toThrow('must be relative');
    await expect(
      packTar(
        [
          { type: 'file', path: 'etc', content: '', mode: 0o644 },
          { type: 'file', path: 'etc/motd', content: '', mode: 0o644 },
        ],
        epoch,
      ),
    ).rejects.toThrow('etc/motd needs etc to be a directory, but it is a file');
  });
});

describe('readTree', () => {
  const temps: string[] = [];
  afterEach(async () => {
    await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  async function tree(): Promise<string> {
    const root = await mkdtemp(join(tmpdir(), 'pibond-tree-'));
    temps.push(root);
    // Created out of order, with a umask-077 look: neither may show in what readTree returns.
    await mkdir(join(root, 'bin'), { mode: 0o700 });
    await writeFile(join(root, 'bin/run'), '#!/bin/sh\n', { mode: 0o700 });
    await writeFile(join(root, 'Dockerfile'), 'FROM x\n', { mode: 0o600 });
    await writeFile(join(root, 'a-b'), 'dash\n', { mode: 0o644 });
    await mkdir(join(root, 'a'));
    await writeFile(join(root, 'a/z'), 'z\n');
    await symlink('../bin/run', join(root, 'a/link'));
    return root;
  }

  it('walks depth first, each directory sorted, keeping only the exec bit and symlinks as links', async () => {
    const root = await tree();
    const listed = (await readTree(root)).map((e) =>
      e.type === 'symlink' ? `${e.path} -> ${e.target}` : `${e.path}${e.type === 'directory' ? '/' : ''} ${e.mode.toString(8)}`,
    );
    expect(listed).toEqual(['Dockerfile 644', 'a/ 755', 'a/link -> ../bin/run', 'a/z 644', 'a-b 644', 'bin/ 755', 'bin/run 755']);
  });

  it('packs to the same bytes whatever the checkout (the one walker for overlays and the builder recipe)', async () => {
    const first = await packTar(await readTree(await tree()), DEFAULT_SOURCE_DATE_EPOCH);
    const other = await tree();
    await chmod(join(other, 'Dockerfile'), 0o664);
    await chmod(join(other, 'bin'), 0o775);
    expect((await packTar(await readTree(other), DEFAULT_SOURCE_DATE_EPOCH)).equals(first)).toBe(true);
  });

  it('refuses what an image cannot hold, naming it', async () => {
    const root = await tree();
    execFileSync('mkfifo', [join(root, 'pipe')]);
    await expect(readTree(root)).rejects.toThrow(`${join(root, 'pipe')}: only files, directories and symlinks can go into an image`);
  });
});

describe('sourceDateEpochFrom', () => {
  it('reads SOURCE_DATE_EPOCH, falls back to a fixed instant, and rejects anything but seconds', () => {
    expect(sourceDateEpochFrom({ SOURCE_DATE_EPOCH: '1712345678' })).toBe(1712345678);
    expect(sourceDateEpochFrom({})).toBe(DEFAULT_SOURCE_DATE_EPOCH);
    expect(() => sourceDateEpochFrom({ SOURCE_DATE_EPOCH: 'yesterday' })).toThrow('SOURCE_DATE_EPOCH must be a whole number');
  });
});
