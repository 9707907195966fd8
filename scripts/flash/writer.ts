/**
 * Writing an image onto a card and reading it back.
 *
 * The image streams past once. Only the bmap's mapped ranges (and the per-card settings' slot) are
 * written; the bytes in between are decompressed and dropped, never written, so a card's old
 * contents stay there (the image's file systems do not look at them). Writes are 4 MiB, aligned to
 * 4 MiB on the card, with an fdatasync every 32 MiB so that "written" means on the card, not in
 * the page cache, and the progress bar tells the truth.
 *
 * Two checksums, for two questions:
 *  - is the image sound? Each range's bytes as they come out of the decoder are hashed against
 *    the bmap's sha256: a mismatch is a damaged download (or a bmap of another build);
 *  - does the card hold what was written? Every 64 KiB written (after the card's settings were put
 *    in) is hashed; after a flush, the same bytes are read back from the card and hashed again. A
 *    mismatch names the offset of the 64 KiB that differ.
 */
import { createHash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Bmap } from '../lib/bmap.ts';
import { UserError } from '../lib/errors.ts';

/** Bytes to put in place of the image's own while writing: the card's settings slot. */
export interface Patch {
  offset: number;
  data: Buffer;
}

/** A stretch of the image to write; `sha256` (from the bmap) checks the image's own bytes there. */
export interface Segment {
  start: number;
  end: number;
  sha256?: string;
  /** How the bmap names it, for messages: "blocks 0-255". */
  label: string;
}

export type Phase = 'write' | 'verify';

export interface Progress {
  phase: Phase;
  done: number;
  /** Bytes this phase handles in all (undefined: an image of unknown size without a bmap). */
  total: number | undefined;
}

export interface WriteOptions {
  /** The image's raw bytes, in order (see source.ts). */
  chunks: AsyncIterable<Buffer>;
  /** For messages: the image file, its bmap file, the card. */
  imageFile: string;
  bmapFile?: string;
  cardName: string;
  /** Open for reading and writing. */
  card: FileHandle;
  segments: Segment[];
  patch?: Patch;
  signal?: AbortSignal;
  onProgress?: (progress: Progress) => void;
  /** Empties the kernel's cache of the card after the writes, so the read-back reads the card (blockdev --flushbufs). */
  dropCache?: () => Promise<void>;
  /** Tests: runs between the writes and the read-back (to damage the card). */
  beforeVerify?: () => Promise<void>;
  syncEvery?: number;
}

export interface WriteResult {
  writtenBytes: number;
  writeSeconds: number;
  verifySeconds: number;
}

/** Stopped by a signal: what was written is flushed, the card is incomplete. */
export class FlashStopped extends Error {
  override name = 'FlashStopped';
  constructor(
    readonly writtenBytes: number,
    readonly phase: Phase = 'write',
  ) {
    super(`stopped after writing ${writtenBytes} bytes`);
  }
}

export const writeSize = 4 * 1024 * 1024;
/** Writes that may wait their turn (32 MiB): as much as one fdatasync covers. */
const queuedWrites = 8;
/** The unit of the read-back's comparison (hashing smaller units halves its speed). */
export const verifyUnit = 64 * 1024;
const defaultSyncEvery = 32 * 1024 * 1024;

/**
 * What to write: the bmap's ranges, or the whole image without one; plus any part of the
 * settings slot that no range covers (a slot full of zeros may be a hole in the image).
 */
export function writePlan(imageSize: number | undefined, bmap: Bmap | undefined, patch?: Patch): Segment[] {
  const segments: Segment[] = bmap
    ? bmap.ranges.map((range) => ({
        start: range.first * bmap.blockSize,
        end: Math.min((range.last + 1) * bmap.blockSize, bmap.imageSize),
        sha256: range.sha256,
        label: range.first === range.last ? `block ${range.first}` : `blocks ${range.first}-${range.last}`,
      }))
    : [{ start: 0, end: imageSize ?? Number.MAX_SAFE_INTEGER, label: 'the whole image' }];
  if (patch) {
    let at = patch.offset;
    const patchEnd = patch.offset + patch.data.length;
    const gaps: Segment[] = [];
    for (const segment of segments) {
      if (segment.end <= at) continue;
      if (segment.start >= patchEnd) break;
      if (segment.start > at) gaps.push({ start: at, end: segment.start, label: 'the card settings' });
      at = Math.max(at, segment.end);
    }
    if (at < patchEnd) gaps.push({ start: at, end: patchEnd, label: 'the card settings' });
    segments.push(...gaps);
    segments.sort((a, b) => a.start - b.start);
  }
  return segments;
}

/** The bytes the plan writes. */
export function plannedBytes(segments: Segment[]): number | undefined {
  const total = segments.reduce((sum, segment) => sum + segment.end - segment.start, 0);
  return Number.isSafeInteger(total) && total < Number.MAX_SAFE_INTEGER / 2 ? total : undefined;
}

