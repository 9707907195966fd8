/**
 * The pibond CLI: one function per command, one error handler.
 * An expected failure (UserError) prints as one message; anything else is a bug and prints whole.
 */
import { isUserError } from './lib/errors.ts';
import { endAsStopped } from './lib/signals.ts';

const usage = `Usage: pibond <command> [options]

Commands:
  validate FILE...        check image definitions; prints every problem at once
  build FILE [options]    build an SD-card image into out/ (see pibond build --help)
  lock MANIFEST [--out F] write a build's package versions as a lock file; builds then install exactly those
  boot IMAGE [options]    boot an image under QEMU with two NICs; --test runs the failover scenario
  flash IMAGE DEVICE      write an image onto an SD card or USB drive and verify it; --list shows the cards
  diff A B                what differs between two builds (manifests or images); exit 1 if anything does
`;

type Command = (args: string[]) => Promise<number>;

const commands: Record<string, () => Promise<Command>> = {
  validate: async () => (await import('./validate.ts')).main,
  build: async () => (await import('./image/cli.ts')).main,
  lock: async () => (await import('./image/cli.ts')).lock,
  boot: async () => (await import('./boot/cli.ts')).main,
  flash: async () => (await import('./flash/cli.ts')).main,
  diff: async () => (await import('./diff/cli.ts')).main,
};

async function run(argv: string[]): Promise<number> {
  const [name, ...args] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    process.stdout.write(usage);
    return name === undefined ? 2 : 0;
  }
  const load = commands[name];
  if (!load) {
    process.stderr.write(`pibond: unknown command "${name}"\n\n${usage}`);
    return 2;
  }
  return (await load())(args);
}

try {
  process.exitCode = await run(process.argv.slice(2));
} catch (err) {
  if (isUserError(err)) {
    process.stderr.write(`pibond: ${err.message}\n`);
  } else {
    process.stderr.write(`pibond: internal error (a bug; please report it):\n${(err as Error)?.stack ?? String(err)}\n`);
  }
  process.exitCode = 1;
}
// A command stopped by a signal has cleaned up and returned 128 + n; after a closed terminal the
// process ends by that signal itself (see endAsStopped).
endAsStopped();
