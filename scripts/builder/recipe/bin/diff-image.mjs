#!/usr/bin/env node
// Compares two disk images for `pibond diff`, without loop devices or mounts (the container is
// unprivileged): both images are read side by side once, and the file trees of the partitions whose
// bytes differ are extracted with debugfs (ext4) and mtools (FAT) and listed.
// Argument: one JSON object {a, b (the images, read-only), scratch (room for decompressed images and
//   extracted trees)}. A .zst or .xz image is decompressed into scratch first, kept sparse.
// Prints one line per file-tree entry of a differing partition:
//   {"entry": {side, partition, path, type, mode, uid, gid, size, sha256?, target?}}
// and one JSON line last: {images: {a, b: {file, bytes, sha256, partitions, table}}, firstDifference,
//   differingPartitions}. `partitions` is null for a file with no MBR partition table.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, open, readdir, readlink, rm } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { $ } from 'zx';

const input = JSON.parse(process.argv[2] ?? '{}');
const chunkBytes = 4 * 1024 * 1024;
const sector = 512;
$.verbose = false;

const [a, b] = await Promise.all([decompressed(input.a, 'a'), decompressed(input.b, 'b')]);
const [tableA, tableB] = await Promise.all([partitionTable(a), partitionTable(b)]);
const bytes = await compareBytes(a, b);
const differing = differingPartitions([tableA.partitions, tableB.partitions], bytes.differingRanges);

for (const index of differing) {
  const pair = [tableA.partitions?.find((p) => p.index === index), tableB.partitions?.find((p) => p.index === index)];
  // A partition on one side only, or of different file systems, has no trees to set side by side.
  if (!pair[0] || !pair[1] || !pair[0].fileSystem || pair[0].fileSystem !== pair[1].fileSystem) continue;
  await Promise.all([listTree('a', a, pair[0]), listTree('b', b, pair[1])]);
}

console.log(
  JSON.stringify({
    images: {
      a: { file: input.a, bytes: bytes.sizes[0], sha256: bytes.sha256[0], ...tableA },
      b: { file: input.b, bytes: bytes.sizes[1], sha256: bytes.sha256[1], ...tableB },
    },
    firstDifference: bytes.firstDifference,
    differingPartitions: differing,
  }),
);

/** The image as a plain file: compressed ones are decompressed into scratch, their holes kept. */
async function decompressed(file, side) {
  const out = join(input.scratch, `${side}.img`);
  if (file.endsWith('.zst')) {
    await $`zstd -d -q --sparse -o ${out} ${file}`;
    return out;
  }
  if (file.endsWith('.xz')) {
    await $`xz -dc ${file} | cp --sparse=always /dev/stdin ${out}`;
    return out;
  }
  return file;
}

/** sfdisk's dump (for showing) and the partitions with the file system each holds (by its magic). */
async function partitionTable(image) {
  const dump = await $`sfdisk --dump ${image}`.nothrow();
  const json = await $`sfdisk --json ${image}`.nothrow();
  if (dump.exitCode !== 0 || json.exitCode !== 0) return { partitions: null, table: dump.stderr.trim() };
  const handle = await open(image, 'r');
  try {
    const partitions = [];
    for (const [i, p] of (JSON.parse(json.stdout).partitiontable.partitions ?? []).entries()) {
      const offset = p.start * sector;
      partitions.push({ index: i + 1, type: p.type, start: offset, bytes: p.size * sector, fileSystem: await fileSystemAt(handle, offset) });
    }
    // The device line names the path inside the container, which differs between the two sides.
    const table = dump.stdout.replace(/^device: .*\n/m, '').replaceAll(image, 'IMAGE');
    return { partitions, table };
  } finally {
    await handle.close();
  }
}

async function fileSystemAt(handle, offset) {
  const { buffer } = await handle.read(Buffer.alloc(2048), 0, 2048, offset);
  if (buffer.readUInt16LE(1080) === 0xef53) return 'ext4';
  if (buffer.toString('latin1', 82, 87) === 'FAT32' || buffer.toString('latin1', 54, 59).startsWith('FAT')) return 'vfat';
  return undefined;
}

/**
 * One pass over both images: their sha256, the first differing byte, and each differing 4 MiB
 * chunk's span from its first to its last differing byte (which partitions to look into).
 */
