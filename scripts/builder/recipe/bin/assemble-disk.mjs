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
// Argument: one JSON object {root, image, diskId, bootStart, bootSectors, rootStart, rootSectors,
//   totalSectors, cmdline (the kernel command line for cmdline.txt), sourceDateEpoch}.
// Prints one JSON line on stdout, last: {card: {file, offset (bytes into the image), bytes}}.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';

const input = JSON.parse(process.argv[2] ?? '{}');
const { root, image, diskId, sourceDateEpoch } = input;
const firmware = join(root, 'boot/firmware');
const sector = 512;
const bootOffset = input.bootStart * sector;
const bootFs = `${image}@@${bootOffset}`;
$.verbose = true;

/** The card-settings slot: a fixed-size file `pibond flash` fills in place, so it must not move. */
const card = {
  file: 'pibond-card.yaml',
  bytes: 65536,
  line: '# pibond card settings: none (pibond flash --hostname/--address/--ssh-key writes them here)\n',
};
const cardContent = Buffer.alloc(card.bytes, '\n');
cardContent.write(card.line);

const work = await mkdtemp('/work/disk.');
try {
  // The Pi firmware's files leave the root tree for the FAT partition; /boot/firmware stays as the
  // empty mount point.
  await writeFile(join(firmware, 'cmdline.txt'), `${input.cmdline}\n`);
  const boot = join(work, 'boot');
  await mkdir(boot);
  await moveAll(firmware, boot);
  const cardFile = join(work, card.file);
  await writeFile(cardFile, cardContent);

  // Every timestamp is clamped to SOURCE_DATE_EPOCH, so the same tree gives the same bytes.
  const epoch = `@${sourceDateEpoch}`;
  await $`find ${[root, boot, cardFile]} -newermt ${epoch} -exec touch --no-dereference ${`--date=${epoch}`} {} +`;

  await rm(image, { force: true });
  // The space before the boot partition is written as zeros: no partition table from a card's
  // earlier life (a GPT header in sector 1) survives next to the new MBR.
  await $`dd ${['if=/dev/zero', `of=${image}`, `bs=${sector}`, `count=${input.bootStart}`, 'status=none']}`;

  // FAT32 with a fixed volume id (the disk id) so that rebuilds agree. mkfs.vfat picks its cluster
  // size from the room it finds after --offset, so the file ends with the boot partition while it
  // runs (as with -C on a file of the partition's size).
  await $`truncate -s ${bootOffset + input.bootSectors * sector} ${image}`;
  await $`mkfs.vfat -F 32 -n BOOTFS -i ${diskId} ${`--offset=${input.bootStart}`} ${image} ${Math.floor(input.bootSectors / 2)}`.quiet();
  await $`truncate -s ${input.totalSectors * sector} ${image}`;
  // The card slot first, into the empty file system: its clusters are contiguous.
  await $`mcopy -m -i ${bootFs} ${cardFile} ::/`;
  const bootFiles = (await readdir(boot)).sort().map((name) => join(boot, name));
  await $`mcopy -s -m -i ${bootFs} ${bootFiles} ::/`;

  // ext4 from the tree; the UUID and hash seed come from the disk id for reproducibility. nodiscard:
  // a discard on a file punches holes. UNIX_IO_NOZEROOUT: what mke2fs zeroes (the journal) it
  // writes as zeros instead of punching holes, so it is data in the block map and zero on the card.
  // lazy_itable_init=1 is what mke2fs picks where the kernel zeroes inode tables at first mount;
  // said here so the bytes do not depend on the build host's kernel.
  const uuid = `${diskId}-0000-4000-8000-${createHash('sha256').update(diskId).digest('hex').slice(0, 12)}`;
  const extended = `root_owner=0:0,hash_seed=${uuid},offset=${input.rootStart * sector},nodiscard,lazy_itable_init=1`;
  const env = { ...process.env, E2FSPROGS_FAKE_TIME: String(sourceDateEpoch), UNIX_IO_NOZEROOUT: '1' };
  await $({ env })`mke2fs -F -q -t ext4 -L rootfs -U ${uuid} -E ${extended} -d ${root} ${image} ${`${Math.floor(input.rootSectors / 2)}k`}`;

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

  const offset = await cardOffset();
  // Put the firmware files back, so later steps (and a re-run) see the whole tree.
  await moveAll(boot, firmware);
  await $`sfdisk --dump ${image}`;
  console.log(JSON.stringify({ card: { file: card.file, offset, bytes: card.bytes } }));
} finally {
  await rm(work, { recursive: true, force: true });
}

async function moveAll(from, to) {
  for (const name of await readdir(from)) await rename(join(from, name), join(to, name));
}

/**
 * The card slot's byte offset in the image, from its clusters (mshowfat) and the FAT boot sector's
 * geometry; checked by reading the slot back there. Fails if the slot is not one run of clusters.
 */
async function cardOffset() {
  const clusters = (await $`mshowfat -i ${bootFs} ${`::/${card.file}`}`.quiet()).stdout.trim();
  const runs = [...clusters.matchAll(/<(\d+)(?:-(\d+))?>/g)];
  if (runs.length !== 1) throw new Error(`assemble-disk: ${card.file} is not in contiguous clusters (mshowfat: ${clusters})`);
  const firstCluster = Number(runs[0][1]);

  const handle = await open(image, 'r');
  try {
    const { buffer: bootSector } = await handle.read(Buffer.alloc(sector), 0, sector, bootOffset);
    const bytesPerSector = bootSector.readUInt16LE(11);
    const sectorsPerCluster = bootSector.readUInt8(13);
    const reservedSectors = bootSector.readUInt16LE(14);
    const fats = bootSector.readUInt8(16);
    const sectorsPerFat = bootSector.readUInt32LE(36);
    const dataStart = (reservedSectors + fats * sectorsPerFat) * bytesPerSector;
    const offset = bootOffset + dataStart + (firstCluster - 2) * sectorsPerCluster * bytesPerSector;

    const { buffer: slot } = await handle.read(Buffer.alloc(card.bytes), 0, card.bytes, offset);
    if (!slot.equals(cardContent)) {
      throw new Error(`assemble-disk: ${card.file} is not at byte ${offset} of ${image} (cluster ${firstCluster}); found ${JSON.stringify(slot.subarray(0, 40).toString())}...`);
    }
    return offset;
  } finally {
    await handle.close();
  }
}
