/**
 * What `pibond boot` needs to know about an image before it starts anything: that it is a pibond
 * image (its manifest next to it, an MBR with a FAT32 boot partition and a Linux root partition,
 * the disk id the manifest names), where the boot partition starts, and the bond and ports the
 * image was built with. All of it is read in Node, from the file itself: no container, no mount.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { UserError } from '../lib/errors.ts';
import { type Partition, parseMbr, readFirstSector, sectorBytes } from '../lib/mbr.ts';

export type { Partition };

/** The parts of out/<name>.manifest.json the boot uses; the rest of it may change freely. */
const manifestSchema = z.object({
  name: z.string().min(1),
  diskId: z.string().regex(/^[0-9a-f]{8}$/),
  /** The card-settings slot; absent from images built before it existed. */
  card: z.object({ file: z.string(), offset: z.number().int().nonnegative(), bytes: z.number().int().positive() }).optional(),
  /** Laid onto a stock image: whether its kernel boots QEMU's virt machine (Raspberry Pi kernels do not). */
  stock: z.object({ name: z.string(), kernels: z.array(z.string()), kernelBootsVirt: z.boolean() }).optional(),
  definition: z.object({
    value: z.object({
      mirror: z.string().min(1),
      admin: z.object({ name: z.string().min(1) }).default({ name: 'pi' }),
      bond: z.object({
        name: z.string().min(1),
        slaves: z.array(z.object({ name: z.string().min(1), mac: z.string().optional() })).min(2),
        primary: z.string().min(1),
        miimon: z.number(),
      }),
      status_service: z.object({ port: z.number().int().min(1).max(65535) }),
    }),
  }),
});

export type Manifest = z.output<typeof manifestSchema>;

export interface BootImage {
  /** Absolute path of the .img file. */
  path: string;
  name: string;
  manifestPath: string;
  manifest: Manifest;
  /** Byte offset of the FAT boot partition, for mtools' `-i image@@offset`. */
  bootPartitionOffset: number;
}

/** The manifest the build writes next to an image: out/x.img -> out/x.manifest.json. */
export function manifestPathFor(imagePath: string): string {
  return join(dirname(imagePath), `${basename(imagePath).replace(/\.img$/, '')}.manifest.json`);
}

/** Checks that `file` is a pibond image and reads what booting it needs. */
export async function inspectImage(file: string): Promise<BootImage> {
  const path = resolve(file);
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new UserError(`no image at ${file}; build one with \`pibond build images/default.yaml\``);
  if (!info.isFile()) throw new UserError(`${file} is not a file; give the path of an image such as out/pibond-bookworm-arm64.img`);
  if (/\.(zst|xz)$/.test(path)) {
    throw new UserError(`${file} is compressed; boot the uncompressed image next to it (${basename(path).replace(/\.(zst|xz)$/, '')})`);
  }

  const mbr = parseMbr(await readFirstSector(path));
  if (!mbr) throw notPibond(file, 'it has no MBR partition table');
  const { partitions, diskId } = mbr;
  const [boot, root] = partitions;
  if (!boot || !isFat(boot.type) || !root || root.type !== 0x83) {
    throw notPibond(file, 'it does not have a FAT32 boot partition followed by a Linux root partition');
  }
  if ((boot.startSector + boot.sectors) * sectorBytes > info.size) throw notPibond(file, 'its boot partition lies beyond the end of the file');

  const manifestPath = manifestPathFor(path);
  const manifest = await readManifest(manifestPath, file);
  if (diskId !== manifest.diskId) {
    throw notPibond(file, `its disk id is ${diskId}, but ${basename(manifestPath)} describes disk ${manifest.diskId} (an image and a manifest of different builds?)`);
  }
  return { path, name: manifest.name, manifestPath, manifest, bootPartitionOffset: boot.startSector * sectorBytes };
}

/** The four primary partitions of an MBR (empty slots left out). */
export function readPartitionTable(sector: Buffer, file = 'the image'): Partition[] {
  const mbr = parseMbr(sector);
  if (!mbr) throw notPibond(file, 'it has no MBR partition table');
  return mbr.partitions;
}

/** What the Pi firmware's config.txt names: the kernel and the initramfs. */
export function bootFilesFrom(configTxt: string): { kernel: string; initrd: string } {
  let kernel: string | undefined;
  let initrd: string | undefined;
  for (const raw of configTxt.split('\n')) {
    const line = raw.replace(/#.*/, '').trim();
    const kernelMatch = /^kernel\s*=\s*(\S+)$/.exec(line);
    if (kernelMatch) kernel = kernelMatch[1];
    const initrdMatch = /^initramfs\s+(\S+)/.exec(line);
    if (initrdMatch) initrd = initrdMatch[1];
  }
  if (!kernel) throw new UserError('the boot partition\'s config.txt names no kernel (no "kernel=" line)');
  if (!initrd) throw new UserError('the boot partition\'s config.txt names no initramfs (no "initramfs FILE followkernel" line)');
  for (const name of [kernel, initrd]) {
    // The names become paths in a temporary directory: nothing but a plain file name will do.
    if (!/^[A-Za-z0-9._+-]+$/.test(name)) throw new UserError(`config.txt names the boot file "${name}", which is not a plain file name`);
  }
  return { kernel, initrd };
}

export function notPibond(file: string, why: string): UserError {
  return new UserError(`${file} is not a pibond image: ${why}`);
}

async function readManifest(manifestPath: string, file: string): Promise<Manifest> {
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch {
    throw notPibond(file, `its manifest ${basename(manifestPath)} is not next to it (pibond build writes both into out/)`);
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    throw notPibond(file, `its manifest ${basename(manifestPath)} is not JSON`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const where = parsed.error.issues.map((issue) => issue.path.join('.') || '(top)').join(', ');
    throw notPibond(file, `its manifest ${basename(manifestPath)} lacks what a boot needs (${where})`);
  }
  return parsed.data;
}

function isFat(type: number): boolean {
  // 0x0b/0x0c: FAT32 (CHS/LBA); 0x0e: FAT16 LBA, which some tools write for small partitions.
  return type === 0x0b || type === 0x0c || type === 0x0e;
}
