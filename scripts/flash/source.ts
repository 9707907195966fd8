/**
 * An image as a stream of its raw bytes, whatever it was shipped as: `.img` is read as it is,
 * `.img.zst` and `.img.xz` are decompressed on the fly (never to a temporary file).
 *
 * Decoders: the host's `zstd -dc` / `xz -dc` when they are installed (native and in their own
 * process, so decompression runs beside the writes: a 2 GiB image takes ~2 s with zstd), else
 * the npm decoders pibond ships (fzstd, xz-decompress: pure JavaScript and WebAssembly, ~7x
 * slower, but they keep the promise that the host needs nothing but Node).
 */
import { spawn } from 'node:child_process';
import { constants, createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { Readable } from 'node:stream';
import { Decompress } from 'fzstd';
import xzDecompress from 'xz-decompress';
import { UserError, errorMessage } from '../lib/errors.ts';

export type Format = 'raw' | 'zstd' | 'xz';
/** auto: the host's tool when it has one, else the bundled decoder. */
export type DecoderChoice = 'auto' | 'host' | 'bundled';

export interface ImageStream {
  /** What decodes it, for the user: "zstd -dc", "fzstd (bundled)", "read as it is". */
  decoder: string;
  /** The image's bytes, in order, in chunks of any size. Breaking out of the loop stops the decoder. */
  chunks: AsyncGenerator<Buffer>;
}

export function formatOf(file: string): Format | undefined {
  if (/\.img$/.test(file)) return 'raw';
  if (/\.img\.zst$/.test(file)) return 'zstd';
  if (/\.img\.xz$/.test(file)) return 'xz';
  return undefined;
}

const readChunk = 4 * 1024 * 1024;

export async function openImageStream(file: string, choice: DecoderChoice = 'auto'): Promise<ImageStream> {
  const format = formatOf(file);
  if (format === undefined) throw new UserError(`${file}: pibond flash takes a .img, .img.zst or .img.xz file`);
  if (format === 'raw') return { decoder: 'read as it is', chunks: readRaw(file) };
  const tool = format === 'zstd' ? 'zstd' : 'xz';
  const onHost = choice !== 'bundled' && (await onPath(tool));
  if (choice === 'host' && !onHost) throw new UserError(`${tool} is not installed on this host (apt-get install ${tool}-utils)`);
  if (onHost) return { decoder: `${tool} -dc`, chunks: fromCommand(tool, file) };
  return format === 'zstd' ? { decoder: 'fzstd (bundled)', chunks: zstdBundled(file) } : { decoder: 'xz-decompress (bundled)', chunks: xzBundled(file) };
}

async function* readRaw(file: string): AsyncGenerator<Buffer> {
  for await (const chunk of createReadStream(file, { highWaterMark: readChunk })) yield chunk as Buffer;
}

async function* fromCommand(tool: string, file: string): AsyncGenerator<Buffer> {
  const child = spawn(tool, ['-dc', '--', file], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (data: Buffer) => (stderr = (stderr + data.toString()).slice(-2000)));
  const ended = new Promise<string | undefined>((resolve) => {
    child.on('error', (err) => resolve(err.message));
    child.on('close', (code, signal) => resolve(code === 0 ? undefined : (stderr.trim() || `exit status ${code ?? signal}`)));
  });
  try {
    for await (const chunk of child.stdout) yield chunk as Buffer;
    const failure = await ended;
    if (failure !== undefined) throw damaged(file, `${tool} -dc says: ${failure}`);
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill();
  }
}

async function* zstdBundled(file: string): AsyncGenerator<Buffer> {
  const out: Buffer[] = [];
  const decoder = new Decompress((data) => {
    if (data.length > 0) out.push(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
  });
  const push = (chunk: Uint8Array, final: boolean) => {
    try {
      decoder.push(chunk, final);
    } catch (err) {
      throw damaged(file, `fzstd says: ${errorMessage(err)}`);
    }
  };
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    push(chunk as Buffer, false);
    yield* out.splice(0);
  }
  push(new Uint8Array(0), true);
  yield* out.splice(0);
}

async function* xzBundled(file: string): AsyncGenerator<Buffer> {
  const compressed = Readable.toWeb(createReadStream(file, { highWaterMark: 1024 * 1024 })) as ReadableStream<Uint8Array>;
  const stream = new xzDecompress.XzReadableStream(compressed);
  try {
    for await (const data of stream as unknown as AsyncIterable<Uint8Array>) yield Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  } catch (err) {
    throw damaged(file, `xz-decompress says: ${errorMessage(err)}`);
  }
}

function damaged(file: string, why: string): UserError {
  return new UserError(`${file} cannot be decompressed (a damaged or truncated download?): ${why}`);
}

async function onPath(tool: string): Promise<boolean> {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    if (await access(join(dir, tool), constants.X_OK).then(() => true, () => false)) return true;
  }
  return false;
}
