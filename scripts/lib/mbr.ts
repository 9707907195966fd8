/**
 * Reading an SD-card image's MBR: its disk id (which names the partitions, PARTUUID=<id>-0N) and
 * its primary partitions. Used by `pibond boot` to find the boot partition and by the tests to
 * look inside a built image.
 */
import { open } from 'node:fs/promises';

export const sectorBytes = 512;

export interface Partition {
  /** 1-4, as in PARTUUID=<disk id>-0<index>. */
  index: number;
  type: number;
  bootable: boolean;
  startSector: number;
  sectors: number;
}

export interface Mbr {
  /** Eight hex digits, as `blkid` and cmdline.txt write it. */
  diskId: string;
  /** The used slots of the four, in slot order. */
  partitions: Partition[];
}

/** Parses the first sector; undefined when it holds no MBR (no 0x55AA signature). */
export function parseMbr(sector: Buffer): Mbr | undefined {
  if (sector.length < sectorBytes || sector[510] !== 0x55 || sector[511] !== 0xaa) return undefined;
  const partitions: Partition[] = [];
  for (let slot = 0; slot < 4; slot++) {
    const entry = sector.subarray(446 + slot * 16, 446 + (slot + 1) * 16);
    const type = entry[4] ?? 0;
    if (type === 0) continue;
    partitions.push({ index: slot + 1, type, bootable: entry[0] === 0x80, startSector: entry.readUInt32LE(8), sectors: entry.readUInt32LE(12) });
  }
  return { diskId: sector.readUInt32LE(440).toString(16).padStart(8, '0'), partitions };
}

/** The first sector of a file (shorter if the file is). */
export async function readFirstSector(path: string): Promise<Buffer> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(sectorBytes);
    const { bytesRead } = await handle.read(buffer, 0, sectorBytes, 0);
    return buffer.subarray(0, bytesRead);
  } finally {
    await handle.close();
  }
}
