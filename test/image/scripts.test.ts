/**
 * The in-container zx scripts whose tools a Debian host has too (GNU tar, zstd, dpkg-query), run
 * here with this checkout's zx: their exit codes and reports are what the steps rely on.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, readlink, rm, stat, symlink, truncate, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { recipeDir } from '../../scripts/builder/builder-image.ts';
import { notCached } from '../../scripts/image/steps/30-rootfs.ts';
import { type OutputsReport, parseOutputsReport } from '../../scripts/image/steps/80-outputs.ts';

const hostHasTools = ['/usr/bin/zstd', '/usr/bin/dpkg-query'].every((tool) => existsSync(tool));

function runScript(name: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [join(recipeDir, 'bin', name), ...args], (err, stdout, stderr) => {
      resolve({ code: err ? Number((err as { code?: number }).code ?? 1) : 0, stdout, stderr });
    });
  });
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pibond-scripts-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!hostHasTools)('rootfs-cache.mjs', () => {
  it('exits with the code the rootfs step reads as "not cached" when there is no entry', async () => {
    const result = await runScript('rootfs-cache.mjs', ['restore', JSON.stringify({ entry: join(dir, 'none.tree'), rootfs: join(dir, 'root'), work: dir })]);
    expect(result.code).toBe(notCached);
    expect(result.stdout).toBe('rootfs-cache: no entry none.tree\n');
  });

  it('saves a tree with its times clamped, keeps the newest entries only, and restores the tree without touching the cache', async () => {
    const tree = join(dir, 'tree');
    await mkdir(join(tree, 'etc'), { recursive: true });
    await writeFile(join(tree, 'etc', 'hostname'), 'pibond\n');
    await symlink('/usr/share/zoneinfo/Etc/UTC', join(tree, 'etc', 'localtime'));
    const cache = join(dir, 'cache');
    await mkdir(join(cache, 'old.tree'), { recursive: true });
    await utimes(join(cache, 'old.tree'), 1, 1);
    await writeFile(join(cache, 'older.tar.zst'), 'a cache entry of an older pibond');

    const entry = join(cache, 'key.tree');
    const saved = await runScript('rootfs-cache.mjs', ['save', JSON.stringify({ entry, rootfs: tree, keep: 1, sourceDateEpoch: 1704067200 })]);
    expect(saved.code, saved.stderr).toBe(0);
    expect(existsSync(join(cache, 'old.tree'))).toBe(false);
    expect(existsSync(join(cache, 'older.tar.zst'))).toBe(false);
    expect(existsSync(`${entry}.partial`)).toBe(false);
    expect((await stat(join(entry, 'etc', 'hostname'))).mtimeMs).toBe(1704067200_000);

    const restored = join(dir, 'restored');
    const work = join(dir, 'work');
    const restore = await runScript('rootfs-cache.mjs', ['restore', JSON.stringify({ entry, rootfs: restored, work })]);
    try {
      expect(restore.code, restore.stderr).toBe(0);
      expect(await readFile(join(restored, 'etc', 'hostname'), 'utf8')).toBe('pibond\n');
      expect(await readlink(join(restored, 'etc', 'localtime'))).toBe('/usr/share/zoneinfo/Etc/UTC');
      // A build writes into its own root filesystem, never into the cached tree.
      await writeFile(join(restored, 'etc', 'hostname'), 'changed\n');
      expect(await readFile(join(entry, 'etc', 'hostname'), 'utf8')).toBe('pibond\n');
    } finally {
      await new Promise((resolve) => execFile('umount', [restored], resolve));
    }
  });
});

describe.skipIf(!hostHasTools)('outputs.mjs', () => {
  it('compresses, writes the checksums file and reports packages and sizes as one JSON line', async () => {
    const out = join(dir, 'out');
    const root = join(dir, 'root');
    await mkdir(out);
    await mkdir(join(root, 'var/lib/dpkg'), { recursive: true });
    await mkdir(join(root, 'usr/lib/modules'), { recursive: true });
    await mkdir(join(root, 'boot'), { recursive: true });
    await writeFile(
      join(root, 'var/lib/dpkg/status'),
      'Package: ifenslave\nStatus: install ok installed\nArchitecture: all\nVersion: 2.13\nMaintainer: x\nDescription: y\n\n',
    );
    // A sparse image: data in blocks 0 and 3 (block 3 all zeros, but written), holes in 1-2 and 4.
    await writeFile(join(out, 't.img'), Buffer.alloc(4096, 1));
    await truncate(join(out, 't.img'), 5 * 4096);
    const handle = await open(join(out, 't.img'), 'r+');
    await handle.write(Buffer.alloc(4096, 0), 0, 4096, 3 * 4096);
    await handle.close();

    const result = await runScript('outputs.mjs', [JSON.stringify({ dir: out, image: 't.img', compression: 'zstd', checksums: 't.img.sha256', bmapRanges: 'ranges.json', root })]);
    expect(result.code).toBe(0);
    const report: OutputsReport = parseOutputsReport(result.stdout.trimEnd().split('\n'));
    const sha256 = (bytes: Buffer) => createHash('sha256').update(bytes).digest('hex');
    expect(JSON.parse(await readFile(join(out, 'ranges.json'), 'utf8'))).toEqual({
      imageSize: 5 * 4096,
      blockSize: 4096,
      ranges: [
        { first: 0, last: 0, sha256: sha256(Buffer.alloc(4096, 1)) },
        { first: 3, last: 3, sha256: sha256(Buffer.alloc(4096, 0)) },
      ],
    });
    expect(Object.keys(report.checksums)).toEqual(['t.img', 't.img.zst']);
    expect(report.checksums['t.img']).toMatch(/^[0-9a-f]{64}$/);
    expect(await readFile(join(out, 't.img.sha256'), 'utf8')).toBe(`${report.checksums['t.img']}  t.img\n${report.checksums['t.img.zst']}  t.img.zst\n`);
    expect(report.packages).toEqual([{ name: 'ifenslave', version: '2.13', architecture: 'all' }]);
    expect(report.sizes.rootfsBytes).toBeGreaterThan(0);
    expect(existsSync(join(out, 't.img.zst'))).toBe(true);
  });

  it('refuses an unknown compression with exit 2', async () => {
    const result = await runScript('outputs.mjs', [JSON.stringify({ dir, image: 't.img', compression: 'lz4', checksums: 'x', root: dir })]);
    expect(result.code).toBe(2);
    expect(result.stderr).toMatch(/unknown compression lz4; allowed: zstd, xz, none/);
  });
});
