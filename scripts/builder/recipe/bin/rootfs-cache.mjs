#!/usr/bin/env node
// The cache of bootstrapped root filesystems, one zstd-compressed tar per cache key.
//   rootfs-cache.mjs restore {entry, rootfs}: unpacks the entry into rootfs; exits 3 when there is
//     no such entry (the rootfs step then bootstraps).
//   rootfs-cache.mjs save {entry, rootfs, keep}: packs rootfs into the entry, then keeps only the
//     newest `keep` entries next to it.
import { mkdir, readdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { $ } from 'zx';

const notCached = 3;
const [command, json] = process.argv.slice(2);
const { entry, rootfs, keep } = JSON.parse(json ?? '{}');
$.verbose = true;
// Owners, modes and extended attributes (file capabilities) as they are in the tree.
const treeFlags = ['--numeric-owner', '--xattrs', '--xattrs-include=*'];

if (command === 'restore') {
  if (!(await stat(entry).catch(() => undefined))?.isFile()) {
    console.log(`rootfs-cache: no entry ${basename(entry)}`);
    process.exit(notCached);
  }
  await mkdir(rootfs, { recursive: true });
  await $`tar -x ${treeFlags} --use-compress-program=zstd -f ${entry} -C ${rootfs}`;
} else if (command === 'save') {
  const dir = dirname(entry);
  await mkdir(dir, { recursive: true });
  // Written under a temporary name: an interrupted save must not look like a cache entry.
  const partial = `${entry}.partial`;
  await $`tar -c ${treeFlags} ${'--use-compress-program=zstd -T0 -3 -q'} -f ${partial} -C ${rootfs} .`;
  await rename(partial, entry);
  // Each entry is ~220 MB: keep the newest few (another definition may still want its own).
  const entries = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.tar.zst'))) {
    entries.push({ path: join(dir, name), mtime: (await stat(join(dir, name))).mtimeMs });
  }
  for (const old of entries.sort((a, b) => b.mtime - a.mtime).slice(keep)) {
    console.log(`rootfs-cache: removing the old entry ${basename(old.path)}`);
    await unlink(old.path);
  }
} else {
  console.error(`usage: rootfs-cache.mjs restore|save JSON (got ${command})`);
  process.exit(2);
}
