/** `pibond build FILE`: options at the edge, then one call to build(). */
import { resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { UserError } from '../lib/errors.ts';
import { Progress, formatSeconds } from '../lib/log.ts';
import { exitCodeFor, listenForStop } from '../lib/signals.ts';
import { sourceDateEpochFrom } from '../lib/tar.ts';
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
      verbose: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError(`build takes one definition file, got ${positionals.length}\n\n${help}`);
  const sourceDateEpoch = sourceDateEpochFrom(process.env);
  const progress = new Progress({ live: Boolean(process.stderr.isTTY) && !process.env['CI'], verbose: values.verbose });
  const stop = listenForStop((signal) => progress.say(`Interrupted (${signal}): stopping the build and removing its container...`));
  try {
    const started = Date.now();
    const result = await build(
      {
        definitionFile: positionals[0] ?? '',
        outDir: resolve(values.out),
        cache: !values['no-cache'],
        cacheVolume: values['cache-volume'],
        overlaysDirs: [defaultOverlaysDir, ...values.overlays.map((dir) => resolve(dir))],
        sourceDateEpoch,
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
