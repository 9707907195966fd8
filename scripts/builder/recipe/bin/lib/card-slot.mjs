// The card-settings slot: pibond-card.yaml on the boot partition, a fixed-size file in contiguous
// clusters that `pibond flash` overwrites in place on the card, so it must never move. Made by the
// disk step (assemble-disk.mjs) and by the lay step on a stock image (lay-stock.mjs).
import { Buffer } from 'node:buffer';
import { open } from 'node:fs/promises';
import { $ } from 'zx';

const sector = 512;

export const card = {
  file: 'pibond-card.yaml',
  bytes: 65536,
  line: '# pibond card settings: none (pibond flash --hostname/--address/--ssh-key writes them here)\n',
};

/** The slot's bytes: the placeholder line, then newlines. */
export function cardContent() {
  const content = Buffer.alloc(card.bytes, '\n');
  content.write(card.line);
  return content;
}

/**
 * The card slot's byte offset in the image, from its clusters (mshowfat) and the FAT boot sector's
 * geometry; checked by reading the slot back there. Fails if the slot is not one run of clusters.
 */
export async function cardOffset(image, bootOffset) {
  const clusters = (await $`mshowfat -i ${`${image}@@${bootOffset}`} ${`::/${card.file}`}`.quiet()).stdout.trim();
  const runs = [...clusters.matchAll(/<(\d+)(?:-(\d+))?>/g)];
  if (runs.length !== 1) throw new Error(`card-slot: ${card.file} is not in contiguous clusters (mshowfat: ${clusters})`);
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
    if (!slot.equals(cardContent())) {
      throw new Error(`card-slot: ${card.file} is not at byte ${offset} of ${image} (cluster ${firstCluster}); found ${JSON.stringify(slot.subarray(0, 40).toString())}...`);
    }
    return offset;
  } finally {
    await handle.close();
  }
}
