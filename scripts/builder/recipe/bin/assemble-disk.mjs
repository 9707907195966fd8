#!/usr/bin/env node
// Assembles the SD-card image from a root filesystem tree, without loop devices or mounts: both file
// systems are made in place, at their partitions' offsets in one sparse file (mkfs.vfat --offset,
// mtools' image@@offset, mke2fs -E offset), and sfdisk partitions it.
// The image's holes are exactly the blocks no tool wrote: everything mkfs and mcopy wrote is data,
// zeros included (a FAT's free entries, a new directory cluster, the zeroed journal). The block map
// (the .bmap) lists the data, and a flashing tool skips the holes, so a hole must be a block whose
// old contents on a used card do not matter. (Copying finished file system images in with
// `dd conv=sparse` broke this: it turned every zero block into a hole, free FAT entries included.)
// The boot partition also gets the card-settings slot, pibond-card.yaml, in contiguous clusters,
// which `pibond flash` overwrites in place on the card.
// The root partition is the cached base image (root-base.mjs) copied in (beside the FAT's filling), plus the delta of what
// changed in the tree since it was made, applied with debugfs (lib/root-delta.mjs); a delta debugfs
// cannot express (a hard link, a device node) makes the file system from the whole tree instead.
// Argument: one JSON object {root, image, diskId, bootStart, bootSectors, rootStart, rootSectors,
//   totalSectors, cmdline (the kernel command line for cmdline.txt), sourceDateEpoch,
//   rootBase: {file, listing, marker, uuid} (root-base.mjs's outputs)}.
// Prints one JSON line on stdout, last: {card: {file, offset (bytes into the image), bytes}}.
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';
import { card, cardContent, cardOffset } from './lib/card-slot.mjs';
import { deltaCommands, parseChangedListing, parseTypedListing } from './lib/root-delta.mjs';
import { moveAll, settleAccessTimes } from './lib/tree.mjs';

const input = JSON.parse(process.argv[2] ?? '{}');
const { root, image, diskId, sourceDateEpoch, rootBase } = input;
const rootOffset = input.rootStart * 512;
const firmware = join(root, 'boot/firmware');
const sector = 512;
const bootOffset = input.bootStart * sector;
const bootFs = `${image}@@${bootOffset}`;
$.verbose = true;

// mtools date what they write (the volume label's entry, new directories) from SOURCE_DATE_EPOCH,
// and mke2fs (e2fsprogs >= 1.47.1) every inode's times: the same tree gives the same bytes.
const reproducible = { ...process.env, SOURCE_DATE_EPOCH: String(sourceDateEpoch) };
const mtools = $({ env: reproducible });
/**
 * The superblock's lifetime count of kilobytes written (s_kbytes_written), which e2fsprogs adds to
 * on every close: it tells how the file system was made (a fresh base image, or a cached one and a
 * delta of another size), not what it holds, so a cold build and a cached one differed there and
 * nowhere else. Set to 0 last, it stays 0: e2fsprogs only adds to a count that is not 0.
 */
const zeroWriteCounter = 'ssv kbytes_written 0';
// The root file system's tools: every inode time SOURCE_DATE_EPOCH, and what mke2fs or debugfs
// zero written as zeros (UNIX_IO_NOZEROOUT), never as holes.
const rootEnv = { ...reproducible, E2FSPROGS_FAKE_TIME: String(sourceDateEpoch), UNIX_IO_NOZEROOUT: '1' };

