#!/usr/bin/env node
// Assembles the SD-card image from a root filesystem tree, without loop devices or mounts: the boot
// partition is a FAT32 file filled with mtools, the root an ext4 file filled with mke2fs -d, and
// both are copied into a plain file partitioned with sfdisk.
// Argument: one JSON object {root, image, diskId, bootStart, bootSectors, rootStart, rootSectors,
//   totalSectors, cmdline (the kernel command line for cmdline.txt), sourceDateEpoch}.
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, readdir, rename, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';

const input = JSON.parse(process.argv[2] ?? '{}');
const { root, image, diskId, sourceDateEpoch } = input;
const firmware = join(root, 'boot/firmware');
$.verbose = true;

const work = await mkdtemp('/work/disk.');
try {
  // The Pi firmware's files leave the root tree for the FAT partition; /boot/firmware stays as the
  // empty mount point.
  await writeFile(join(firmware, 'cmdline.txt'), `${input.cmdline}\n`);
  const boot = join(work, 'boot');
  await mkdir(boot);
  await moveAll(firmware, boot);

  // Every timestamp is clamped to SOURCE_DATE_EPOCH, so the same tree gives the same bytes.
  const epoch = `@${sourceDateEpoch}`;
  await $`find ${[root, boot]} -newermt ${epoch} -exec touch --no-dereference ${`--date=${epoch}`} {} +`;

  // FAT32 with a fixed volume id (the disk id) so that rebuilds agree.
  const bootImg = join(work, 'boot.img');
  await $`mkfs.vfat -F 32 -n BOOTFS -i ${diskId} -C ${bootImg} ${Math.floor(input.bootSectors / 2)}`.quiet();
  const bootFiles = (await readdir(boot)).sort().map((name) => join(boot, name));
  await $`mcopy -s -m -i ${bootImg} ${bootFiles} ::/`;

  // ext4 from the tree; the UUID and hash seed come from the disk id for reproducibility.
  const uuid = `${diskId}-0000-4000-8000-${createHash('sha256').update(diskId).digest('hex').slice(0, 12)}`;
  const rootImg = join(work, 'root.img');
  await $({ env: { ...process.env, E2FSPROGS_FAKE_TIME: String(sourceDateEpoch) } })`mke2fs -q -t ext4 -L rootfs -U ${uuid} -E ${`root_owner=0:0,hash_seed=${uuid}`} -d ${root} ${rootImg} ${`${Math.floor(input.rootSectors / 2)}k`}`;

  // Partition a sparse file and copy both file systems in at their offsets.
  await rm(image, { force: true });
  await $`truncate -s ${input.totalSectors * 512} ${image}`;
  const table = [
    'label: dos',
    `label-id: 0x${diskId}`,
    'unit: sectors',
    '',
    `start=${input.bootStart}, size=${input.bootSectors}, type=c, bootable`,
    `start=${input.rootStart}, size=${input.rootSectors}, type=83`,
    '',
  ].join('\n');
  await $({ input: table })`sfdisk --quiet ${image}`;
  for (const [file, start] of [[bootImg, input.bootStart], [rootImg, input.rootStart]]) {
    await $`dd ${[`if=${file}`, `of=${image}`, 'bs=1M', `seek=${start * 512}`, 'oflag=seek_bytes', 'conv=notrunc,sparse', 'status=none']}`;
  }

  // Put the firmware files back, so later steps (and a re-run) see the whole tree.
  await moveAll(boot, firmware);
  await $`sfdisk --dump ${image}`;
} finally {
  await rm(work, { recursive: true, force: true });
}

async function moveAll(from, to) {
  for (const name of await readdir(from)) await rename(join(from, name), join(to, name));
}
