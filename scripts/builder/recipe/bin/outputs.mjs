#!/usr/bin/env node
// The outputs' heavy work, next to the image: the compressed copy, the checksums file, the block
// map's ranges, the installed packages and the sizes the manifest reports. Prints one JSON line on
// stdout:
//   {compressSeconds, bmapSeconds, checksums: {file: sha256}, packages: [{name, version, architecture}],
//    sizes: {rootfsBytes, kernelModulesBytes, bootBytes}, framesReused, framesCompressed, level}
// Argument: one JSON object {dir, image, compression: zstd|xz|none, checksums (the file to write),
//   bmapRanges (the file to write: {imageSize, blockSize, ranges: [{first, last, sha256}]}, which
//   the build renders as the .bmap), root (the image's tree), sizes (optional: the sizes to report,
//   measured elsewhere; root then needs only var/lib/dpkg), frames: {dir, reuse} (the zstd frame
//   cache: where, and whether to take frames from it or compress them all again; without it, every
//   frame is compressed in a temporary directory; `level` there overrides zstdLevel, to measure)}.
//
// The image is read once, in chunks, and only where it holds data (SEEK_DATA/SEEK_HOLE): the holes
// are fed to the hashes as zeros. Each chunk's pass feeds the whole file's sha256, the block map's
// range hashes and the chunk's own sha256. The .img.zst is one independent zstd frame per chunk,
// concatenated (a zstd stream may hold many frames; every decoder reads them as one): a frame is
// looked up in the cache by the chunk's sha256, the level and zstd's version, and compressed only
// when missing. A rebuild that changed a few blocks compresses a few chunks. The frames are
// compressed single-threaded, so their bytes do not depend on the machine: the same image gives
// the same .img.zst, from the cache or not.
//
// bmapSeconds is the read pass (checksums, block map, cache look-ups), compressSeconds the rest of
// the wall time the compressed copy took: the pass's waits for the compressors, the last frames, the
// copy (a cold build is mostly that; a rebuild mostly the pass).
import { spawn } from 'node:child_process';
import { Buffer } from 'node:buffer';
import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, open, readdir, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { $ } from 'zx';
import { dataExtents } from './lib/extents.mjs';

const input = JSON.parse(process.argv[2] ?? '{}');
const { dir, image, compression, checksums, bmapRanges, root, frames } = input;
const blockSize = 4096;
/**
 * One zstd frame per 16 MiB: a changed block recompresses 16 MiB (~1 s at level 19 on one core),
 * and the ratio is within 0.2% of 8 MiB-larger chunks (zstd's window at these levels is 8 MiB).
 */
const chunkBytes = 16 * 1024 * 1024;
/** How many chunks the read pass reads ahead of the one it hashes. */
const readAhead = 3;
/**
 * On the 2 GiB bookworm image (708 MiB of data), all its frames: level 10 gives 179 MB for 42 CPU
 * seconds; 11-15 are within 0.6% of it at 2-5 times the time; 16 gives ~171 MB for ~220 s, 19 ~161 MB
 * for ~450 s (estimated from a quarter of the chunks). None reaches 150 MB, and a cold build cannot
 * spend minutes here: 10, the level of the whole-file compression before (177.5 MB).
 */
const zstdLevel = 10;
/** The cache keeps the frames of about this many images (least recently used go first). */
const cachedImages = 3;
const suffixes = { zstd: '.zst', xz: '.xz', none: undefined };
if (!(compression in suffixes)) {
  console.error(`outputs: unknown compression ${compression}; allowed: ${Object.keys(suffixes).join(', ')}`);
  process.exit(2);
}
const level = frames?.level ?? zstdLevel;
if (!Number.isInteger(level) || level < 1 || level > 19) {
  console.error(`outputs: zstd level ${level}: allowed 1-19 (higher ones need --ultra, whose windows card writers refuse)`);
  process.exit(2);
}
const data = $({ quiet: true });

