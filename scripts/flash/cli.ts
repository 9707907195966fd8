/**
 * `pibond flash IMAGE DEVICE`: an image onto an SD card or USB drive, safely (only cards, never
 * the system's disks; confirmation), fast (only the bmap's mapped blocks, decompressed on the
 * fly), verified (read back and compared), with the card's own settings put in while writing.
 */
import { constants } from 'node:fs';
import { type FileHandle, access, open, readFile, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';
import { $ } from 'zx';
import { manifestPathFor } from '../boot/image.ts';
import { type Bmap, parseBmap } from '../lib/bmap.ts';
import { cardOptions, cardOptionsHelp, cardPatch, cardSettingsFrom, describeCard } from '../lib/card.ts';
import { UserError, errorMessage } from '../lib/errors.ts';
import { type BuildManifest, readManifest } from '../lib/manifest.ts';
import { exitCodeFor, listenForStop } from '../lib/signals.ts';
import { type Disk, type SystemView, blockDeviceName, describeDisk, formatBytes, listDisks, readDisk, realSystem, refusals } from './devices.ts';
import { progressView } from './progress.ts';
import { type DecoderChoice, formatOf, openImageStream } from './source.ts';
import { FlashStopped, type Patch, type Progress, type WriteResult, plannedBytes, writeAndVerify, writePlan } from './writer.ts';

const help = `Usage: pibond flash IMAGE DEVICE [options]
       pibond flash --list

Writes an image onto an SD card or USB drive and reads it back to check it.

IMAGE is out/<name>.img, .img.zst or .img.xz, or a definition's name (out/<name>.img.zst, else
.img.xz, else .img). Compressed images are decompressed on the fly. Only the blocks the image's
bmap (out/<name>.img.bmap) lists as holding data are written; without a bmap, all of it.

DEVICE is a whole disk that is removable or on USB or an SD/MMC slot (/dev/sdb, /dev/mmcblk0).
pibond refuses a partition, the disk holding /, a disk with a mounted file system or swap, a
read-only one, and every other disk (SATA, NVMe...), saying why. It shows the disk's model, size
and partitions and asks before writing.

Options:
  --list            list the disks and whether each can be flashed (and why not)
  --yes             do not ask (for scripts); without it, pibond asks on the terminal and refuses
                    to go on without one
  --allow-loop      accept a loop device (losetup): flash into a file-backed loop device, for
                    testing. Real disks are judged by the rules above either way
  --decoder WHICH   auto (default: the host's zstd/xz when installed, else the bundled decoder),
                    host, or bundled
  -h, --help        this text

${cardOptionsHelp}
Ctrl-C stops at once: what was written is flushed, and the card is incomplete (flash it again
before use). At the end the kernel rereads the card's partition table, anything that mounted them
is unmounted, and the card is safe to remove.
`;

export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      ...cardOptions,
      list: { type: 'boolean', default: false },
      yes: { type: 'boolean', default: false },
      'allow-loop': { type: 'boolean', default: false },
      decoder: { type: 'string', default: 'auto' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  const allowLoop = values['allow-loop'];
  if (values.list) {
    if (positionals.length > 0) throw new UserError('--list takes no image or device');
    process.stdout.write(await listing(realSystem, allowLoop));
    return 0;
  }
  if (positionals.length !== 2) throw new UserError(`flash takes an image and a device, got ${positionals.length} argument${positionals.length === 1 ? '' : 's'}\n\n${help}`);
  const decoder = values.decoder;
  if (decoder !== 'auto' && decoder !== 'host' && decoder !== 'bundled') throw new UserError(`--decoder must be auto, host or bundled, got "${decoder}"`);

  const image = await loadImage(positionals[0] ?? '');
  const settings = await cardSettingsFrom(values);
  let patch: Patch | undefined;
  if (settings) {
    if (!image.manifest) throw new UserError(`${image.file}: card settings need the image's manifest (${image.manifestFile}), which is not there`);
    patch = cardPatch(image.manifest, settings, image.file);
  }

  const devicePath = positionals[1] ?? '';
  const disk = await checkedDisk(devicePath, { allowLoop }, realSystem);
  if (image.size !== undefined && image.size > disk.bytes) {
    throw new UserError(`${disk.path} holds ${formatBytes(disk.bytes)}, but the image is ${formatBytes(image.size)}: use a larger card`);
  }
  await checkWritable(disk.path);

  say(`Image: ${image.file} (${image.size === undefined ? 'size unknown' : formatBytes(image.size)})`);
  say(image.bmap ? `Block map: ${image.bmapFile}: ${formatBytes(plannedBytes(writePlan(image.size, image.bmap)) ?? 0)} of the image hold data and are written` : `No block map (${image.bmapFile} is not there): the whole image is written`);
  if (settings) say(`Card settings: ${describeCard(settings)}`);
  say(`Card:\n${describeDisk(disk).map((line) => `  ${line}`).join('\n')}`);
  if (!values.yes && (await confirm(image.file, disk)) === 'interrupted') {
    say(`Ctrl-C: nothing was written to ${disk.path}.`);
    return exitCodeFor('SIGINT');
  }

  return flashCard({ ...image, patch, target: disk.path, blockDevice: true, decoder, system: realSystem, diskName: disk.name });
}

export interface FlashJob {
  file: string;
  bmap: Bmap | undefined;
  bmapFile: string;
  size: number | undefined;
  patch: Patch | undefined;
  /** The device (or, in tests, a regular file) to write. */
  target: string;
  blockDevice: boolean;
  decoder: DecoderChoice;
  /** For the end: the kernel's name of the disk, and where to look for its mounts. */
  diskName?: string;
  system?: SystemView;
  stream?: NodeJS.WriteStream;
  beforeVerify?: () => Promise<void>;
  onProgress?: (progress: Progress) => void;
  /** The figures of a flash that succeeded (the benchmark). */
  onResult?: (result: WriteResult) => void;
}

/** Writes, verifies and releases the card; returns the exit status (0, or 128 + a stop signal's number). */
export async function flashCard(job: FlashJob): Promise<number> {
  const stream = job.stream ?? process.stderr;
  const tell = (message: string) => stream.write(`${message}\n`);
  const view = progressView(stream);
  const stop = listenForStop((signal) => {
    view.stop();
    tell(`${signal}: stopping; flushing what was written...`);
  });
  let card: FileHandle | undefined;
  try {
    card = await openCard(job.target, job.blockDevice);
    const source = await openImageStream(job.file, job.decoder);
    tell(`Writing ${job.file} to ${job.target} (decompressed by ${source.decoder})`);
    const result = await writeAndVerify({
      chunks: source.chunks,
      imageFile: job.file,
      bmapFile: job.bmap ? job.bmapFile : undefined,
      cardName: job.target,
      card,
      segments: writePlan(job.size, job.bmap, job.patch),
      patch: job.patch,
      signal: stop.signal,
      onProgress: (progress) => {
        // After a stop signal, the last write's report would draw the bar again under the message.
        if (!stop.received) view.update(progress);
        job.onProgress?.(progress);
      },
      dropCache: job.blockDevice ? () => flushBuffers(job.target) : undefined,
      beforeVerify: job.beforeVerify,
    });
    view.stop();
    job.onResult?.(result);
    await card.close();
    card = undefined;
    if (job.blockDevice) await releaseDisk(job.target, job.diskName, job.system ?? realSystem, tell);
    tell(
      `Done: wrote ${formatBytes(result.writtenBytes)} in ${result.writeSeconds.toFixed(1)} s, read back and verified in ${result.verifySeconds.toFixed(1)} s.` +
        (job.blockDevice ? ` ${job.target} is not mounted and safe to remove.` : ''),
    );
    return 0;
  } catch (err) {
    view.stop();
    if (err instanceof FlashStopped || stop.received) {
      const what = err instanceof FlashStopped && err.phase === 'verify' ? 'while verifying: the card is not verified' : `after writing ${formatBytes(err instanceof FlashStopped ? err.writtenBytes : 0)}: the card is incomplete`;
      tell(`Stopped by ${stop.received ?? 'a signal'} ${what}: flash it again before use.`);
      return exitCodeFor(stop.received ?? 'SIGINT');
    }
    throw err;
  } finally {
    await card?.close().catch(() => undefined);
    stop.dispose();
  }
}

interface LoadedImage {
  file: string;
  bmap: Bmap | undefined;
  bmapFile: string;
  size: number | undefined;
  manifest: BuildManifest | undefined;
  manifestFile: string;
}

/** The image a path or a definition's name means, with its bmap, manifest and size. */
export async function loadImage(given: string, outDir = 'out'): Promise<LoadedImage> {
  const file = await resolveImage(given, outDir);
  const raw = file.replace(/\.(zst|xz)$/, '');
  const bmapFile = `${raw}.bmap`;
  const bmapText = await readFile(bmapFile, 'utf8').catch(() => undefined);
  const bmap = bmapText === undefined ? undefined : parseBmap(bmapText, bmapFile);
  const manifestFile = manifestPathFor(raw);
  const manifest = await readManifest(manifestFile).catch(() => undefined);
  const size = bmap?.imageSize ?? (formatOf(file) === 'raw' ? (await stat(file)).size : manifest?.files?.[basename(raw)]?.bytes);
  return { file, bmap, bmapFile, size, manifest, manifestFile };
}

async function resolveImage(given: string, outDir: string): Promise<string> {
  const info = await stat(given).catch(() => undefined);
  if (info?.isFile()) {
    if (formatOf(given) === undefined) throw new UserError(`${given}: pibond flash takes a .img, .img.zst or .img.xz file`);
    return given;
  }
  if (info) throw new UserError(`${given} is not a file; give an image (out/<name>.img.zst) or a definition's name`);
  if (/^[a-z0-9][a-z0-9._-]*$/.test(given) && !/\.img(\.zst|\.xz)?$/.test(given)) {
    for (const suffix of ['.img.zst', '.img.xz', '.img']) {
      const candidate = join(outDir, `${given}${suffix}`);
      if ((await stat(candidate).catch(() => undefined))?.isFile()) return candidate;
    }
    throw new UserError(`no image named ${given} in ${outDir}/ (looked for ${given}.img.zst, .img.xz and .img); build it with \`pibond build images/<file>.yaml\``);
  }
  throw new UserError(`no image at ${given}; build one with \`pibond build images/default.yaml\``);
}

/** The disk at `path`, once every rule passed; otherwise a UserError listing each reason. */
export async function checkedDisk(path: string, rules: { allowLoop: boolean }, system: SystemView): Promise<Disk> {
  const disk = await readDisk(await blockDeviceName(path, system), system);
  const reasons = refusals(disk, rules);
  if (reasons.length > 0) throw new UserError(`refusing to flash ${path}:\n${reasons.map((reason) => `  - ${reason}`).join('\n')}`);
  return disk;
}

/** `pibond flash --list`: every disk, and whether it can be flashed. */
export async function listing(system: SystemView, allowLoop: boolean): Promise<string> {
  const disks = await listDisks(system);
  const lines: string[] = [];
  for (const disk of disks) {
    const reasons = refusals(disk, { allowLoop });
    lines.push(...describeDisk(disk), reasons.length === 0 ? '  -> can be flashed' : reasons.map((reason) => `  -> refused: ${reason}`).join('\n'), '');
  }
  const candidates = disks.filter((disk) => refusals(disk, { allowLoop }).length === 0).length;
  lines.push(candidates === 0 ? 'No disk here can be flashed: insert an SD card or a USB drive.' : `${candidates} disk${candidates === 1 ? '' : 's'} can be flashed.`);
  return `${lines.join('\n')}\n`;
}

async function checkWritable(path: string): Promise<void> {
  if (await access(path, constants.W_OK).then(() => true, () => false)) return;
  throw new UserError(`${path} is not writable for this user: run pibond flash as root (sudo npm run pibond -- flash ...)`);
}

/** Asks on the terminal; a UserError unless the answer is "yes"; Ctrl-C at the question is 'interrupted'. */
async function confirm(imageFile: string, disk: Disk): Promise<'confirmed' | 'interrupted'> {
  if (!process.stdin.isTTY) throw new UserError(`not asking without a terminal: pass --yes to flash ${disk.path} from a script`);
  const prompt = createInterface({ input: process.stdin, output: process.stderr });
  try {
    const answer = await prompt.question(`Everything on ${disk.path} (${disk.model}, ${formatBytes(disk.bytes)}) will be lost. Type yes to write ${basename(imageFile)} to it: `);
    if (answer.trim() !== 'yes') throw new UserError(`not flashing ${disk.path}: the answer was not "yes"`);
    return 'confirmed';
  } catch (err) {
    // readline turns Ctrl-C at the question into an AbortError (the terminal is in raw mode).
    if ((err as NodeJS.ErrnoException).code === 'ABORT_ERR') {
      process.stderr.write('\n');
      return 'interrupted';
    }
    throw err;
  } finally {
    prompt.close();
  }
}

async function openCard(target: string, blockDevice: boolean): Promise<FileHandle> {
  // O_EXCL on a block device: the kernel refuses while anything has it mounted or claimed, and
  // nothing (an automounter) can mount its partitions while pibond holds it.
  const flags = constants.O_RDWR | (blockDevice ? constants.O_EXCL : 0);
  try {
    return await open(target, flags);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'EBUSY') throw new UserError(`${target} is busy: something has it mounted or open exclusively (an automounter, a partition editor)`);
    if (code === 'EACCES' || code === 'EPERM') throw new UserError(`${target} cannot be opened for writing: run pibond flash as root (sudo)`);
    throw new UserError(`${target} cannot be opened for writing: ${errorMessage(err)}`);
  }
}