export async function writeAndVerify(options: WriteOptions): Promise<WriteResult> {
  const started = performance.now();
  const output = new CardOutput(options);
  const segments = options.segments.map((segment) => ({ ...segment }));
  const total = plannedBytes(segments);
  let next = 0;
  let position = 0;
  let hash = segments[0]?.sha256 ? createHash('sha256') : undefined;
  const source = options.chunks[Symbol.asyncIterator]();
  try {
    reading: while (next < segments.length) {
      if (options.signal?.aborted) throw new FlashStopped(output.writtenBytes);
      const step = await source.next();
      if (step.done === true) break;
      const chunk = step.value;
      let at = 0;
      while (at < chunk.length) {
        const segment = segments[next];
        if (!segment) break reading;
        if (position < segment.start) {
          const skip = Math.min(chunk.length - at, segment.start - position);
          at += skip;
          position += skip;
          continue;
        }
        const bytes = chunk.subarray(at, at + Math.min(chunk.length - at, segment.end - position));
        hash?.update(bytes);
        await output.add(position, bytes, total);
        at += bytes.length;
        position += bytes.length;
        if (position === segment.end) {
          if (hash && segment.sha256 && hash.digest('hex') !== segment.sha256) throw damagedImage(options, segment);
          next += 1;
          hash = segments[next]?.sha256 ? createHash('sha256') : undefined;
        }
      }
    }
    const last = segments[next];
    if (last && next === segments.length - 1 && last.end === Number.MAX_SAFE_INTEGER && position >= last.start) {
      // No bmap and no known size: the image ends where the stream does.
      last.end = position;
      next += 1;
    }
    if (next < segments.length && !options.signal?.aborted) {
      throw new UserError(`${options.imageFile} ended at byte ${position}, before the end of the image (${segments.at(-1)?.end} bytes): a truncated download? The card is incomplete.`);
    }
    await output.finish(total);
  } catch (err) {
    await output.abandon();
    if (options.signal?.aborted) throw new FlashStopped(output.writtenBytes);
    throw err;
  } finally {
    await source.return?.(undefined);
  }
  if (options.signal?.aborted) throw new FlashStopped(output.writtenBytes);
  const written = performance.now();

  await options.card.sync();
  await options.dropCache?.();
  await options.beforeVerify?.();
  await verify(options, regionsOf(segments), output.digests, plannedBytes(segments));
  return { writtenBytes: output.writtenBytes, writeSeconds: (written - started) / 1000, verifySeconds: (performance.now() - written) / 1000 };
}

/**
 * Collects contiguous bytes into aligned 4 MiB writes. Up to `queuedWrites` of them wait their
 * turn, written one after another, so the decoder goes on while an fdatasync holds the card (with
 * the bundled decoder, which shares this thread, that halves the time).
 */
class CardOutput {
  writtenBytes = 0;
  /** sha256 of every unit (64 KiB on the 64 KiB grid) written, in order. */
  readonly digests: Buffer[] = [];
  private free = Array.from({ length: queuedWrites }, () => Buffer.allocUnsafe(writeSize));
  private filling = this.free.pop()!;
  private pendingStart = 0;
  private pendingLength = 0;
  /** The last queued write; each starts when the one before it ended. */
  private last: Promise<void> = Promise.resolve();
  /** Each queued write's end, its buffer returned to `free`; oldest first. */
  private queued: Promise<void>[] = [];
  private sinceSync = 0;

  constructor(private readonly options: WriteOptions) {}

  async add(position: number, bytes: Buffer, total: number | undefined): Promise<void> {
    if (this.pendingLength > 0 && position !== this.pendingStart + this.pendingLength) await this.flush(total);
    let at = 0;
    while (at < bytes.length) {
      if (this.pendingLength === 0) this.pendingStart = position + at;
      const end = this.pendingStart + this.pendingLength;
      const room = writeSize - (end % writeSize);
      const take = Math.min(room, bytes.length - at);
      bytes.copy(this.filling, this.pendingLength, at, at + take);
      this.pendingLength += take;
      at += take;
      if ((this.pendingStart + this.pendingLength) % writeSize === 0) await this.flush(total);
    }
  }

  async finish(total: number | undefined): Promise<void> {
    await this.flush(total);
    await this.last;
    await this.options.card.datasync();
  }

  /** After a failure or a stop: let the queued writes end and put what was written on the card. */
  async abandon(): Promise<void> {
    await this.last.catch(() => undefined);
    await this.options.card.datasync().catch(() => undefined);
  }

  private async flush(total: number | undefined): Promise<void> {
    if (this.pendingLength === 0) return;
    const buffer = this.filling;
    const start = this.pendingStart;
    const length = this.pendingLength;
    applyPatch(buffer, start, length, this.options.patch);
    this.digests.push(unitDigests(buffer.subarray(0, length), start));
    this.pendingLength = 0;
    this.last = this.last.then(() => this.write(buffer, start, length, total));
    const returned = this.last.then(() => void this.free.push(buffer));
    // A failed write is reported where it is awaited (here, finish or abandon), never unhandled.
    returned.catch(() => undefined);
    this.queued.push(returned);
    while (this.free.length === 0) await this.queued.shift();
    this.filling = this.free.pop()!;
  }