async function compareBytes(fileA, fileB) {
  const handles = await Promise.all([open(fileA, 'r'), open(fileB, 'r')]);
  try {
    const sizes = await Promise.all(handles.map(async (h) => (await h.stat()).size));
    const hashes = [createHash('sha256'), createHash('sha256')];
    const common = Math.min(...sizes);
    const differingRanges = [];
    let firstDifference;
    for (let position = 0; position < Math.max(...sizes); position += chunkBytes) {
      const chunks = await Promise.all(handles.map(async (h, i) => {
        const length = Math.max(0, Math.min(chunkBytes, sizes[i] - position));
        const { buffer } = await h.read(Buffer.alloc(length), 0, length, position);
        return buffer;
      }));
      chunks.forEach((chunk, i) => hashes[i].update(chunk));
      if (chunks[0].equals(chunks[1])) continue;
      const span = differingSpan(chunks[0], chunks[1]);
      differingRanges.push([position + span[0], position + span[1]]);
      firstDifference ??= position + span[0];
    }
    if (firstDifference === undefined && sizes[0] !== sizes[1]) firstDifference = common;
    return { sizes, sha256: hashes.map((h) => h.digest('hex')), firstDifference, differingRanges };
  } finally {
    await Promise.all(handles.map((h) => h.close()));
  }
}

/** The first and last differing byte of two buffers (the shorter one counts as ending early). */
function differingSpan(x, y) {
  const length = Math.min(x.length, y.length);
  let first = 0;
  while (first < length && x[first] === y[first]) first++;
  let last = Math.max(x.length, y.length) - 1;
  if (x.length === y.length) while (last > first && x[last] === y[last]) last--;
  return [first, last];
}

/** The indexes of the partitions (of either table) that overlap a differing span. */
function differingPartitions(tables, ranges) {
  const indexes = new Set();
  for (const partitions of tables) {
    for (const p of partitions ?? []) {
      if (ranges.some(([from, to]) => from < p.start + p.bytes && to >= p.start)) indexes.add(p.index);
    }
  }
  return [...indexes].sort((x, y) => x - y);
}

/** Extracts one partition's tree into scratch and prints an entry line for each file in it. */
async function listTree(side, image, partition) {
  const dir = join(input.scratch, `${side}-${partition.index}`);
  await mkdir(dir);
  if (partition.fileSystem === 'ext4') {
    // rdump keeps modes and owners (it runs as root here); device nodes, fifos and sockets it skips.
    const dumped = await $`debugfs -R ${`rdump / ${dir}`} ${`${image}?offset=${partition.start}`}`.nothrow();
    if (dumped.exitCode !== 0) throw new Error(`diff-image: debugfs could not read partition ${partition.index} of ${basename(image)}: ${dumped.stderr.trim()}`);
  } else {
    await $`mcopy -s -n -m -i ${`${image}@@${partition.start}`} ::/ ${`${dir}/`}`;
  }
  // FAT has no modes or owners: mcopy makes them up, so they are not compared.
  const owned = partition.fileSystem === 'ext4';
  for await (const entry of walk(dir, '')) {
    const info = await lstat(join(dir, entry));
    const line = { side, partition: partition.index, path: `/${entry}`, type: typeOf(info) };
    if (owned) Object.assign(line, { mode: info.mode & 0o7777, uid: info.uid, gid: info.gid });
    if (info.isFile()) Object.assign(line, { size: info.size, sha256: await sha256Of(join(dir, entry)) });
    if (info.isSymbolicLink()) line.target = await readlink(join(dir, entry));
    console.log(JSON.stringify({ entry: line }));
  }
  // Removed now, while the work is timed, rather than with the container, whose removal is bounded.
  await rm(dir, { recursive: true, force: true });
}

async function* walk(root, relative) {
  const entries = (await readdir(join(root, relative), { withFileTypes: true })).sort((x, y) => (x.name < y.name ? -1 : 1));
  for (const entry of entries) {
    const path = relative ? `${relative}/${entry.name}` : entry.name;
    yield path;
    if (entry.isDirectory()) yield* walk(root, path);
  }
}

function typeOf(info) {
  if (info.isFile()) return 'file';
  if (info.isDirectory()) return 'directory';
  if (info.isSymbolicLink()) return 'symlink';
  return 'other';
}

function sha256Of(file) {
  return new Promise((resolve, reject) => {
    const hash = createHash('sha256');
    createReadStream(file)
      .on('data', (chunk) => hash.update(chunk))
      .on('end', () => resolve(hash.digest('hex')))
      .on('error', reject);
  });
}