const imageFile = join(dir, image);
const compressedName = suffixes[compression] && `${image}${suffixes[compression]}`;
const started = Date.now();
// xz keeps its one whole-file run (multi-threaded), beside the read pass.
const xzDone = compression === 'xz' ? pipeToFile('xz', ['-T0', '-6', '-c', '--', imageFile], join(dir, compressedName)) : undefined;
const scratch = compression === 'zstd' && !frames ? await mkdtemp(join(tmpdir(), 'outputs-frames-')) : undefined;
const frameCache = compression === 'zstd' ? await openFrameCache({ dir: frames?.dir ?? scratch, level, reuse: frames?.reuse ?? false }) : undefined;

// The package list and the sizes walk the tree, beside the read pass (which is mostly hashing).
const packagesListed = listPackages();
packagesListed.catch(() => {});
// A stock image's sizes come measured from its file systems (lay-stock.mjs): `root` is then only its dpkg status.
const sizesMeasured = input.sizes ? Promise.resolve(input.sizes) : measureSizes();
sizesMeasured.catch(() => {});
const pass = await readPass(imageFile, frameCache);
const passEnded = Date.now();
const sums = { [image]: pass.sha256 };
if (frameCache) sums[compressedName] = await frameCache.concatenate(pass.chunkFrames, join(dir, compressedName));
if (xzDone) sums[compressedName] = await xzDone;
const waitedSeconds = frameCache?.waitedSeconds ?? 0;
const seconds = (value) => Math.round(value * 1000) / 1000;
const compressSeconds = seconds((Date.now() - passEnded) / 1000 + waitedSeconds);
const bmapSeconds = seconds((passEnded - started) / 1000 - waitedSeconds);
await writeFile(join(dir, bmapRanges), JSON.stringify({ imageSize: pass.imageSize, blockSize, ranges: pass.ranges }));
await writeFile(join(dir, checksums), Object.entries(sums).map(([file, sum]) => `${sum}  ${file}\n`).join(''));
if (frameCache && !scratch) await frameCache.prune(pass.chunkFrames);
if (scratch) await rm(scratch, { recursive: true, force: true });

const packages = await packagesListed;
const sizes = await sizesMeasured;

const framesReport = frameCache ? { framesReused: frameCache.reused, framesCompressed: frameCache.compressed, level } : {};
console.log(JSON.stringify({ compressSeconds, bmapSeconds, checksums: sums, packages, sizes, ...framesReport }));

/** The installed packages, from the tree's dpkg status. */
async function listPackages() {
  const format = '${Package}\t${Version}\t${Architecture}\n';
  const installed = (await data`dpkg-query ${`--admindir=${join(root, 'var/lib/dpkg')}`} -W -f ${format}`).stdout;
  return installed.split('\n').filter((line) => line.includes('\t')).map((line) => {
    const [name, version, architecture] = line.split('\t');
    return { name, version, architecture };
  });
}

/** The sizes the manifest reports, measured on the tree. */
async function measureSizes() {
  const [rootfsBytes, kernelModulesBytes, bootBytes] = await Promise.all([
    bytes(root, ['proc', 'sys']),
    bytes(join(root, 'usr/lib/modules')),
    bytes(join(root, 'boot')),
  ]);
  return { rootfsBytes, kernelModulesBytes, bootBytes };
}

/**
 * The bytes of the files and symbolic links under `dir` (each hard-linked file once), leaving out
 * `skip` (paths under it); 0 when `dir` does not exist. Not du: it counts directories' own sizes too, which depend on how the
 * tree was made (grown by dpkg's temporary files, or copied compact from the cache), not on what
 * is in it.
 */
async function bytes(dir, skip = []) {
  // A root without kernel modules (a stock image's look-alike without a kernel) has no such directory.
  if (!(await stat(dir).then(() => true, () => false))) return 0;
  const pruned = skip.flatMap((path) => ['-path', join(dir, path), '-prune', '-o']);
  const listing = (await data`find ${dir} ${pruned} ${['(', '-type', 'f', '-o', '-type', 'l', ')']} -printf ${'%D:%i %s\\n'}`).stdout;
  const sizes = new Map(listing.split('\n').filter(Boolean).map((line) => line.split(' ')));
  let total = 0;
  for (const size of sizes.values()) total += Number(size);
  return total;
}

