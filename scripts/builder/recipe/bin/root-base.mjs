#!/usr/bin/env node
// The root file system's base image: the ext4 made from the tree as the root filesystem step left
// it (before overlays), cached in the cache volume by a key of everything it depends on. The disk
// step later copies it into the image and applies only what changed since (lib/root-delta.mjs), so
// a rebuild rewrites a few blocks instead of the whole root file system, and the same blocks come
// out of every build, from the cache or not.
// Argument: one JSON object {root, base (the cached image's path), listing, marker, rootBytes,
//   sourceDateEpoch, reuse (false: make it again even if cached), keep (entries to keep)}.
// Writes the tree's typed listing (see lib/root-delta.mjs) and then the marker file, whose time
// divides "in the base" from "changed since". Prints one JSON line last: {built, seconds, uuid}.
//
// The file system's UUID (which also seeds its hash and every metadata checksum) comes from what
// the tree is: dpkg's record of the installed packages, the partition's size and the epoch. Not
// from the cache key, which also covers how the tree was made (a lock, a mirror's URL): a locked
// build and an unlocked one that install the same packages give the same bytes. Not from the
// definition either: a new host name must not make a new base. Nothing names the root by UUID
// (fstab and cmdline.txt use the PARTUUID, which is per definition).
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readFile, readdir, rename, rm, stat, unlink, utimes, writeFile } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { $ } from 'zx';
import { parseTypedListing } from './lib/root-delta.mjs';
import { moveAll, settleAccessTimes } from './lib/tree.mjs';

const input = JSON.parse(process.argv[2] ?? '{}');
const { root, base, listing, marker, sourceDateEpoch } = input;
const epoch = `@${sourceDateEpoch}`;
$.verbose = true;

// Every time in the tree is clamped to SOURCE_DATE_EPOCH first (the FAT takes the firmware's mtimes
// as they are), so that the same tree is the same whenever it was unpacked.
await $`find ${root} -newermt ${epoch} -exec touch --no-dereference ${`--date=${epoch}`} {} +`;

// The Pi firmware's files go to the FAT partition, never into the root: /boot/firmware stays as the
// empty mount point in both the listing and the base.
await $`find ${root} -mindepth 1 ${['(', '-path', `${root}/boot/firmware/*`, '-prune', '-o', '-printf', '%y %P\\0', ')']} > ${listing}`;

const uuid = await treeUuid();
const started = Date.now();
const built = !(input.reuse && (await stat(base).catch(() => undefined))?.isFile());
if (built) await makeBase();
// Its time says when it was last used, for prune().
else await utimes(base, new Date(), new Date());
await writeFile(marker, '');
// Inode change times tick with the kernel's coarse clock: anything changed in the same tick as the
// marker would look older than it. Let the tick pass.
await sleep(50);
console.log(JSON.stringify({ built, seconds: (Date.now() - started) / 1000, uuid }));

/** A version-4-shaped UUID from the installed packages (dpkg's status), the size and the epoch. */
async function treeUuid() {
  const status = await readFile(join(root, 'var/lib/dpkg/status'));
  const hex = createHash('sha256').update('root-uuid\0').update(status).update(`\0${input.rootBytes}\0${sourceDateEpoch}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

/** mke2fs -d from the tree, the firmware's files set aside meanwhile; renamed into place when whole. */
async function makeBase() {
  await mkdir(dirname(base), { recursive: true });
  const firmware = join(root, 'boot/firmware');
  const aside = await mkdtemp('/work/firmware.');
  const partial = `${base}.partial`;
  try {
    await moveAll(firmware, aside);
    await rm(partial, { force: true });
    await $`truncate -s ${input.rootBytes} ${partial}`;
    // The UUID and hash seed come from the tree (treeUuid). nodiscard: a discard on a file punches holes.
    // UNIX_IO_NOZEROOUT: what mke2fs zeroes (the journal) it writes as zeros instead of punching
    // holes, so it is data in the block map and zero on the card. lazy_itable_init=1 is what mke2fs
    // picks where the kernel zeroes inode tables at first mount; said here so the bytes do not depend
    // on the build host's kernel. SOURCE_DATE_EPOCH: every inode's times (e2fsprogs >= 1.47.1).
    const extended = `root_owner=0:0,hash_seed=${uuid},nodiscard,lazy_itable_init=1`;
    const env = { ...process.env, SOURCE_DATE_EPOCH: String(sourceDateEpoch), E2FSPROGS_FAKE_TIME: String(sourceDateEpoch), UNIX_IO_NOZEROOUT: '1' };
    await $({ env })`mke2fs -F -q -t ext4 -L rootfs -U ${uuid} -E ${extended} -d ${root} ${partial}`;
    await settleAccessTimes(partial, parseTypedListing(await readFile(listing, 'utf8')).keys(), sourceDateEpoch, dirname(listing), env);
    await rename(partial, base);
  } finally {
    await moveAll(aside, firmware);
    await rm(aside, { recursive: true, force: true });
    await rm(partial, { force: true });
  }
  await prune();
}

/** Keeps the newest `keep` base images (each is ~0.7 GB of data in a sparse file). */
async function prune() {
  const dir = dirname(base);
  const entries = [];
  for (const name of (await readdir(dir)).filter((n) => n.endsWith('.ext4'))) {
    entries.push({ path: join(dir, name), mtime: (await stat(join(dir, name))).mtimeMs });
  }
  for (const old of entries.sort((a, b) => b.mtime - a.mtime).slice(input.keep)) {
    console.log(`root-base: removing the old base image ${basename(old.path)}`);
    await unlink(old.path);
  }
}
