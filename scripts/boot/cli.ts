/** `pibond boot IMAGE`: the image under QEMU with two NICs, interactively or as the failover test. */
import { parseArgs } from 'node:util';
import { type CardSettings, cardOptions, cardOptionsHelp, cardSettingsFrom } from '../lib/card.ts';
import { checkCacheVolume, defaultCacheVolume } from '../lib/docker.ts';
import { UserError, errorMessage } from '../lib/errors.ts';
import { exitCodeFor, listenForStop } from '../lib/signals.ts';
import { defaultTestTimeoutSeconds, failoverTest, prepareHost } from './failover-test.ts';
import { strictOutageMs } from './scenario.ts';
import { layoutNames } from './testbed/index.ts';
import type { Routers } from './session.ts';
import { inspectImage } from './image.ts';
import { formatFigures, formatVerdict } from './report.ts';
import { type Terminal, releaseTerminal, startBoot } from './session.ts';

const help = `Usage: pibond boot IMAGE [options]

Boots an image (out/<name>.img) under qemu-system-aarch64 (-M virt, in the builder container) with
two NICs: nic0 (eth0) on the primary router's network, nic1 (eth1) on the backup router's. Each
network forwards a free host port on 127.0.0.1 to the status service and one to SSH. The image
itself stays untouched: the guest writes to a throw-away copy-on-write layer. The image's uplink
probes (pibond-uplink) go to the test bed's documentation addresses for the boot
(pibond.uplink.targets= on the kernel command line), never to its configured targets. An image
laid onto Raspberry Pi OS or Ubuntu, whose Pi kernel cannot boot virt, boots the builder's kernel
(Debian's arm64, made once into the pibond-cache volume) with the modules the guest needs.

Interactively, the serial console is on this terminal; Ctrl-C or Ctrl-A x stops the machine.
SIGINT, SIGTERM and SIGHUP (the terminal closed) stop a boot at any stage: QEMU, its container and
its temporary files are removed, and pibond exits with 128 + the signal's number (130, 143, 129).
A boot whose pibond was killed outright (SIGKILL) is removed by the next pibond boot.

Options:
  --test            run the failover scenario instead: unplug and replug the NICs, check the bond
                    follows, print the figures, write a JSON report; exit 0 if it passed, else 1
  --report FILE     where --test writes its report (default: out/<name>.boot-report.json, next to
                    the image); a failed run also keeps the serial log as <name>.boot-serial.log
  --timeout SECS    stop after this long (default: ${defaultTestTimeoutSeconds} with --test, none interactively)
  --flaps N         how often --test flaps the primary link (default: 10)
  --routers KIND    what the NICs are plugged into (default: user):
                      user                        QEMU's user-mode networks, forwards on 127.0.0.1
                      testbed:same-subnet         a test bed of two real routers (each its own
                      testbed:different-subnets   MACs, DHCP, NAT, port forwards) and an internet
                                                  behind them, in a network-less container; the
                                                  backup on 192.168.1.1 like the main, or on
                                                  192.168.8.1. --test then leads with the outage
                                                  of every switch as seen from that internet
                                                  (only with --test)
  --scenario NAME   what --test does (default: failover):
                      failover   pull and replug the NICs' cables (above)
                      uplink     on a test bed: cut the main router's WAN, hang it, cut the
                                 backup's WAN, both, and 30% loss on the main line; the image's
                                 uplink tracking must move traffic to the backup router and back,
                                 and stay put where nothing is better
  --loss-seconds N  how long the uplink scenario keeps the main line lossy (default: 60)
  --strict-outage   with a test bed: fail unless every switch's inbound and outbound outage is at
                    most ${strictOutageMs / 1000} s
  --cache-volume NAME
                    the Docker volume that keeps the builder's kernel, for an image that boots it
                    (default: ${defaultCacheVolume}, the volume pibond build keeps its cache in)
  -h, --help        this text

An interactive boot makes an SSH key for the admin, for that boot only: it is written into the
boot's copy-on-write layer (never into the image) and its private half into the boot's temporary
directory, removed when the boot ends. pibond prints the ssh command that uses it.

${cardOptionsHelp.replace('(written to this card only', '(written into this boot only, as pibond flash writes them to a card;')}
With --test, the scenario first checks that the image applied them: the status service's host name
and address, a login with the boot's key, the card file emptied. On user-mode networks a static
--address must be in 10.0.2.0/24 (gateway 10.0.2.2, name server 10.0.2.3); the forwards follow it.
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
      routers: { type: 'string', default: 'user' },
      'strict-outage': { type: 'boolean', default: false },
      scenario: { type: 'string', default: 'failover' },
      'loss-seconds': { type: 'string' },
      'cache-volume': { type: 'string', default: defaultCacheVolume },
      ...cardOptions,
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
  const routers = parseRouters(values.routers);
  if (routers.kind === 'testbed' && !values.test) throw new UserError('--routers testbed:LAYOUT goes with --test (the test bed has no way in from this host but its prober)');
  if (values['strict-outage'] && routers.kind !== 'testbed') throw new UserError('--strict-outage goes with --routers testbed:LAYOUT (only the test bed sees the outage from outside)');

  const scenario = values.scenario;
  if (scenario !== 'failover' && scenario !== 'uplink') throw new UserError(`--scenario must be one of: failover, uplink; got "${scenario}"`);
  if (scenario === 'uplink' && (!values.test || routers.kind !== 'testbed')) throw new UserError('--scenario uplink goes with --test and --routers testbed:LAYOUT (it fails routers, which only the test bed has)');
  const lossSeconds = values['loss-seconds'] === undefined ? undefined : positiveNumber('--loss-seconds', values['loss-seconds']);
  if (lossSeconds !== undefined && scenario !== 'uplink') throw new UserError('--loss-seconds goes with --scenario uplink');

  const cacheVolume = values['cache-volume'];
  checkCacheVolume(cacheVolume);

  const card = await cardSettingsFrom(values);
  return values.test
    ? test(image, values.report, timeoutSeconds, flaps, routers, values['strict-outage'], { scenario, lossSeconds, card, cacheVolume })
    : interactive(image, timeoutSeconds, card, cacheVolume);
}

/** `user` or `testbed:LAYOUT`. */
export function parseRouters(text: string): Routers {
  if (text === 'user') return { kind: 'user' };
  const layout = layoutNames.find((name) => text === `testbed:${name}`);
  if (layout) return { kind: 'testbed', layout };
  throw new UserError(`--routers must be user or one of ${layoutNames.map((name) => `testbed:${name}`).join(', ')}, got "${text}"`);
}

const say = (message: string) => process.stderr.write(`${message}\n`);

async function test(
  image: string,
  reportFile: string | undefined,
  timeoutSeconds: number | undefined,
  flaps: number | undefined,
  routers: Routers,
  strictOutage: boolean,
  what: { scenario: 'failover' | 'uplink'; lossSeconds: number | undefined; card: CardSettings | undefined; cacheVolume: string },
): Promise<number> {
  const stop = listenForStop((signal) => say(`${signal}: stopping QEMU, removing its container and temporary files...`));
  try {
    const { report, reportFile: written } = await failoverTest({ image, reportFile, timeoutSeconds, flaps, routers, outageLimitMs: strictOutage ? strictOutageMs : undefined, ...what, say, signal: stop.signal });
    process.stdout.write(`\n${formatFigures(report)}\n\n${formatVerdict(report)}\nReport: ${written}\n`);
    if (report.serialLog) process.stdout.write(`Serial log: ${report.serialLog}\n`);
    if (stop.received) return stopped(stop.received);
    return report.verdict === 'pass' ? 0 : 1;
  } catch (err) {
    if (stop.received) return stopped(stop.received, err, stop.signal);
    throw err;
  } finally {
    stop.dispose();
  }
}

async function interactive(file: string, timeoutSeconds: number | undefined, card: CardSettings | undefined, cacheVolume: string): Promise<number> {
  let stop: (why: string) => void = () => undefined;
  const stopRequested = new Promise<string>((resolve) => (stop = resolve));
  const signals = listenForStop((signal) => stop(signal));
  const timer = timeoutSeconds === undefined ? undefined : setTimeout(() => stop(`the timeout (${timeoutSeconds} s)`), timeoutSeconds * 1000);
  try {
    const image = await inspectImage(file);
    const { docker, builderImage } = await prepareHost(image, say);
    const terminal: Terminal = { stdin: process.stdin, stdout: process.stdout, onInterrupt: () => stop('Ctrl-C') };
    say(`Booting ${image.path} (the console follows; Ctrl-C or Ctrl-A x stops the machine)`);
    const accessKey = image.manifest.card !== undefined;
    if (!accessKey) say(`${image.path} has no card slot (built by an older pibond): no SSH key for this boot; rebuild the image for one`);
    const session = await startBoot({ docker, builderImage, image, terminal, say, signal: signals.signal, card, accessKey, cacheVolume });
    try {
      const [main, backup] = session.routers.map((r) => ({ status: typeof r.status === 'number' ? r.status : 0, ssh: typeof r.ssh === 'number' ? r.ssh : 0 }));
      const admin = image.manifest.definition.value.admin.name;
      say(
        `Forwarded to the guest (127.0.0.1):\n` +
          `  through the primary router (nic0, eth0): status http://127.0.0.1:${main?.status}/  ssh -p ${main?.ssh} ${admin}@127.0.0.1\n` +
          `  through the backup router  (nic1, eth1): status http://127.0.0.1:${backup?.status}/  ssh -p ${backup?.ssh} ${admin}@127.0.0.1\n` +
          (session.accessKeyFile
            ? `  log in with this boot's key (once the guest is up):\n    ssh -i ${session.accessKeyFile} -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -p ${main?.ssh} ${admin}@127.0.0.1\n`
            : '') +
          `  QMP (set_link nic0 off/on): ${session.workDir}/qmp.sock`,
      );
      const why = await Promise.race([stopRequested, session.exited.then((exit) => `QEMU's exit (status ${exit.statusCode})`)]);
      releaseTerminal(terminal);
      say(`\nStopped by ${why}; removing the machine (the image is untouched)...`);
    } finally {
      releaseTerminal(terminal);
      await session.stop();
    }
    return signals.received ? stopped(signals.received) : 0;
  } catch (err) {
    if (signals.received) return stopped(signals.received, err, signals.signal);
    throw err;
  } finally {
    if (timer) clearTimeout(timer);
    signals.dispose();
  }
}

/**
 * The exit status after a stop signal, once the cleanups ran. The stop's own abort is no news; any
 * other error on the way out (a container the engine would not remove) is said.
 */
function stopped(signal: NodeJS.Signals, err?: unknown, aborted?: AbortSignal): number {
  if (err !== undefined && err !== aborted?.reason) say(`While stopping: ${errorMessage(err)}`);
  say(`Stopped by ${signal}.`);
  return exitCodeFor(signal);
}

function positiveNumber(option: string, text: string): number {
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new UserError(`${option} must be a positive number, got "${text}"`);
  return value;
}