/**
 * The one read of the image. The block map's ranges are its data extents (the holes are what the
 * disk assembly never wrote) widened to whole blocks and merged; only they are read, the rest is
 * zeros. This thread reads each chunk (a few ahead) into shared memory; one worker
 * (lib/file-hasher.mjs) hashes the whole file, holes as zeros, and another (lib/chunk-hasher.mjs)
 * the block map's ranges and each chunk for its frame's key. Returns the whole file's sha256, the
 * ranges with theirs, and each chunk's frame (missing frames are still being compressed when the
 * pass ends).
 */
async function readPass(file, cache) {
  const imageSize = (await stat(file)).size;
  const ranges = blockRanges(await dataExtents(file), imageSize);
  const plan = chunkPlan(ranges, imageSize);
  const pending = [];
  const wholeFile = hashWorker('file-hasher.mjs');
  const chunks = hashWorker('chunk-hasher.mjs');
  const handle = await open(file, 'r');
  try {
    // A few chunks are read ahead: a read waits on the disk (or the thread pool), the hashes on the CPU.
    // (A read that fails is thrown where it is awaited; one never awaited, after another failure, is let go.)
    const readAt = (entry) => {
      const read = readChunk(handle, entry);
      read.catch(() => {});
      return read;
    };
    const reads = plan.slice(0, readAhead).map(readAt);
    for (let i = 0; i < plan.length; i++) {
      const { start, end, segments } = plan[i];
      const chunk = await reads.shift();
      if (i + readAhead < plan.length) reads.push(readAt(plan[i + readAhead]));
      if (!chunk) {
        wholeFile.ask({ zeros: end - start }).catch(() => {});
        if (cache) {
          const { bytes, key } = hole(end - start);
          pending.push(Promise.resolve(cache.frameOf(bytes, key)));
        }
      } else {
        wholeFile.ask({ buffer: chunk.buffer }).catch(() => {});
        const hashed = chunks.ask({ start, buffer: chunk.buffer, segments }).then(({ key, digests }) => {
          for (const [range, sha256] of digests) ranges[range].sha256 = sha256;
          return cache?.frameOf(chunk, key);
        });
        hashed.catch(() => {});
        pending.push(hashed);
      }
      await wholeFile.room();
      await chunks.room();
      await cache?.room();
    }
    const { sha256 } = await wholeFile.ask({ digest: true });
    const chunkFrames = await Promise.all(pending);
    return { imageSize, ranges, sha256, chunkFrames };
  } finally {
    await handle.close();
    await wholeFile.close();
    await chunks.close();
  }
}

/**
 * Each chunk's start and end, and the spans of block map ranges inside it ({from, to, range, last}:
 * bytes of the image, the range's index, and whether the span ends that range). A chunk with no
 * spans is a hole.
 */
function chunkPlan(ranges, imageSize) {
  const plan = [];
  let next = 0;
  for (let start = 0; start < imageSize; start += chunkBytes) {
    const end = Math.min(start + chunkBytes, imageSize);
    const segments = [];
    while (next < ranges.length && ranges[next].first * blockSize < end) {
      const rangeEnd = Math.min((ranges[next].last + 1) * blockSize, imageSize);
      const to = Math.min(rangeEnd, end);
      segments.push({ from: Math.max(ranges[next].first * blockSize, start), to, range: next, last: to === rangeEnd });
      if (to < rangeEnd) break;
      next++;
    }
    plan.push({ start, end, segments });
  }
  return plan;
}

/** A chunk's bytes (zeros outside its spans), in memory the hashing workers share, or undefined for a hole. */
async function readChunk(handle, { start, end, segments }) {
  if (segments.length === 0) return undefined;
  const chunk = Buffer.from(new SharedArrayBuffer(end - start));
  for (const { from, to } of segments) await readFully(handle, chunk, from - start, to - from, from);
  return chunk;
}

/**
 * A hashing worker (lib/`script`): ask(message) posts a message (a chunk's SharedArrayBuffer is
 * shared, not copied) and resolves to the worker's answer, answers coming in the order asked;
 * room() waits while a few messages are with the worker, so memory stays bounded.
 */
