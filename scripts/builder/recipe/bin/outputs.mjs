#!/usr/bin/env node
// The outputs' heavy work, next to the image: the compressed copy, the checksums file, the block
// map's ranges, the installed packages and the sizes the manifest reports. Prints one JSON line on
// stdout:
//   {compressSeconds, bmapSeconds, checksums: {file: sha256}, packages: [{name, version, architecture}],
//    sizes: {rootfsBytes, kernelModulesBytes, bootBytes}}
// Argument: one JSON object {dir, image, compression: zstd|xz|none, checksums (the file to write),
//   bmapRanges (the file to write: {imageSize, blockSize, ranges: [{first, last, sha256}]}, which
//   the build renders as the .bmap), root (the image's tree)}.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { open, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';

const { dir, image, compression, checksums, bmapRanges, root } = JSON.parse(process.argv[2] ?? '{}');
const blockSize = 4096;
const compressors = {
  zstd: { suffix: '.zst', flags: ['-T0', '-10', '--sparse', '-q', '-f'] },
  xz: { suffix: '.xz', flags: ['-T0', '-6', '-k', '-f'] },
  none: undefined,
};
if (!(compression in compressors)) {
  console.error(`outputs: unknown compression ${compression}; allowed: ${Object.keys(compressors).join(', ')}`);
  process.exit(2);
}
// Prints "start end" for each data extent of the file (whence 3 is SEEK_DATA, 4 SEEK_HOLE).
const seekExtents = `
  open(my $f, "<", $ARGV[0]) or die "$ARGV[0]: $!";
  my $end = -s $f;
  for (my $pos = 0; $pos < $end; ) {
    my $data = sysseek($f, $pos, 3);
    last unless defined $data;
    my $hole = sysseek($f, $data, 4);
    print $data + 0, " ", $hole + 0, "\\n";
    $pos = $hole;
  }`;
const inDir = $({ cwd: dir, verbose: true });
const data = $({ quiet: true });

const started = Date.now();
const compressor = compressors[compression];
if (compressor) await inDir`${compression} ${compressor.flags} ${image}`;
const compressSeconds = (Date.now() - started) / 1000;

const bmapStarted = Date.now();
await writeFile(join(dir, bmapRanges), JSON.stringify(await blockMap(join(dir, image))));
const bmapSeconds = (Date.now() - bmapStarted) / 1000;

const files = compressor ? [image, `${image}${compressor.suffix}`] : [image];
const sums = (await inDir`sha256sum ${files}`.quiet()).stdout;
await writeFile(join(dir, checksums), sums);
const checksumsByFile = Object.fromEntries(
  sums.trim().split('\n').map((line) => line.split(/\s+/)).map(([sum, file]) => [file, sum]),
);

const format = '${Package}\t${Version}\t${Architecture}\n';
const installed = (await data`dpkg-query ${`--admindir=${join(root, 'var/lib/dpkg')}`} -W -f ${format}`).stdout;
const packages = installed.split('\n').filter((line) => line.includes('\t')).map((line) => {
  const [name, version, architecture] = line.split('\t');
  return { name, version, architecture };
});

const bytes = async (...args) => Number((await data`du -sb ${args}`).stdout.split('\t')[0]);
const sizes = {
  rootfsBytes: await bytes('--exclude=./proc', '--exclude=./sys', root),
  kernelModulesBytes: await bytes(join(root, 'usr/lib/modules')),
  bootBytes: await bytes(join(root, 'boot')),
};

console.log(JSON.stringify({ compressSeconds, bmapSeconds, checksums: checksumsByFile, packages, sizes }));

/**
 * The image's mapped blocks: its data extents (the holes are what the disk assembly never wrote),
 * widened to whole blocks and merged, each range with the sha256 of its bytes. Node has no
 * lseek(SEEK_DATA/SEEK_HOLE); Perl's sysseek has (whence 3 and 4).
 */
async function blockMap(file) {
  const extents = (await data`perl -e ${seekExtents} ${file}`).stdout.trim().split('\n').filter(Boolean).map((line) => line.split(' ').map(Number));
  const imageSize = (await stat(file)).size;
  const ranges = [];
  for (const [start, end] of extents) {
    const first = Math.floor(start / blockSize);
    const last = Math.ceil(end / blockSize) - 1;
    const previous = ranges.at(-1);
    if (previous && first <= previous.last + 1) previous.last = Math.max(previous.last, last);
    else ranges.push({ first, last });
  }
  const handle = await open(file, 'r');
  try {
    const buffer = Buffer.alloc(8 * 1024 * 1024);
    for (const range of ranges) {
      const hash = createHash('sha256');
      const end = Math.min((range.last + 1) * blockSize, imageSize);
      for (let position = range.first * blockSize; position < end; ) {
        const { bytesRead } = await handle.read(buffer, 0, Math.min(buffer.length, end - position), position);
        if (bytesRead === 0) throw new Error(`outputs: ${file} ended at ${position}, inside its data extents`);
        hash.update(buffer.subarray(0, bytesRead));
        position += bytesRead;
      }
      range.sha256 = hash.digest('hex');
    }
  } finally {
    await handle.close();
  }
  return { imageSize, blockSize, ranges };
}