/** After fsync: drop the kernel's cached copy of the device, so the read-back reads the card. */
async function flushBuffers(device: string): Promise<void> {
  const result = await $({ quiet: true, nothrow: true })`blockdev --flushbufs ${device}`;
  if (result.exitCode !== 0) {
    throw new UserError(`blockdev --flushbufs ${device} failed (${result.stderr.trim() || `exit status ${result.exitCode}`}): without it the read-back could come from memory, not the card, so the card is not verified`);
  }
}

/**
 * The end: the kernel rereads the new partition table (so the Pi's partitions show up), and
 * whatever a desktop automounted from them is unmounted again.
 */
async function releaseDisk(device: string, diskName: string | undefined, system: SystemView, tell: (message: string) => void): Promise<void> {
  await $({ quiet: true })`sync`;
  let reread = false;
  let failure = '';
  for (let attempt = 0; attempt < 5 && !reread; attempt += 1) {
    const result = await $({ quiet: true, nothrow: true })`blockdev --rereadpt ${device}`;
    reread = result.exitCode === 0;
    failure = result.stderr.trim();
    if (!reread) await new Promise((resolve) => setTimeout(resolve, 500));
  }
  if (!reread) tell(`Note: the kernel could not reread ${device}'s partition table (${failure}); unplug and replug the card to see its new partitions.`);
  await $({ quiet: true, nothrow: true, timeout: '15s' })`udevadm settle --timeout=10`;
  if (diskName === undefined) return;
  // A desktop's automounter (udisks) mounts the new partitions a moment after udev is done: look
  // twice.
  for (const waitMs of [0, 1500]) {
    await new Promise((resolve) => setTimeout(resolve, waitMs));
    const disk = await readDisk(diskName, system);
    for (const partition of disk.partitions) {
      for (const mountpoint of partition.mountpoints) {
        const result = await $({ quiet: true, nothrow: true })`umount ${mountpoint}`;
        tell(result.exitCode === 0 ? `Unmounted ${partition.path} from ${mountpoint} (mounted by the desktop after the write).` : `${partition.path} is mounted on ${mountpoint} and could not be unmounted: unmount it before removing the card.`);
      }
    }
  }
}

function say(message: string): void {
  process.stderr.write(`${message}\n`);
}