function hashWorker(script) {
  const worker = new Worker(new URL(`./lib/${script}`, import.meta.url));
  const waiting = [];
  const roomWaiters = [];
  let failed;
  const fail = (err) => {
    failed ??= err;
    waiting.splice(0).forEach(({ reject }) => reject(failed));
    roomWaiters.splice(0).forEach((resolve) => resolve());
  };
  worker.on('message', (answer) => {
    waiting.shift()?.resolve(answer);
    roomWaiters.splice(0).forEach((resolve) => resolve());
  });
  worker.on('error', fail);
  worker.on('exit', (code) => fail(new Error(`outputs: the hashing worker ${script} exited (${code})`)));
  return {
    ask(message) {
      if (failed) return Promise.reject(failed);
      const answer = new Promise((resolve, reject) => waiting.push({ resolve, reject }));
      worker.postMessage(message);
      return answer;
    },
    async room() {
      while (!failed && waiting.length >= 4) await new Promise((resolve) => roomWaiters.push(resolve));
      if (failed) throw failed;
    },
    async close() {
      worker.removeAllListeners('exit');
      await worker.terminate();
    },
  };
}

/** Extents widened to whole blocks, merged where they touch: [{first, last}] block numbers. */
function blockRanges(extents, imageSize) {
  const ranges = [];
  for (const [start, end] of extents) {
    const first = Math.floor(start / blockSize);
    const last = Math.ceil(Math.min(end, imageSize) / blockSize) - 1;
    const previous = ranges.at(-1);
    if (previous && first <= previous.last + 1) previous.last = Math.max(previous.last, last);
    else ranges.push({ first, last });
  }
  return ranges;
}

async function readFully(handle, buffer, offset, length, position) {
  for (let done = 0; done < length; ) {
    const { bytesRead } = await handle.read(buffer, offset + done, length - done, position + done);
    if (bytesRead === 0) throw new Error(`outputs: the image ended at ${position + done}, inside its data extents`);
    done += bytesRead;
  }
}

/** A hole of `length` bytes, for its frame: its zeros and their sha256 (the frame's key), made once per length. */
function hole(length) {
  hole.byLength ??= new Map();
  if (!hole.byLength.has(length)) {
    const bytes = Buffer.alloc(length);
    hole.byLength.set(length, { bytes, key: createHash('sha256').update(bytes).digest('hex') });
  }
  return hole.byLength.get(length);
}

/**
 * The frame cache: `<key>.zst` files named by the chunk's sha256, the level and zstd's version.
 * A frame found is opened at once (and its mtime touched): an open file survives another build's
 * pruning. A missing one is compressed (one zstd per core), written under a temporary name and
 * renamed, so a reader never sees half a frame.
 */
