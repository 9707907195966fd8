/**
 * A file out of a container through the engine's API, for engines that do not share this machine's
 * file system (a remote or tcp engine: see engine.ts). The container runs send-file.mjs, which
 * writes each data extent as [offset u64][length u64][bytes] and ends with [size][0]; the holes
 * are never sent, so a 2 GiB image with 0.7 GiB of data costs 0.7 GiB. Here each extent is written
 * at its offset into DEST.partial, which becomes DEST only when the end header came after every
 * byte: a cut connection leaves no DEST and no DEST.partial.
 */
import { type FileHandle, open, rename, rm } from 'node:fs/promises';
import { Transform, type TransformCallback, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type Docker from 'dockerode';
import { CommandFailed, type LineSink, LineSplitter } from './docker.ts';

/**
 * Docker's multiplexed exec output (no TTY): frames of [stream 1 byte][3 zero bytes][size u32 BE]
 * then the payload. Passes stdout's bytes on, in order and with backpressure; stderr goes to `sink`.
 */
export class Demux extends Transform {
  /** The current frame's header, while it is incomplete. */
  private header = Buffer.alloc(0);
  /** The current frame's stream (1 stdout, 2 stderr) and the payload bytes still to come. */
  private kind = 1;
  private left = 0;
  private readonly stderr: LineSplitter;

  constructor(sink: LineSink) {
    super();
    this.stderr = new LineSplitter(sink, 'stderr');
  }

  get stderrTail(): string[] {
    return this.stderr.tail;
  }

  // A payload is passed on as its pieces arrive, never gathered whole: frames are as large as the
  // sender's writes (4 MiB), the network's pieces ~64 KiB.
  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.left === 0) {
        const taken = chunk.subarray(at, at + 8 - this.header.length);
        this.header = Buffer.concat([this.header, taken]);
        at += taken.length;
        if (this.header.length < 8) break;
        this.kind = this.header[0] ?? 1;
        this.left = this.header.readUInt32BE(4);
        this.header = Buffer.alloc(0);
        continue;
      }
      const part = chunk.subarray(at, at + this.left);
      at += part.length;
      this.left -= part.length;
      if (this.kind === 2) this.stderr.write(part);
      else this.push(part);
    }
    done();
  }

  override _flush(done: TransformCallback): void {
    this.stderr.end();
    const cut = this.header.length > 0 || this.left > 0;
    done(cut ? new Error(`the engine's output ended inside a frame (${this.left} payload bytes missing)`) : null);
  }
}

/** Writes send-file.mjs's stream into an open file: extents at their offsets, the size at the end. */
export class ExtentWriter extends Writable {
  private pending = Buffer.alloc(0);
  /** Bytes still to come of the extent being written, and where the next of them goes. */
  private left = 0;
  private position = 0;
  /** The file's size, once the end header came. */
  size: number | undefined;
  /** Bytes of data written (the holes not counted). */
  written = 0;

  constructor(private readonly handle: FileHandle) {
    super();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (err?: Error | null) => void): void {
    this.take(chunk).then(() => done(), done);
  }

  override _final(done: (err?: Error | null) => void): void {
    if (this.size === undefined) done(new Error(`the file's stream ended early, after ${this.written} bytes of data and before its end`));
    else if (this.pending.length || this.left) done(new Error('the file\'s stream ended inside an extent'));
    else this.handle.truncate(this.size).then(() => done(), done);
  }

  private async take(chunk: Buffer): Promise<void> {
    let buffer = this.pending.length ? Buffer.concat([this.pending, chunk]) : chunk;
    while (buffer.length) {
      if (this.size !== undefined) throw new Error(`${buffer.length} bytes came after the file's end`);
      if (this.left > 0) {
        const part = buffer.subarray(0, Math.min(this.left, buffer.length));
        await writeFully(this.handle, part, this.position);
        this.position += part.length;
        this.left -= part.length;
        this.written += part.length;
        buffer = buffer.subarray(part.length);
        continue;
      }
      if (buffer.length < 16) break;
      const offset = Number(buffer.readBigUInt64BE(0));
      const length = Number(buffer.readBigUInt64BE(8));
      buffer = buffer.subarray(16);
      if (length === 0) this.size = offset;
      else [this.position, this.left] = [offset, length];
    }
    this.pending = Buffer.from(buffer);
  }
}

async function writeFully(handle: FileHandle, bytes: Buffer, position: number): Promise<void> {
  for (let done = 0; done < bytes.length; ) {
    const { bytesWritten } = await handle.write(bytes, done, bytes.length - done, position + done);
    done += bytesWritten;
  }
}

/**
 * Copies `from` (a path in the running container) to `to` on this machine, holes kept; `tool` is
 * send-file.mjs's path in the container. Returns the bytes of data that crossed.
 */
export async function fetchFile(container: Docker.Container, tool: string, from: string, to: string, sink: LineSink): Promise<{ size: number; written: number }> {
  const cmd = [tool, from];
  const exec = await container.exec({ Cmd: cmd, AttachStdout: true, AttachStderr: true, Tty: false });
  const stream = (await exec.start({ hijack: true, stdin: false })) as NodeJS.ReadableStream;
  const partial = `${to}.partial`;
  const handle = await open(partial, 'w');
  const demux = new Demux(sink);
  const writer = new ExtentWriter(handle);
  try {
    try {
      await pipeline(stream, demux, writer);
    } finally {
      await handle.close();
    }
    const { ExitCode } = await exec.inspect();
    if (ExitCode !== 0) throw new CommandFailed(cmd, ExitCode ?? -1, demux.stderrTail);
    await rename(partial, to);
    return { size: writer.size ?? 0, written: writer.written };
  } catch (err) {
    await rm(partial, { force: true });
    throw err;
  }
}
