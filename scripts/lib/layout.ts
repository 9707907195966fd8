/**
 * The SD card's partition layout: an MBR with a FAT32 boot partition (what the Pi firmware reads)
 * and an ext4 root. The disk identifier comes from the definition's hash, so a rebuild of the same
 * definition gives the same PARTUUIDs, and cmdline.txt and fstab can name them before the disk exists.
 */
import type { Definition } from './definition.ts';
import { definitionHash } from './definition.ts';

const sector = 512;
/** 4 MiB: aligned for SD cards' erase blocks, and room for the MBR. */
const firstPartitionStart = (4 * 1024 * 1024) / sector;

export interface DiskLayout {
  /** 8 hex digits, as sfdisk's label-id and the PARTUUID prefix. */
  diskId: string;
  bootPartuuid: string;
  rootPartuuid: string;
  bootStart: number;
  bootSectors: number;
  rootStart: number;
  rootSectors: number;
  totalSectors: number;
}

export function diskLayout(def: Definition): DiskLayout {
  // MBR disk identifiers of 0 are treated as "none" by some tools; avoid it.
  let diskId = definitionHash(def).slice(0, 8);
  if (diskId === '00000000') diskId = '00000001';
  const totalSectors = Math.floor(def.disk.size / sector);
  const bootSectors = Math.floor(def.disk.boot_size / sector);
  const rootStart = firstPartitionStart + bootSectors;
  return {
    diskId,
    bootPartuuid: `${diskId}-01`,
    rootPartuuid: `${diskId}-02`,
    bootStart: firstPartitionStart,
    bootSectors,
    rootStart,
    rootSectors: totalSectors - rootStart,
    totalSectors,
  };
}