// Copies a sparse file's data extents (SEEK_DATA/SEEK_HOLE) into another file at an offset, in the
// kernel (copy_file_range), so its holes stay holes and everything else is data. Node has neither.
const copyExtents = `
import errno, os, sys
src = os.open(sys.argv[1], os.O_RDONLY)
dst = os.open(sys.argv[2], os.O_WRONLY)
offset = int(sys.argv[3])
end = os.fstat(src).st_size
pos = 0
while pos < end:
    try:
        data = os.lseek(src, pos, os.SEEK_DATA)
    except OSError as err:
        if err.errno != errno.ENXIO: raise
        break
    hole = os.lseek(src, data, os.SEEK_HOLE)
    at = data
    while at < hole:
        try:
            copied = os.copy_file_range(src, dst, hole - at, at, at + offset)
        except OSError as err:
            if err.errno not in (errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP): raise
            chunk = os.pread(src, min(hole - at, 8 << 20), at)
            copied = os.pwrite(dst, chunk, at + offset)
        if copied <= 0: sys.exit(f"copy-extents: no progress at {at}")
        at += copied
    pos = hole
`;

const work = await mkdtemp('/work/disk.');
try {
  // The Pi firmware's files (and the command line) go to the FAT partition, straight from
  // /boot/firmware; the root partition has that as the empty mount point.
  await writeFile(join(firmware, 'cmdline.txt'), `${input.cmdline}\n`);
  const cardFile = join(work, card.file);
  await writeFile(cardFile, cardContent());

  // Every timestamp is clamped to SOURCE_DATE_EPOCH, so the same tree gives the same bytes.
  const epoch = `@${sourceDateEpoch}`;
  await $`find ${[root, cardFile]} -newermt ${epoch} -exec touch --no-dereference ${`--date=${epoch}`} {} +`;

  await rm(image, { force: true });
  // The space before the boot partition is written as zeros: no partition table from a card's
  // earlier life (a GPT header in sector 1) survives next to the new MBR.
  await $`dd ${['if=/dev/zero', `of=${image}`, `bs=${sector}`, `count=${input.bootStart}`, 'status=none']}`;

  // FAT32 with a fixed volume id (the disk id) so that rebuilds agree. mkfs.vfat picks its cluster
  // size from the room it finds after --offset, so the file ends with the boot partition while it
  // runs (as with -C on a file of the partition's size). The label is put in by mlabel, not by
  // mkfs.vfat -n: dosfstools 4.2 dates the label's directory entry with the clock, mtools with
  // SOURCE_DATE_EPOCH.
  await $`truncate -s ${bootOffset + input.bootSectors * sector} ${image}`;
  await $`mkfs.vfat -F 32 -i ${diskId} ${`--offset=${input.bootStart}`} ${image} ${Math.floor(input.bootSectors / 2)}`.quiet();
  await $`truncate -s ${input.totalSectors * sector} ${image}`;
  // The root partition: the base image plus the delta runs beside the FAT's filling (they write
  // disjoint bytes of the image); made from the whole tree, it comes after, as it moves the
  // firmware's files aside meanwhile.
  const delta = await rootDelta();
  const rootDone = 'fallback' in delta ? undefined : applyRootDelta(delta);
  try {
    await mtools`mlabel -i ${bootFs} ::BOOTFS`;
    // The card slot first, into the empty file system: its clusters are contiguous.
    await mtools`mcopy -m -i ${bootFs} ${cardFile} ::/`;
    await copyTreeSorted(firmware, '::');
  } catch (err) {
    await rootDone?.catch(() => {});
    throw err;
  }
  await (rootDone ?? makeWholeRoot(delta));

  const table = [
    'label: dos',
    `label-id: 0x${diskId}`,
    'unit: sectors',
    '',
    `start=${input.bootStart}, size=${input.bootSectors}, type=c, bootable`,
    `start=${input.rootStart}, size=${input.rootSectors}, type=83`,
    '',
  ].join('\n');
  await $({ input: table })`sfdisk --quiet --wipe never ${image}`;

  const offset = await cardOffset(image, bootOffset);
  await $`sfdisk --dump ${image}`;
  console.log(JSON.stringify({ card: { file: card.file, offset, bytes: card.bytes } }));
} finally {
  await rm(work, { recursive: true, force: true });
}

