/**
 * The block map beside every image (out/<name>.img.bmap): which 4 KiB blocks of the raw image hold
 * data, with a sha256 per range, in the bmap 2.0 format of bmap-tools, so `bmaptool copy` and
 * `pibond flash` write only those blocks and can check what they wrote. A block outside every
 * range was never written by the build (a hole in the sparse image): a flashing tool may skip it.
 * Pure functions but one: the build measures the ranges and their checksums, these render and
 * parse; usedBlocks reads an image's file systems for what a block map is measured against.
 */
import { createHash } from 'node:crypto';
import { type FileHandle, open } from 'node:fs/promises';
import { UserError } from './errors.ts';
import { parseMbr, sectorBytes } from './mbr.ts';

/** Blocks first..last (inclusive, 0-based, in blockSize units) and the sha256 of their bytes. */
export interface BmapRange {
  first: number;
  last: number;
  sha256: string;
}

export interface Bmap {
  /** The raw image's size in bytes (the last block may be partial). */
  imageSize: number;
  blockSize: number;
  /** Sorted, disjoint. */
  ranges: BmapRange[];
}

export const bmapBlockSize = 4096;
const zeroChecksum = '0'.repeat(64);

export function blocksCount(bmap: Pick<Bmap, 'imageSize' | 'blockSize'>): number {
  return Math.ceil(bmap.imageSize / bmap.blockSize);
}

export function mappedBlocksCount(bmap: Pick<Bmap, 'ranges'>): number {
  return bmap.ranges.reduce((sum, range) => sum + range.last - range.first + 1, 0);
}

/** The bytes a flashing tool writes: every mapped block, the last one possibly partial. */
export function mappedBytes(bmap: Bmap): number {
  return bmap.ranges.reduce((sum, range) => sum + Math.min((range.last + 1) * bmap.blockSize, bmap.imageSize) - range.first * bmap.blockSize, 0);
}

/** The bmap file's text, as bmaptool writes it: the same input gives the same bytes. */
export function renderBmap(bmap: Bmap): string {
  checkRanges(bmap, (message) => new Error(`renderBmap: ${message}`));
  const blocks = blocksCount(bmap);
  const mapped = mappedBlocksCount(bmap);
  const percent = blocks === 0 ? 0 : (100 * mapped) / blocks;
  const lines = [
    '<?xml version="1.0" ?>',
    '<!-- The block map of a pibond image: the blocks that hold data, which are the only ones a',
    '     flashing tool has to write (bmaptool copy, pibond flash). Each range carries the sha256 of',
    '     its bytes. BmapFileChecksum is the sha256 of this file with that value set to 64 zeros. -->',
    '',
    '<bmap version="2.0">',
    `    <!-- Image size in bytes: ${mib(bmap.imageSize)} -->`,
    `    <ImageSize> ${bmap.imageSize} </ImageSize>`,
    '',
    '    <!-- Size of a block in bytes -->',
    `    <BlockSize> ${bmap.blockSize} </BlockSize>`,
    '',
    '    <!-- Count of blocks in the image file -->',
    `    <BlocksCount> ${blocks} </BlocksCount>`,
    '',
    `    <!-- Count of mapped blocks: ${mib(mapped * bmap.blockSize)} or ${percent.toFixed(1)}% -->`,
    `    <MappedBlocksCount> ${mapped} </MappedBlocksCount>`,
    '',
    '    <!-- Type of checksum used in this file -->',
    '    <ChecksumType> sha256 </ChecksumType>',
    '',
    '    <!-- The checksum of this bmap file, computed with this value set to all zeros -->',
    `    <BmapFileChecksum> ${zeroChecksum} </BmapFileChecksum>`,
    '',
    '    <!-- The mapped blocks: ranges first-last (or one block), each with the sha256 of its bytes -->',
    '    <BlockMap>',
    ...bmap.ranges.map((range) => `        <Range chksum="${range.sha256}"> ${range.first === range.last ? range.first : `${range.first}-${range.last}`} </Range>`),
    '    </BlockMap>',
    '</bmap>',
    '',
  ];
  const zeroed = lines.join('\n');
  return zeroed.replace(zeroChecksum, sha256(zeroed));
}

/**
 * A bmap 2.x file (ours or bmaptool's) read back, with its own checksum verified. Anything else is
 * a UserError naming the file and the field.
 */
