#!/usr/bin/env node
// A stock image (Raspberry Pi OS, Ubuntu) as the base of a build: unpacked into the output image,
// then looked into without mounting anything (sfdisk, blkid, debugfs), for the build to tell what
// it is (scripts/lib/stock/detect.ts).
//   stock-image.mjs unpack {input, image}
//     input (.img, .img.xz or .img.zst) becomes image; the input is removed. Decompressed without
//     turning zeros into holes: a hole is a block a flashing tool skips, and a stock image's zeroed
//     blocks (an inode table mke2fs left zeroed) must reach the card as zeros.
//   stock-image.mjs inspect {image, markers: string[], facts (a directory)}
//     Prints one JSON line: {diskId, partitions: [{type, start, sectors, filesystem, label}],
//     files: the markers present in the root file system}, and copies the root's os-release and
//     dpkg status into `facts` (os-release, status) when they exist.
import { mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';
import { ext4At } from './lib/ext4.mjs';

const [command, argument] = process.argv.slice(2);
const input = JSON.parse(argument ?? '{}');
$.verbose = false;

if (command === 'unpack') await unpack(input);
else if (command === 'inspect') await inspect(input);
else {
  console.error(`stock-image: unknown command ${command}; allowed: unpack, inspect`);
  process.exit(2);
}

async function unpack({ input: file, image }) {
  const started = Date.now();
  if (file.endsWith('.img.xz')) await $`xz --decompress --stdout --threads=0 ${file} > ${image}`;
  else if (file.endsWith('.img.zst')) await $`zstd --decompress --quiet --no-sparse -o ${image} ${file}`;
  else await $`cp --sparse=auto ${file} ${image}`;
  await rm(file);
  const { size } = await stat(image);
  console.log(`stock-image: unpacked ${(size / 1024 ** 2).toFixed(0)} MiB in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

async function inspect({ image, markers, facts }) {
  const table = JSON.parse((await $`sfdisk --json ${image}`.nothrow()).stdout || '{}').partitiontable;
  if (!table || table.label !== 'dos') {
    console.log(JSON.stringify({ diskId: undefined, partitions: [], files: [] }));
    return;
  }
  const partitions = [];
  for (const part of table.partitions ?? []) {
    const probe = (await $`blkid --probe --offset ${part.start * 512} --size ${part.size * 512} --output export ${image}`.nothrow()).stdout;
    const value = (name) => new RegExp(`^${name}=(.*)$`, 'm').exec(probe)?.[1];
    const type = value('TYPE');
    partitions.push({
      type: parseInt(part.type, 16),
      start: part.start,
      sectors: part.size,
      filesystem: type === 'vfat' ? 'vfat' : type === 'ext4' ? 'ext4' : 'other',
      ...(value('LABEL') !== undefined && { label: value('LABEL') }),
    });
  }
  const root = partitions.find((part) => part.filesystem === 'ext4');
  const files = [];
  await mkdir(facts, { recursive: true });
  if (root) {
    const fs = ext4At(image, root.start * 512);
    for (const marker of markers) if (await fs.exists(marker)) files.push(marker);
    const osRelease = (await fs.readText('/etc/os-release')) ?? (await fs.readText('/usr/lib/os-release'));
    if (osRelease !== undefined) await writeFile(join(facts, 'os-release'), osRelease);
    await fs.copyOut('/var/lib/dpkg/status', join(facts, 'status'));
  }
  console.log(JSON.stringify({ diskId: table.id?.replace(/^0x/, ''), partitions, files }));
}
