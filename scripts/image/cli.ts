/** `pibond build FILE`: options at the edge, then one call to build(). Also `pibond lock MANIFEST`. */
import { access, writeFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UserError } from '../lib/errors.ts';
import { defaultLockFile, readLock, renderLock } from '../lib/lock.ts';
import { Progress, formatSeconds } from '../lib/log.ts';
import { exitCodeFor, listenForStop } from '../lib/signals.ts';
import { sourceDateEpochFrom } from '../lib/tar.ts';
import type { BuildOptions } from './context.ts';
import { build, defaultCacheVolume, defaultOverlaysDir } from './index.ts';

const help = `Usage: pibond build DEFINITION [options]

Builds an SD-card image from an image definition (images/*.yaml) in a Docker container.

Options:
  --out DIR       where the outputs go (default: out)
  --no-cache      bootstrap the root filesystem afresh instead of reusing the cached one
  --cache-volume NAME
                  the Docker volume for downloaded packages and cached root filesystems
                  (default: pibond-cache; \`docker volume rm pibond-cache\` empties the cache)
  --overlays DIR  also lay in the NN-name overlay trees in DIR (repeatable), merged with the repo's
                  overlays/ in NN order; e.g. DIR/50-my-app/rootfs/etc/...
  --locked FILE   install exactly the package versions in FILE: a lock (pibond lock) or a build's
                  out/<name>.manifest.json; fails, listing them, if the mirror lacks any
  --no-lock       ignore the definition's own lock (DEFINITION's folder/<file name>.lock.json),
                  which is otherwise used whenever it exists
  --verbose       print every line of the build's output (it always goes to out/<name>.build.log)
  -h, --help      this text

Environment:
  SOURCE_DATE_EPOCH   timestamp for every file the build writes (default: 1704067200, 2024-01-01)
  DOCKER_HOST         the Docker engine to use (default: the local socket)
`;

export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      out: { type: 'string', default: 'out' },
      'no-cache': { type: 'boolean', default: false },
      'cache-volume': { type: 'string', default: defaultCacheVolume },
      overlays: { type: 'string', multiple: true, default: [] },
      locked: { type: 'string' },
      'no-lock': { type: 'boolean', default: false },
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError(`build takes one definition file, got ${positionals.length}\n\n${help}`);
  const definitionFile = positionals[0] ?? '';
  const lock = await lockOption(definitionFile, values.locked, values['no-lock']);
  const sourceDateEpoch = sourceDateEpochFrom(process.env);
  const progress = new Progress({ live: Boolean(process.stderr.isTTY) && !process.env['CI'], verbose: values.verbose });
  const stop = listenForStop((signal) => progress.say(`Interrupted (${signal}): stopping the build and removing its container...`));
  try {
    const started = Date.now();
    const result = await build(
      {
        definitionFile,
        outDir: resolve(values.out),
        cache: !values['no-cache'],
        cacheVolume: values['cache-volume'],
        overlaysDirs: [defaultOverlaysDir, ...values.overlays.map((dir) => resolve(dir))],
        sourceDateEpoch,
        lock,
      },
      progress,
      stop.signal,
    );
    process.stdout.write(
      `\nBuilt in ${formatSeconds((Date.now() - started) / 1000)}${result.rootfsFromCache ? ' (root filesystem from the cache)' : ''}:\n` +
        result.outputs.map((file) => `  ${file}\n`).join(''),
    );
    return 0;
  } catch (err) {
    if (!stop.received) throw err;
    // As a shell reports a process a signal ended: 128 + the signal's number (130 for Ctrl-C).
    process.stderr.write(`pibond: the build was interrupted by ${stop.received}; its container and partial outputs are removed\n`);
    return exitCodeFor(stop.received);
  } finally {
    stop.dispose();
  }
}

/** --locked FILE, else the definition's own lock when it exists (unless --no-lock). */
async function lockOption(definitionFile: string, locked: string | undefined, noLock: boolean): Promise<BuildOptions['lock']> {
  if (locked !== undefined && noLock) throw new UserError('--locked and --no-lock contradict each other: give one');
  if (locked !== undefined) return { file: locked, from: 'option' };
  if (noLock) return undefined;
  const file = defaultLockFile(definitionFile);
  try {
    await access(file);
  } catch {
    return undefined;
  }
  return { file, from: 'beside the definition' };
}

const lockHelp = `Usage: pibond lock MANIFEST [--out FILE]

Writes the package set of a build (out/<name>.manifest.json: every installed package with its
version) as a lock file to commit beside the definition. pibond build then installs exactly those
versions whenever that file exists (--no-lock ignores it, --locked FILE names another).

Options:
  --out FILE   where to write the lock (default: beside the definition the manifest names,
               images/default.yaml -> images/default.lock.json)
  -h, --help   this text
`;

/** `pibond lock MANIFEST`: the manifest's package set as a lock file. */
export async function lock(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: { out: { type: 'string' }, help: { type: 'boolean', short: 'h', default: false } },
  });
  if (values.help) {
    process.stdout.write(lockHelp);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError(`lock takes one build manifest (out/<name>.manifest.json), got ${positionals.length}\n\n${lockHelp}`);
  const loaded = await readLock(positionals[0] ?? '');
  const out = values.out ?? (loaded.definitionFile === undefined ? undefined : defaultLockFile(loaded.definitionFile));
  if (out === undefined) throw new UserError(`${loaded.file} names no definition file to put the lock beside: give --out FILE`);
  try {
    await writeFile(out, renderLock(loaded.lock));
  } catch (err) {
    throw new UserError(`cannot write the lock ${out} (--out): ${(err as Error).message}`);
  }
  const { lock: written } = loaded;
  process.stdout.write(
    `Wrote ${out}: ${written.packages.length} packages of Debian ${written.suite} ${written.architecture} from ${written.mirror}, as of ${written.created}.\n` +
      `Commit it: pibond build${loaded.definitionFile ? ` ${loaded.definitionFile}` : ''} now installs exactly these versions (--no-lock ignores it).\n`,
  );
  return 0;
}
