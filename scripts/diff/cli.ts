/**
 * `pibond diff A B`: what differs between two builds, from their manifests (fast) and their images
 * (in a builder container). Exits like diff(1): 0 when nothing differs, 1 when something does,
 * 2 on trouble, so a reproducibility check can tell "differs" from "could not compare".
 */
import { parseArgs } from 'node:util';
import { ensureBuilderImage } from '../builder/builder-image.ts';
import { UserError, errorMessage, isUserError } from '../lib/errors.ts';
import { ensureLocalDockerEngine } from '../lib/host.ts';
import { exitCodeFor, listenForStop } from '../lib/signals.ts';
import { NotAnImage, diffImages, renderImageDiff } from './images.ts';
import { type DiffInput, loadInput } from './inputs.ts';
import { diffManifests, manifestsDiffer, renderManifestDiff } from './manifests.ts';

const help = `Usage: pibond diff A B [options]

Shows what differs between two builds. A and B are each a build manifest (out/<name>.manifest.json)
or an image (out/<name>.img, .img.zst or .img.xz; the manifest beside an image is compared too).

Manifests: the definition's fields, what the build started from (base, mirror, builder image, root
filesystem cache key, source date epoch), packages added, removed or changed, output files and
sizes. Step timings and whether the root filesystem came from the cache are not compared.

Images, compared in a builder container (Docker needed; ~1 min): their checksums, partition
tables, and the files of every partition whose bytes differ (added, removed, content, mode, owner,
symlink target, type). The first differing byte is traced to what owns it: a file's path, or which
file system metadata (superblock, bitmaps, inode table and the inode in it, FAT...).

Options:
  --limit N     list at most N differing files (default 200)
  -h, --help    this text

Exit status: 0 when nothing differs, 1 when something does, 2 on bad usage or input.
`;

const defaultMirror = 'http://deb.debian.org/debian';
const say = (message: string) => process.stderr.write(`${message}\n`);

export async function main(args: string[]): Promise<number> {
  let options: { limit: number; files: string[]; help: boolean };
  try {
    options = parseOptions(args);
  } catch (err) {
    process.stderr.write(`pibond diff: ${errorMessage(err)}\n\n${help}`);
    return 2;
  }
  if (options.help) {
    process.stdout.write(help);
    return 0;
  }
  try {
    return await compare(options.files[0] ?? '', options.files[1] ?? '', options.limit);
  } catch (err) {
    // Bad input is status 2, not the top-level handler's 1, which here would mean "they differ".
    if (!isUserError(err)) throw err;
    process.stderr.write(`pibond diff: ${err.message}\n`);
    return 2;
  }
}

function parseOptions(args: string[]): { limit: number; files: string[]; help: boolean } {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { limit: { type: 'string', default: '200' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  const limit = Number(values.limit);
  if (!Number.isInteger(limit) || limit < 0) throw new Error(`--limit must be a whole number, got "${values.limit}"`);
  if (!values.help && positionals.length !== 2) throw new Error(`diff takes two files, got ${positionals.length}`);
  return { limit, files: positionals, help: values.help };
}

async function compare(fileA: string, fileB: string, limit: number): Promise<number> {
  const [a, b] = await Promise.all([loadInput(fileA), loadInput(fileB)]);
  let differ = false;
  if (a.manifest && b.manifest) {
    const d = diffManifests(a.manifest, b.manifest);
    differ = manifestsDiffer(d);
    process.stdout.write(differ ? `Manifests differ:\n${renderManifestDiff(d)}` : 'The manifests agree.\n');
  } else if (a.kind !== 'image' || b.kind !== 'image') {
    throw new UserError(`a manifest can only be compared with a manifest: ${missingManifest(a) ?? missingManifest(b)}`);
  } else {
    say(`Manifests not compared: ${missingManifest(a) ?? missingManifest(b)}`);
  }
  if (a.kind === 'image' && b.kind === 'image') {
    const imagesDiffer = await compareImages(a, b, limit);
    if (typeof imagesDiffer === 'number') return imagesDiffer;
    differ ||= imagesDiffer;
  }
  return differ ? 1 : 0;
}

function missingManifest(input: DiffInput): string | undefined {
  return input.kind === 'image' && !input.manifest ? `${input.file} has no manifest beside it (${input.manifestFile})` : undefined;
}

/** Whether the images differ, or the exit status after a stop signal. */
async function compareImages(a: Extract<DiffInput, { kind: 'image' }>, b: Extract<DiffInput, { kind: 'image' }>, limit: number): Promise<boolean | number> {
  const stop = listenForStop((signal) => say(`${signal}: stopping; removing the container...`));
  try {
    const docker = await ensureLocalDockerEngine(say, 'Comparing images');
    const mirror = a.manifest?.mirror ?? b.manifest?.mirror ?? defaultMirror;
    const builderImage = await ensureBuilderImage(docker, mirror, () => undefined, say);
    const started = Date.now();
    const d = await diffImages(docker, builderImage, a.file, b.file, { signal: stop.signal, say });
    say(`Compared in ${((Date.now() - started) / 1000).toFixed(1)} s.`);
    process.stdout.write(renderImageDiff(d, limit));
    return !d.identical;
  } catch (err) {
    if (stop.received) {
      say(`Stopped by ${stop.received}.`);
      return exitCodeFor(stop.received);
    }
    if (err instanceof NotAnImage) throw new UserError(err.message);
    throw err;
  } finally {
    stop.dispose();
  }
}
