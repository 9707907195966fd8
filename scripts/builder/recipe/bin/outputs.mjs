#!/usr/bin/env node
// The outputs' heavy work, next to the image: the compressed copy, the checksums file, the
// installed packages and the sizes the manifest reports. Prints one JSON line on stdout:
//   {compressSeconds, checksums: {file: sha256}, packages: [{name, version, architecture}],
//    sizes: {rootfsBytes, kernelModulesBytes, bootBytes}}
// Argument: one JSON object {dir, image, compression: zstd|xz|none, checksums (the file to write),
//   root (the image's tree)}.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';

const { dir, image, compression, checksums, root } = JSON.parse(process.argv[2] ?? '{}');
const compressors = {
  zstd: { suffix: '.zst', flags: ['-T0', '-10', '--sparse', '-q', '-f'] },
  xz: { suffix: '.xz', flags: ['-T0', '-6', '-k', '-f'] },
  none: undefined,
};
if (!(compression in compressors)) {
  console.error(`outputs: unknown compression ${compression}; allowed: ${Object.keys(compressors).join(', ')}`);
  process.exit(2);
}
const inDir = $({ cwd: dir, verbose: true });
const data = $({ quiet: true });

const started = Date.now();
const compressor = compressors[compression];
if (compressor) await inDir`${compression} ${compressor.flags} ${image}`;
const compressSeconds = (Date.now() - started) / 1000;

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

console.log(JSON.stringify({ compressSeconds, checksums: checksumsByFile, packages, sizes }));
