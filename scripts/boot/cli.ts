/** `pibond boot IMAGE`: the image under QEMU with two NICs, interactively or as the failover test. */
import { parseArgs } from 'node:util';
import { UserError } from '../lib/errors.ts';
import { defaultTestTimeoutSeconds, failoverTest, prepareHost } from './failover-test.ts';
import { inspectImage } from './image.ts';
import { formatFigures, formatVerdict } from './report.ts';
import { type Terminal, releaseTerminal, startBoot } from './session.ts';

const help = `Usage: pibond boot IMAGE [options]

Boots an image (out/<name>.img) under qemu-system-aarch64 (-M virt, in the builder container) with
two NICs: nic0 (eth0) on the primary router's network, nic1 (eth1) on the backup router's. Each
network forwards a free host port on 127.0.0.1 to the status service and one to SSH. The image
itself stays untouched: the guest writes to a throw-away copy-on-write layer.

Interactively, the serial console is on this terminal; Ctrl-C or Ctrl-A x stops the machine.

Options:
  --test            run the failover scenario instead: unplug and replug the NICs, check the bond
                    follows, print the figures, write a JSON report; exit 0 if it passed, else 1
  --report FILE     where --test writes its report (default: out/<name>.boot-report.json, next to
                    the image); a failed run also keeps the serial log as <name>.boot-serial.log
  --timeout SECS    stop after this long (default: ${defaultTestTimeoutSeconds} with --test, none interactively)
  --flaps N         how often --test flaps the primary link (default: 10)
  -h, --help        this text
`;

export async function main(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      test: { type: 'boolean', default: false },
      report: { type: 'string' },
      timeout: { type: 'string' },
      flaps: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    process.stdout.write(help);
    return 0;
  }
  if (positionals.length !== 1) throw new UserError(`boot takes one image file, got ${positionals.length}\n\n${help}`);
  const image = positionals[0] ?? '';
  const timeoutSeconds = values.timeout === undefined ? undefined : positiveNumber('--timeout', values.timeout);
  const flaps = values.flaps === undefined ? undefined : positiveNumber('--flaps', values.flaps);
  if (values.report !== undefined && !values.test) throw new UserError('--report goes with --test');
  if (flaps !== undefined && !Number.isInteger(flaps)) throw new UserError('--flaps must be a whole number');

  return values.test ? test(image, values.report, timeoutSeconds, flaps) : interactive(image, timeoutSeconds);
}

const say = (message: string) => process.stderr.write(`${message}\n`);

async function test(image: string, reportFile: string | undefined, timeoutSeconds: number | undefined, flaps: number | undefined): Promise<number> {
  const interrupt = new AbortController();
  const onSignal = () => {
    say('Interrupted: stopping QEMU...');
    interrupt.abort(new Error('interrupted'));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const { report, reportFile: written } = await failoverTest({ image, reportFile, timeoutSeconds, flaps, say, signal: interrupt.signal });
    process.stdout.write(`\n${formatFigures(report)}\n\n${formatVerdict(report)}\nReport: ${written}\n`);
    if (report.serialLog) process.stdout.write(`Serial log: ${report.serialLog}\n`);
    if (interrupt.signal.aborted) return 130;
    return report.verdict === 'pass' ? 0 : 1;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function interactive(file: string, timeoutSeconds: number | undefined): Promise<number> {
  const image = await inspectImage(file);
  const { docker, builderImage } = await prepareHost(image, say);
  let stop: (why: string) => void = () => undefined;
  const stopped = new Promise<string>((resolve) => (stop = resolve));
  const terminal: Terminal | undefined = process.stdin.isTTY
    ? { stdin: process.stdin, stdout: process.stdout, onInterrupt: () => stop('Ctrl-C') }
    : undefined;
  const onSignal = () => stop('a signal');
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const timer = timeoutSeconds === undefined ? undefined : setTimeout(() => stop(`the timeout (${timeoutSeconds} s)`), timeoutSeconds * 1000);

  say(`Booting ${image.path} (the console follows; Ctrl-C or Ctrl-A x stops the machine)`);
  const session = await startBoot({
    docker,
    builderImage,
    image,
    // Without a terminal there are no keys to pass on: the console is only shown.
    terminal: terminal ?? { stdin: process.stdin, stdout: process.stdout, onInterrupt: () => stop('Ctrl-C') },
    say,
  });
  try {
    const [main, backup] = session.routers;
    const admin = image.manifest.definition.value.admin.name;
    say(
      `Forwarded to the guest (127.0.0.1):\n` +
        `  through the primary router (nic0, eth0): status http://127.0.0.1:${main?.status}/  ssh -p ${main?.ssh} ${admin}@127.0.0.1\n` +
        `  through the backup router  (nic1, eth1): status http://127.0.0.1:${backup?.status}/  ssh -p ${backup?.ssh} ${admin}@127.0.0.1\n` +
        `  QMP (set_link nic0 off/on): ${session.workDir}/qmp.sock`,
    );
    const why = await Promise.race([stopped, session.exited.then((exit) => `QEMU's exit (status ${exit.statusCode})`)]);
    if (terminal) releaseTerminal(terminal);
    say(`\nStopped by ${why}; the machine is gone, the image untouched.`);
    return 0;
  } finally {
    if (terminal) releaseTerminal(terminal);
    if (timer) clearTimeout(timer);
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await session.stop();
  }
}

function positiveNumber(option: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new UserError(`${option} must be a positive number, got "${text}"`);
  return value;
}
