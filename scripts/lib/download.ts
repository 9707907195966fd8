/**
 * One HTTP download into a file, hashed on the way: the stock image (stock/source.ts) and the Node
 * runtime (node-runtime.ts) both fetch this way and then compare the digest with a pinned one.
 * What went wrong is told apart, so each caller says it in its own words.
 */
import { createHash } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { errorMessage } from './errors.ts';

export class DownloadFailed extends Error {
  override name = 'DownloadFailed';
  constructor(
    /** unreachable: no answer; status: an answer other than 2xx; broken: the body stopped early. */
    readonly kind: 'unreachable' | 'status' | 'broken',
    /** The error's words, or "404 Not Found", or the bytes received before the break. */
    readonly detail: string,
  ) {
    super(`${kind}: ${detail}`);
  }
}

/** Streams `url` into `to` while hashing it with `algorithm`; returns the digest. */
export async function downloadHashed(url: string | URL, to: string, algorithm: string, fetchImpl: typeof fetch = fetch): Promise<Buffer> {
  let response: Response;
  try {
    response = await fetchImpl(url);
  } catch (err) {
    throw new DownloadFailed('unreachable', errorMessage((err as Error).cause ?? err));
  }
  if (!response.ok || !response.body) {
    await response.body?.cancel();
    throw new DownloadFailed('status', `${response.status} ${response.statusText}`);
  }
  const hash = createHash(algorithm);
  let received = 0;
  const hashing = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      received += chunk.length;
      done(null, chunk);
    },
  });
  try {
    await pipeline(Readable.fromWeb(response.body), hashing, createWriteStream(to));
  } catch (err) {
    throw new DownloadFailed('broken', `after ${received} bytes: ${errorMessage(err)}`);
  }
  return hash.digest();
}