  private async write(buffer: Buffer, start: number, length: number, total: number | undefined): Promise<void> {
    // Stopped: the writes still queued are dropped; the card is incomplete anyway.
    if (this.options.signal?.aborted) return;
    let done = 0;
    while (done < length) {
      const { bytesWritten } = await this.options.card.write(buffer, done, length - done, start + done);
      if (bytesWritten === 0) throw new UserError(`${this.options.cardName}: nothing more could be written at byte ${start + done}: is the card smaller than the image?`);
      done += bytesWritten;
    }
    this.sinceSync += length;
    if (this.sinceSync >= (this.options.syncEvery ?? defaultSyncEvery)) {
      await this.options.card.datasync();
      this.sinceSync = 0;
    }
    this.writtenBytes += length;
    this.options.onProgress?.({ phase: 'write', done: this.writtenBytes, total });
  }
}

/**
 * Reads every written region back, in the same aligned pieces as it was written (the next one is
 * read while this one is hashed), and compares each unit with what was written.
 */
async function verify(options: WriteOptions, regions: { start: number; end: number }[], written: Buffer[], total: number | undefined): Promise<void> {
  const expected = Buffer.concat(written);
  const pieces: { start: number; length: number }[] = [];
  for (const region of regions) {
    for (let start = region.start; start < region.end; ) {
      const length = Math.min(region.end, (Math.floor(start / writeSize) + 1) * writeSize) - start;
      pieces.push({ start, length });
      start += length;
    }
  }
  const buffers = [Buffer.allocUnsafe(writeSize), Buffer.allocUnsafe(writeSize)];
  const read = (index: number) => {
    const piece = pieces[index];
    return piece ? readFully(options, buffers[index % 2]!, piece.length, piece.start) : Promise.resolve();
  };
  let unit = 0;
  let done = 0;
  let next = read(0);
  for (let index = 0; index < pieces.length; index += 1) {
    const { start, length } = pieces[index]!;
    await next;
    if (options.signal?.aborted) throw new FlashStopped(done, 'verify');
    next = read(index + 1);
    next.catch(() => undefined);
    const digests = unitDigests(buffers[index % 2]!.subarray(0, length), start);
    for (let at = 0; at < digests.length; at += 32, unit += 1) {
      if (digests.compare(expected, unit * 32, unit * 32 + 32, at, at + 32) !== 0) {
        const unitStart = Math.max(start, (Math.floor(start / verifyUnit) + at / 32) * verifyUnit);
        throw new UserError(
          `${options.cardName} does not hold what was written: the ${verifyUnit} bytes at byte offset ${unitStart} (0x${unitStart.toString(16)}) differ when read back. ` +
            'The card or its reader is failing (or something else wrote to it): try again, or use another card.',
        );
      }
    }
    done += length;
    options.onProgress?.({ phase: 'verify', done, total });
  }
  await next;
}

async function readFully(options: WriteOptions, buffer: Buffer, length: number, position: number): Promise<void> {
  let done = 0;
  while (done < length) {
    const { bytesRead } = await options.card.read(buffer, done, length - done, position + done);
    if (bytesRead === 0) throw new UserError(`${options.cardName} ended at byte ${position + done} while reading back what was written there`);
    done += bytesRead;
  }
}

/** sha256 of each unit of `bytes` (which start at `start` on the card), cut on the unit grid. */
function unitDigests(bytes: Buffer, start: number): Buffer {
  const digests: Buffer[] = [];
  for (let at = 0; at < bytes.length; ) {
    const end = Math.min(bytes.length, (Math.floor((start + at) / verifyUnit) + 1) * verifyUnit - start);
    digests.push(createHash('sha256').update(bytes.subarray(at, end)).digest());
    at = end;
  }
  return Buffer.concat(digests);
}

function applyPatch(buffer: Buffer, start: number, length: number, patch: Patch | undefined): void {
  if (!patch) return;
  const from = Math.max(start, patch.offset);
  const to = Math.min(start + length, patch.offset + patch.data.length);
  if (from < to) patch.data.copy(buffer, from - start, from - patch.offset, to - patch.offset);
}

/** Adjacent segments joined: the stretches of the card that were written. */
function regionsOf(segments: Segment[]): { start: number; end: number }[] {
  const regions: { start: number; end: number }[] = [];
  for (const { start, end } of segments) {
    const last = regions.at(-1);
    if (last && last.end === start) last.end = end;
    else regions.push({ start, end });
  }
  return regions;
}

function damagedImage(options: WriteOptions, segment: Segment): UserError {
  return new UserError(
    `${options.imageFile} is damaged: bytes ${segment.start}-${segment.end - 1} (${segment.label}) do not match their checksum in ${options.bmapFile ?? 'its bmap'} ` +
      '(a damaged or incomplete download, or a bmap of another build). The card is incomplete: get the image again and flash it again.',
  );
}