export function parseBmap(text: string, file: string): Bmap {
  const fail = (message: string) => new UserError(`${file} is not a usable bmap file: ${message}`);
  const body = text.replace(/<!--[\s\S]*?-->/g, '');
  const version = /<bmap\s+version\s*=\s*"([^"]*)"\s*>/.exec(body)?.[1];
  if (version === undefined) throw fail('no <bmap version="..."> element');
  if (!/^2\.\d+$/.test(version)) throw fail(`version "${version}" is not supported (only 2.x)`);

  const field = (name: string): string => {
    const matches = [...body.matchAll(new RegExp(`<${name}>([^<]*)</${name}>`, 'g'))];
    if (matches.length !== 1) throw fail(matches.length === 0 ? `no <${name}>` : `more than one <${name}>`);
    return matches[0]![1]!.trim();
  };
  const count = (name: string): number => {
    const value = field(name);
    if (!/^\d+$/.test(value)) throw fail(`<${name}> is "${value}", not a whole number`);
    return Number(value);
  };

  const imageSize = count('ImageSize');
  const blockSize = count('BlockSize');
  if (blockSize === 0) throw fail('<BlockSize> is 0');
  const checksumType = field('ChecksumType');
  if (checksumType !== 'sha256') throw fail(`<ChecksumType> is "${checksumType}"; only sha256 is supported`);

  const fileChecksum = field('BmapFileChecksum');
  if (!/^[0-9a-f]{64}$/.test(fileChecksum)) throw fail(`<BmapFileChecksum> "${fileChecksum}" is not a sha256`);
  // As bmaptool checks it: the value's first occurrence in the file replaced by zeros.
  const actual = sha256(text.replace(fileChecksum, zeroChecksum));
  if (actual !== fileChecksum) throw fail(`<BmapFileChecksum> is ${fileChecksum} but the file's checksum is ${actual} (the file was changed or damaged)`);

  const blockMap = /<BlockMap>([\s\S]*?)<\/BlockMap>/.exec(body)?.[1];
  if (blockMap === undefined) throw fail('no <BlockMap>');
  const ranges: BmapRange[] = [];
  for (const element of blockMap.matchAll(/<Range\b([^>]*)>([^<]*)<\/Range>/g)) {
    const [whole, attributes = '', span = ''] = element;
    const numbers = /^\s*(\d+)\s*(?:-\s*(\d+)\s*)?$/.exec(span);
    if (!numbers) throw fail(`<Range> "${span.trim()}" is not "first-last" or one block number`);
    const first = Number(numbers[1]);
    const last = numbers[2] === undefined ? first : Number(numbers[2]);
    const checksum = /\bchksum\s*=\s*"([^"]*)"/.exec(attributes)?.[1];
    if (checksum === undefined) throw fail(`${whole.trim()} has no chksum attribute`);
    if (!/^[0-9a-f]{64}$/.test(checksum)) throw fail(`<Range> ${span.trim()} has chksum "${checksum}", not a sha256`);
    ranges.push({ first, last, sha256: checksum });
  }
  if (blockMap.replace(/<Range\b[^>]*>[^<]*<\/Range>/g, '').trim() !== '') throw fail('<BlockMap> holds something other than <Range> elements');

  const bmap = { imageSize, blockSize, ranges };
  checkRanges(bmap, fail);
  const blocks = count('BlocksCount');
  if (blocks !== blocksCount(bmap)) throw fail(`<BlocksCount> is ${blocks} but <ImageSize> ${imageSize} makes ${blocksCount(bmap)} blocks of ${blockSize}`);
  const mapped = count('MappedBlocksCount');
  if (mapped !== mappedBlocksCount(bmap)) throw fail(`<MappedBlocksCount> is ${mapped} but the ranges cover ${mappedBlocksCount(bmap)} blocks`);
  return bmap;
}

/** Ranges sorted, disjoint, inside the image. */
function checkRanges(bmap: Bmap, fail: (message: string) => Error): void {
  const blocks = blocksCount(bmap);
  let next = 0;
  for (const range of bmap.ranges) {
    const span = `${range.first}-${range.last}`;
    if (!Number.isSafeInteger(range.first) || !Number.isSafeInteger(range.last) || range.first < 0) throw fail(`range ${span} is not a pair of block numbers`);
    if (range.last < range.first) throw fail(`range ${span} ends before it starts`);
    if (range.first < next) throw fail(`range ${span} overlaps or precedes the one before it`);
    if (range.last >= blocks) throw fail(`range ${span} goes past the image's last block (${blocks - 1})`);
    if (!/^[0-9a-f]{64}$/.test(range.sha256)) throw fail(`range ${span} has checksum "${range.sha256}", not a sha256`);
    next = range.last + 1;
  }
}

/**
 * The image's blocks (of `blockSize`) that its file systems use: the FAT's reserved sectors, both
 * FATs and every allocated cluster; ext4's allocated blocks (metadata and journal included), from
 * its superblock. A block map should map no more than this, and a flash write about this much.
 */
export async function usedBlocks(image: string, blockSize = bmapBlockSize): Promise<number> {
  const handle = await open(image, 'r');
  try {
    const mbr = parseMbr(await readAt(handle, 0, sectorBytes));
    const [boot, root] = mbr?.partitions ?? [];
    if (!boot || !root) throw new Error(`${image} has no boot and root partition`);
    const bootStart = boot.startSector * sectorBytes;
    const fat = await readAt(handle, bootStart, sectorBytes);
    const bytesPerSector = fat.readUInt16LE(11);
    const reservedBytes = fat.readUInt16LE(14) * bytesPerSector;
    const fatBytes = fat.readUInt32LE(36) * bytesPerSector;
    const table = await readAt(handle, bootStart + reservedBytes, fatBytes);
    let clusters = 0;
    // Entries 0 and 1 are the media byte and flags, not clusters.
    for (let entry = 8; entry + 4 <= table.length; entry += 4) if ((table.readUInt32LE(entry) & 0x0fffffff) !== 0) clusters++;
    const bootBytes = reservedBytes + fat.readUInt8(16) * fatBytes + clusters * fat.readUInt8(13) * bytesPerSector;

    const superblock = await readAt(handle, root.startSector * sectorBytes + 1024, 1024);
    const rootBytes = (superblock.readUInt32LE(4) - superblock.readUInt32LE(12)) * (1024 << superblock.readUInt32LE(24));
    return Math.ceil(bootBytes / blockSize) + Math.ceil(rootBytes / blockSize);
  } finally {
    await handle.close();
  }
}

async function readAt(handle: FileHandle, position: number, bytes: number): Promise<Buffer> {
  const { buffer, bytesRead } = await handle.read(Buffer.alloc(bytes), 0, bytes, position);
  return buffer.subarray(0, bytesRead);
}

function sha256(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}
