/**
 * Entry point of the bundle (/usr/lib/pibond/bond-heal.js), run by pibond-heal.service:
 *
 *   bond-heal.js --config /etc/pibond/bond-heal.json
 *
 * Listens to `ip -o monitor link neigh route address` (the kernel's events, no polling) and hands
 * each line to the healer; the effects are `ip` commands (one long-running `ip -batch`,
 * ip-shell.ts), a UDP datagram and the heals file. Failing to start either `ip` or losing it ends
 * the process with an error, and systemd restarts it.
 */
import { execFile, spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { parseArgs, promisify } from 'node:util';
import { readText, runMain } from '../../00-base/src/device.ts';
import { checkConfig } from './config.ts';
import { HealLog } from './heal-log.ts';
import { Healer, neighbourFlush, readdressCommands, type HealEffects } from './healer.ts';
import { IpShell } from './ip-shell.ts';
import { LineQueue } from './line-queue.ts';

const run = promisify(execFile);
const priorities = { warning: 4, notice: 5, info: 6 } as const;
const startCheckDelayMs = 1000;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', default: '/etc/pibond/bond-heal.json' } } });
  const file = checkConfig(JSON.parse(readFileSync(values.config ?? '', 'utf8')) as unknown, values.config ?? '');
  const log = new HealLog(file.runtime_directory);
  const socket = createSocket('udp4');
  let renewals = 0;
  socket.on('error', () => {});

  const say: HealEffects['log'] = (priority, message) => void process.stdout.write(`<${priorities[priority]}>${message}\n`);
  const shell = new IpShell((line) => say('info', `ip -batch: ${line}`));
  const effects: HealEffects = {
    now: () => performance.now(),
    wallClock: () => new Date(),
    activeSlave: (bond) => readText(`/sys/class/net/${bond}/bonding/active_slave`),
    defaultGateway: async (bond) => {
      const { stdout } = await run('ip', ['-4', 'route', 'show', 'default', 'dev', bond]).catch(() => ({ stdout: '' }));
      return /\bvia\s+(\S+)/.exec(stdout)?.[1] ?? null;
    },
    flushNeighbours: (bond) => shell.run([neighbourFlush(bond)]),
    neighbours: async (address) => {
      const { stdout } = await run('ip', ['-4', 'neigh', 'show', 'to', address]).catch(() => ({ stdout: '' }));
      return stdout.split('\n');
    },
    // The discard port: the payload is nothing, the ARP request it causes is the point.
    probe: (gateway) => socket.send(Buffer.alloc(0), 9, gateway, () => {}),
    addresses: async (bond) => {
      const { stdout } = await run('ip', ['-o', '-4', 'address', 'show', 'dev', bond, 'scope', 'global']).catch(() => ({ stdout: '' }));
      return stdout.split('\n');
    },
    readdress: (bond, change) => shell.run(readdressCommands(bond, change)),
    readFile: (path) => {
      try {
        return readFileSync(path, 'utf8');
      } catch {
        return null;
      }
    },
    // A new line each time: pibond-dhcp-renew's script tells a request made while it ran by that.
    requestRenew: (bond) => writeFileSync(join(file.runtime_directory, 'dhcp-renew'), `${bond} ${++renewals}\n`),
    record: (heal) => log.add(heal),
    setTimer: (ms, fn) => {
      const timer = setTimeout(fn, ms);
      return () => clearTimeout(timer);
    },
    log: say,
  };
  const healer = new Healer(file, effects);

  const monitor = spawn('ip', ['-o', 'monitor', 'link', 'neigh', 'route', 'address'], { stdio: ['ignore', 'pipe', 'inherit'] });
  const queue = new LineQueue(healer, file.bond, (err) => effects.log('warning', `bug: ${String(err)}`));
  createInterface({ input: monitor.stdout }).on('line', (line) => queue.push(line));
  effects.log('info', `watching ${file.bond} for failovers (${file.dhcp ? 'DHCP' : 'static addressing'})`);
  // The check of a switch made before this process listened (Healer.start), once `ip monitor` has
  // had time to subscribe: its answers arrive as monitor lines. A second is ample on a Pi and under QEMU.
  monitor.once('spawn', () => {
    setTimeout(() => {
      queue.then(() => healer.start());
    }, startCheckDelayMs);
  });
  await new Promise<void>((resolve, reject) => {
    for (const [child, what] of [[monitor, 'ip monitor'], [shell.ip, 'ip -batch']] as const) {
      child.once('error', reject);
      child.once('exit', (code, signal) => reject(new Error(`${what} ended (${signal ?? code})`)));
    }
    process.once('SIGTERM', () => {
      monitor.kill();
      shell.ip.kill();
      resolve();
    });
  });
}

runMain('bond-heal', main);
