#!/usr/bin/env node
// Sends one file on standard output with its holes left out, for a build on a Docker engine that
// does not share the host's file system (scripts/lib/fetch-file.ts reads it):
//   for each data extent: offset (8 bytes), length (8 bytes, both unsigned big-endian), the bytes;
//   then offset = the file's size, length = 0: the end.
// A 2 GiB image with 0.7 GiB of data sends 0.7 GiB. Argument: the file's path.
import { Buffer } from 'node:buffer';
import { open } from 'node:fs/promises';
import { dataExtents } from './lib/extents.mjs';

const file = process.argv[2];
if (!file) {
  console.error('usage: send-file.mjs FILE');
  process.exit(2);
}
const chunkBytes = 4 * 1024 * 1024;
const handle = await open(file, 'r');
try {
  const { size } = await handle.stat();
  for (const [start, end] of await dataExtents(file)) {
    const stop = Math.min(end, size);
    if (stop <= start) continue;
    await write(header(start, stop - start));
    for (let at = start; at < stop; ) {
      const buffer = Buffer.allocUnsafe(Math.min(chunkBytes, stop - at));
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, at);
      if (bytesRead === 0) throw new Error(`send-file: ${file} ended at ${at}, inside a data extent that ends at ${stop}`);
      await write(buffer.subarray(0, bytesRead));
      at += bytesRead;
    }
  }
  await write(header(size, 0));
} finally {
  await handle.close();
}

function header(offset, length) {
  const bytes = Buffer.alloc(16);
  bytes.writeBigUInt64BE(BigInt(offset), 0);
  bytes.writeBigUInt64BE(BigInt(length), 8);
  return bytes;
}

/** Writes to stdout, waiting while it is full (the engine reads it at the network's pace). */
function write(bytes) {
  return new Promise((resolve, reject) => {
    process.stdout.write(bytes, (err) => (err ? reject(err) : resolve()));
  });
}
