#!/usr/bin/env node
// The cache of bootstrapped root filesystems, one unpacked tree per cache key, every time in it
// clamped to SOURCE_DATE_EPOCH.
//   rootfs-cache.mjs restore {entry, rootfs, work}: makes rootfs the entry's tree, as an overlay:
//     the cached tree read-only below, this build's changes in work/upper (a build changes a few
//     hundred files: mounting takes a moment where unpacking 700 MB took seconds, and the cache
//     stays untouched). Where the kernel refuses the mount, the tree is copied instead. Exits 3
//     when there is no such entry (the rootfs step then bootstraps).
//   rootfs-cache.mjs save {entry, rootfs, keep, sourceDateEpoch}: clamps the tree's times, copies
//     it into the entry, then keeps only the newest `keep` entries next to it.
import { mkdir, readdir, rename, rm, stat, utimes } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { $ } from 'zx';

const notCached = 3;
const [command, json] = process.argv.slice(2);
const { entry, rootfs, keep, work, sourceDateEpoch } = JSON.parse(json ?? '{}');
$.verbose = true;

if (command === 'restore') {
  if (!(await stat(entry).catch(() => undefined))?.isDirectory()) {
    console.log(`rootfs-cache: no entry ${basename(entry)}`);
    process.exit(notCached);
  }
  const [upper, scratch] = [join(work, 'upper'), join(work, 'overlay-work')];
  await mkdir(upper, { recursive: true });
  await mkdir(scratch, { recursive: true });
  await mkdir(rootfs, { recursive: true });
  const options = `lowerdir=${entry},upperdir=${upper},workdir=${scratch}`;
  const mounted = await $`mount -t overlay overlay -o ${options} ${rootfs}`.nothrow();
  if (mounted.exitCode !== 0) {
    console.log('rootfs-cache: no overlay mount here; copying the tree instead');
    // Owners, modes, links and extended attributes (file capabilities) as they are in the tree.
    await $`cp -a --preserve=all ${`${entry}/.`} ${rootfs}`;
  }
  // Its time says when it was last used, for the pruning below.
  await utimes(entry, new Date(), new Date());
} else if (command === 'save') {
  const dir = dirname(entry);
  await mkdir(dir, { recursive: true });
  const epoch = `@${sourceDateEpoch}`;
  await $`find ${rootfs} -newermt ${epoch} -exec touch --no-dereference ${`--date=${epoch}`} {} +`;
  // Written under a temporary name: an interrupted save must not look like a cache entry.
  const partial = `${entry}.partial`;
  await rm(partial, { recursive: true, force: true });
  await mkdir(partial);
  await $`cp -a --preserve=all ${`${rootfs}/.`} ${partial}`;
  await rename(partial, entry);
  // cp -a gave it the tree's own (clamped) time: it is the newest entry.
  await utimes(entry, new Date(), new Date());
  // Each entry is ~0.7 GB: keep the newest few (another definition may still want its own).
  // Entries of older pibonds (*.tar.zst) and interrupted saves go too.
  const entries = [];
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    if (name.endsWith('.tar.zst') || (name.endsWith('.partial') && path !== partial)) {
      console.log(`rootfs-cache: removing ${name}`);
      await rm(path, { recursive: true, force: true });
    } else if (name.endsWith('.tree')) {
      entries.push({ path, mtime: (await stat(path)).mtimeMs });
    }
  }
  for (const old of entries.sort((a, b) => b.mtime - a.mtime).slice(keep)) {
    console.log(`rootfs-cache: removing the old entry ${basename(old.path)}`);
    await rm(old.path, { recursive: true, force: true });
  }
} else {
  console.error(`usage: rootfs-cache.mjs restore|save JSON (got ${command})`);
  process.exit(2);
}