/** The root partition from the whole tree (a delta debugfs cannot express). */
async function makeWholeRoot(delta) {
  console.log(`assemble-disk: the whole root file system is made from the tree: ${delta.fallback}`);
  const aside = await mkdtemp('/work/firmware.');
  await moveAll(firmware, aside);
  try {
    await makeRootFromTree(rootEnv);
    await settleAccessTimes(`${image}?offset=${rootOffset}`, delta.paths, sourceDateEpoch, work, rootEnv);
    await $({ env: rootEnv })`debugfs -w -R ${zeroWriteCounter} ${`${image}?offset=${rootOffset}`}`.quiet();
  } finally {
    await moveAll(aside, firmware);
  }
}

/** The root partition: the base image's data copied in at the partition's offset, then the delta applied in place. */
async function applyRootDelta(delta) {
  await $`python3 -c ${copyExtents} ${rootBase.file} ${image} ${rootOffset}`;
  const commands = join(work, 'root-delta.debugfs');
  await writeFile(commands, `${[...delta.commands, zeroWriteCounter].join('\n')}\n`);
  // debugfs reports a failed command on stderr and still exits 0.
  const applied = await $({ env: rootEnv })`debugfs -w -f ${commands} ${`${image}?offset=${rootOffset}`}`.quiet();
  const errors = applied.stderr.split('\n').filter((line) => line.trim() !== '' && !/^debugfs \d/.test(line));
  if (errors.length > 0) throw new Error(`assemble-disk: debugfs could not apply the root file system's delta:\n  ${errors.slice(0, 10).join('\n  ')}`);
  const { removed, written, directories, links } = delta.summary;
  console.log(`assemble-disk: root file system = base image + ${written} files, ${directories} new directories, ${links} links written, ${removed} paths removed`);
}

/** mke2fs -d of the whole tree into the root partition, as the base image is made (root-base.mjs). */
async function makeRootFromTree(env) {
  const extended = `root_owner=0:0,hash_seed=${rootBase.uuid},offset=${rootOffset},nodiscard,lazy_itable_init=1`;
  await $({ env })`mke2fs -F -q -t ext4 -L rootfs -U ${rootBase.uuid} -E ${extended} -d ${root} ${image} ${`${Math.floor(input.rootSectors / 2)}k`}`;
}

/** What changed in the tree since the base image was made (the firmware's files are the FAT's). */
async function rootDelta() {
  const firmwareFiles = ['-path', `${root}/boot/firmware/*`, '-prune', '-o'];
  const typed = (await $`find ${root} -mindepth 1 ${firmwareFiles} -printf ${'%y %P\\0'}`.quiet()).stdout;
  const changed = (await $`find ${root} ${firmwareFiles} -cnewer ${rootBase.marker} -printf ${'%y %m %U %G %T@ %n %P\\0%l\\0'}`.quiet()).stdout;
  const current = parseTypedListing(typed);
  const delta = deltaCommands({
    base: parseTypedListing(await readFile(rootBase.listing, 'utf8')),
    current,
    changed: parseChangedListing(changed),
    root,
    sourceDateEpoch,
  });
  // The tree's paths, for the access times of a file system made from the whole tree.
  return { ...delta, paths: current.keys() };
}

/**
 * Copies a tree into the boot partition one directory at a time, entries in sorted order. mcopy -s
 * would walk it in readdir order, which is the build host's hash order: the FAT's directory entries
 * and cluster chains would then differ from one machine to another.
 */
async function copyTreeSorted(from, to) {
  const entries = (await readdir(from, { withFileTypes: true })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  const files = entries.filter((entry) => !entry.isDirectory()).map((entry) => join(from, entry.name));
  if (files.length > 0) await mtools`mcopy -m -i ${bootFs} ${files} ${`${to}/`}`;
  for (const dir of entries.filter((entry) => entry.isDirectory())) {
    await mtools`mmd -i ${bootFs} ${`${to}/${dir.name}`}`;
    await copyTreeSorted(join(from, dir.name), `${to}/${dir.name}`);
  }
}
