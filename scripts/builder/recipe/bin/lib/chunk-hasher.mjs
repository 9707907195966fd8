// The worker thread of outputs.mjs's read pass that hashes each chunk holding data it is handed (in
// image order): the block map's range hashes and the chunk's own sha256 (its frame's cache key).
// Another worker (file-hasher.mjs) meanwhile hashes the whole file, and the main thread reads.
// Message in: {start, buffer (the chunk's SharedArrayBuffer, only read), segments: [{from, to,
//   range, last}]} (the image's byte spans inside the chunk that belong to block map range `range`;
//   `last` when the span ends that range). Message out: {start, key, digests: [[range, sha256]]}
//   for every range that ended in the chunk.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

let rangeHash;
parentPort.on('message', ({ start, buffer, segments }) => {
  const chunk = Buffer.from(buffer);
  const digests = [];
  for (const { from, to, range, last } of segments) {
    rangeHash ??= createHash('sha256');
    rangeHash.update(chunk.subarray(from - start, to - start));
    if (last) {
      digests.push([range, rangeHash.digest('hex')]);
      rangeHash = undefined;
    }
  }
  const key = createHash('sha256').update(chunk).digest('hex');
  parentPort.postMessage({ start, key, digests });
});
