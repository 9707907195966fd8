import { execFile } from 'node:child_process';
import { mkdtemp, open, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { recipeDir } from '../../scripts/builder/builder-image.ts';
import { ExtentWriter, fetchFile } from '../../scripts/lib/fetch-file.ts';
import { FakeEngine } from './_fake-engine.ts';

const MiB = 1024 * 1024;
let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pibond-fetch-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** send-file.mjs's stream for a file of `size` bytes holding `extents`. */
function sendFileStream(size: number, extents: { offset: number; bytes: Buffer }[], end = true): Buffer {
  const header = (offset: number, length: number) => {
    const b = Buffer.alloc(16);
    b.writeBigUInt64BE(BigInt(offset), 0);
    b.writeBigUInt64BE(BigInt(length), 8);
    return b;
  };
  return Buffer.concat([...extents.flatMap((e) => [header(e.offset, e.bytes.length), e.bytes]), ...(end ? [header(size, 0)] : [])]);
}

/** A running container whose send-file.mjs prints `stream`, cut into awkward pieces across frames. */
async function containerSending(stream: Buffer, exitCode = 0) {
  const pieces: ['stdout', Buffer][] = [];
  for (let at = 0, n = 1; at < stream.length; at += n, n = (n * 7 + 3) % 70_001) pieces.push(['stdout', stream.subarray(at, at + n)]);
  const engine = new FakeEngine({ container: () => ({}), exec: () => ({ output: [...pieces, ['stderr', 'a warning\n']], exitCode }) });
  const container = await engine.docker.createContainer({ Image: 'pibond-builder:test' });
  await container.start();
  return container;
}

describe('send-file.mjs into ExtentWriter (both real, on this machine)', () => {
  it('sends only the data of a sparse file, and the writer makes the same file again, holes and all', async () => {
    const from = join(dir, 'sparse.img');
    const handle = await open(from, 'w');
    await handle.write(Buffer.alloc(4096, 'x'), 0, 4096, 0);
    await handle.write(Buffer.alloc(8192, 'y'), 0, 8192, 5 * MiB);
    await handle.truncate(9 * MiB + 7);
    await handle.close();
    const stream = await new Promise<Buffer>((resolve, reject) => {
      execFile(process.execPath, [join(recipeDir, 'bin', 'send-file.mjs'), from], { encoding: 'buffer', maxBuffer: 64 * MiB }, (err, stdout) => (err ? reject(new Error(err.message)) : resolve(stdout)));
    });
    const sent = stream.length;
    const to = join(dir, 'copy.img');
    const out = await open(to, 'w');
    const writer = new ExtentWriter(out);
    await pipeline(Readable.from([stream.subarray(0, 10), stream.subarray(10)]), writer);
    await out.close();
    expect((await readFile(to)).equals(await readFile(from))).toBe(true);
    expect(writer.size).toBe(9 * MiB + 7);
    // The data and a header per extent, not 9 MiB (the file system may round extents to its blocks).
    expect(sent).toBeLessThan(64 * 1024);
    expect((await stat(to)).blocks * 512).toBeLessThan(1 * MiB);
  });
});

describe('fetchFile', () => {
  it('writes each extent at its offset, leaves the holes as holes, and gives the file its size', async () => {
    const size = 8 * MiB + 123;
    const a = Buffer.alloc(64 * 1024, 'a');
    const b = Buffer.alloc(3000, 'b');
    const container = await containerSending(sendFileStream(size, [{ offset: 4096, bytes: a }, { offset: 8 * MiB, bytes: b }]));
    const lines: string[] = [];
    const to = join(dir, 'image.img');
    await expect(fetchFile(container, '/tools/send-file.mjs', '/out/image.img', to, (line) => lines.push(line))).resolves.toEqual({ size, written: a.length + b.length });
    const got = await readFile(to);
    const expected = Buffer.alloc(size);
    a.copy(expected, 4096);
    b.copy(expected, 8 * MiB);
    expect(got.equals(expected)).toBe(true);
    // Only the extents take room: 8 MiB of zeros were never written.
    expect((await stat(to)).blocks * 512).toBeLessThan(1 * MiB);
    expect(lines).toEqual(['a warning']);
    expect(await readdir(dir)).toEqual(['image.img']);
  });

  it('leaves nothing behind when the stream is cut before its end, or the sender fails', async () => {
    const cut = await containerSending(sendFileStream(1 * MiB, [{ offset: 0, bytes: Buffer.alloc(5000, 'x') }], false));
    await expect(fetchFile(cut, '/tools/send-file.mjs', '/out/x', join(dir, 'x'), () => {})).rejects.toThrow(/ended early, after 5000 bytes of data/);
    const truncated = await containerSending(sendFileStream(1 * MiB, [{ offset: 0, bytes: Buffer.alloc(5000, 'x') }]).subarray(0, 3000));
    await expect(fetchFile(truncated, '/tools/send-file.mjs', '/out/x', join(dir, 'x'), () => {})).rejects.toThrow(/ended/);
    const failed = await containerSending(sendFileStream(10, []), 1);
    await expect(fetchFile(failed, '/tools/send-file.mjs', '/out/x', join(dir, 'x'), () => {})).rejects.toThrow(/send-file\.mjs \/out\/x exited with status 1; its last lines:\n {2}a warning/);
    expect(await readdir(dir)).toEqual([]);
  });
});
