// The worker thread of outputs.mjs's read pass that hashes the whole image: every chunk in image
// order, data and holes alike (a hole as its length of zeros), so that this one sequential sha256,
// the longest job of the pass, has a core of its own while the main thread reads.
// Messages in: {buffer (a chunk's SharedArrayBuffer, only read)}, {zeros: length} or {digest: true}.
// Message out, one per message in: {} or, for digest, {sha256}.
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { parentPort } from 'node:worker_threads';

const hash = createHash('sha256');
let zeros = Buffer.alloc(0);
parentPort.on('message', ({ buffer, zeros: length, digest }) => {
  if (digest) {
    parentPort.postMessage({ sha256: hash.digest('hex') });
    return;
  }
  if (buffer) {
    hash.update(Buffer.from(buffer));
  } else {
    if (zeros.length < length) zeros = Buffer.alloc(length);
    hash.update(zeros.subarray(0, length));
  }
  parentPort.postMessage({});
});