async function openFrameCache({ dir: cacheDir, level, reuse }) {
  await mkdir(cacheDir, { recursive: true });
  const version = (await data`zstd --version`).stdout.match(/v(\d+\.\d+\.\d+)/)?.[1];
  if (!version) throw new Error('outputs: zstd --version printed no version');
  const flags = ['-q', '-c', '--single-thread', `-${level}`];
  const suffix = `.L${level}.zstd-${version}.zst`;
  const byKey = new Map();
  const cores = availableParallelism();
  const slots = limiter(cores);
  // The pass waits while chunks queue for compression, so that only a few are held in memory.
  let pending = 0;
  const roomWaiters = [];
  const room = async () => {
    const waitStarted = Date.now();
    while (pending >= 2 * cores) await new Promise((resolve) => roomWaiters.push(resolve));
    cache.waitedSeconds += (Date.now() - waitStarted) / 1000;
  };
  const cache = { reused: 0, compressed: 0, waitedSeconds: 0, frameOf, room, concatenate, prune };
  return cache;

  /** The frame of `chunk` (a promise of its open file; a failure is thrown where it is awaited). */
  function frameOf(chunk, key) {
    if (!byKey.has(key)) {
      pending++;
      const handle = lookUp(chunk, key).finally(() => {
        pending--;
        roomWaiters.splice(0).forEach((resolve) => resolve());
      });
      handle.catch(() => {});
      byKey.set(key, { file: join(cacheDir, `${key}${suffix}`), handle });
    }
    return byKey.get(key);
  }

  async function lookUp(chunk, key) {
    const file = join(cacheDir, `${key}${suffix}`);
    if (reuse) {
      const found = await open(file, 'r').catch((err) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
      if (found) {
        const now = new Date();
        await found.utimes(now, now);
        cache.reused++;
        return found;
      }
    }
    const frame = await slots(() => pipeThrough('zstd', flags, chunk));
    const temporary = `${file}.tmp-${process.pid}-${key.slice(0, 8)}`;
    await writeFile(temporary, frame);
    await rename(temporary, file);
    cache.compressed++;
    return open(file, 'r');
  }

  /** Writes the frames in chunk order as `target`; returns its sha256. */
  async function concatenate(chunkFrames, target) {
    const hash = createHash('sha256');
    const out = await open(target, 'w');
    try {
      for (const frame of chunkFrames) {
        const handle = await frame.handle;
        const { size } = await handle.stat();
        const bytes = Buffer.alloc(size);
        await readFully(handle, bytes, 0, size, 0);
        hash.update(bytes);
        await out.write(bytes);
      }
    } finally {
      await out.close();
      for (const { handle } of byKey.values()) await (await handle.catch(() => undefined))?.close();
    }
    return hash.digest('hex');
  }

  /**
   * Keeps the cache within `cachedImages` times this image's frames: the frames this build used,
   * then the most recently used others; older ones, and temporary files an hour old, are removed.
   */
  async function prune(chunkFrames) {
    const used = new Set(chunkFrames.map((frame) => frame.file));
    const entries = [];
    for (const name of await readdir(cacheDir)) {
      const file = join(cacheDir, name);
      const info = await stat(file).catch(() => undefined);
      if (info?.isFile()) entries.push({ file, bytes: info.size, mtime: info.mtimeMs, temporary: name.includes('.tmp-') });
    }
    const usedBytes = entries.filter((entry) => used.has(entry.file)).reduce((sum, entry) => sum + entry.bytes, 0);
    let kept = usedBytes;
    const others = entries.filter((entry) => !used.has(entry.file)).sort((a, b) => b.mtime - a.mtime);
    for (const entry of others) {
      const stale = entry.temporary ? Date.now() - entry.mtime > 3600_000 : kept + entry.bytes > cachedImages * usedBytes;
      if (stale) await unlink(entry.file).catch(() => {});
      else if (!entry.temporary) kept += entry.bytes;
    }
  }
}

/** Runs `task`s with at most `count` at a time. */
function limiter(count) {
  let running = 0;
  const waiting = [];
  return async (task) => {
    if (running >= count) await new Promise((resolve) => waiting.push(resolve));
    running++;
    try {
      return await task();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}

/** Feeds `input` to a command's standard input; returns its standard output. */
function pipeThrough(command, args, input) {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'inherit'] });
    const output = [];
    child.stdout.on('data', (bytes) => output.push(bytes));
    child.on('error', reject);
    child.on('close', (code, signal) => (code === 0 ? resolve(Buffer.concat(output)) : reject(new Error(`outputs: ${command} ${args.join(' ')} failed (${code ?? signal})`))));
    child.stdin.on('error', reject);
    child.stdin.end(input);
  });
}

/** Runs a command with its standard output going to `target`; returns the output's sha256. */
async function pipeToFile(command, args, target) {
  const out = await open(target, 'w');
  const hash = createHash('sha256');
  try {
    await new Promise((resolve, reject) => {
      const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'inherit'] });
      let writing = Promise.resolve();
      child.stdout.on('data', (bytes) => {
        hash.update(bytes);
        child.stdout.pause();
        writing = writing.then(() => out.write(bytes)).then(() => child.stdout.resume(), reject);
      });
      child.on('error', reject);
      child.on('close', (code, signal) => writing.then(() => (code === 0 ? resolve() : reject(new Error(`outputs: ${command} failed (${code ?? signal})`)))));
    });
  } finally {
    await out.close();
  }
  return hash.digest('hex');
}
