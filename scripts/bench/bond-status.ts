/**
 * Benchmark of the bond-status service as the device runs it: the bundle render() makes, started
 * with plain node in its own process against the recorded /proc and /sys tree, driven over
 * keep-alive connections from this process.
 *
 * Goals (issue 4): at least 5,000 GET /api/status per second with p99 under 10 ms, and the
 * service under 60 MB resident (peak, VmHWM). The idle CPU figure is the cost of polling the bond
 * files 20 times a second with no requests at all.
 *
 * Then the same load against a runaway report (issue 8: a 20,000-slave file once stalled the API
 * at 97 MB): the service refuses it at its read limit, so the figures should stay the same.
 *
 *   npx tsx scripts/bench/bond-status.ts [--node PATH]
 *
 * --node runs the service under another node binary, e.g. Debian bookworm's node 18 as on the device.
 */
import { execFileSync, spawn } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { bundle } from '../../overlays/20-bond-status/render.ts';

const recordedRoot = join(import.meta.dirname, '../../test/bond-status/fixtures/recorded');
const unitFile = join(import.meta.dirname, '../../overlays/20-bond-status/rootfs/usr/lib/systemd/system/bond-status.service');
const connections = 16;
const warmupMs = 1_000;
const measureMs = 5_000;
const idleMs = 2_000;
const runawayMs = 2_000;
const runawaySlaves = 20_000;

export async function benchBondStatus(node = process.execPath): Promise<Record<string, number | string>> {
  const dir = mkdtempSync(join(tmpdir(), 'bench-bond-status-'));
  const script = join(dir, 'bond-status.js');
  writeFileSync(script, await bundle());
  // The node options the unit gives the service on the device, so the memory figure is the device's.
  const nodeOptions = /^Environment="?NODE_OPTIONS=([^"\n]*)"?$/m.exec(readFileSync(unitFile, 'utf8'))?.[1] ?? '';
  try {
    const figures: Record<string, number | string> = {
      'bond-status target': 'GET /api/status, recorded bond0 tree, bundle under plain node',
      'bond-status node': `${execFileSync(node, ['--version'], { encoding: 'utf8' }).trim()} ${nodeOptions}`.trim(),
      'bond-status connections': connections,
    };

    await withService(node, script, recordedRoot, nodeOptions, async (url, pid) => {
      const idleCpu = await cpuPercent(pid, idleMs);
      const idleRss = kilobytes(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmRSS');
      const agent = new Agent({ keepAlive: true, maxSockets: connections });
      await load(`${url}/api/status`, agent, warmupMs);
      const { count, latencies, elapsedMs } = await load(`${url}/api/status`, agent, measureMs);
      agent.destroy();

      latencies.sort((a, b) => a - b);
      const memory = readFileSync(`/proc/${pid}/status`, 'utf8');
      figures['bond-status requests/s'] = Math.round((count / elapsedMs) * 1000);
      figures['bond-status p50 ms'] = round(percentile(latencies, 0.5));
      figures['bond-status p99 ms'] = round(percentile(latencies, 0.99));
      figures['bond-status max ms'] = round(latencies.at(-1) ?? 0);
      figures['bond-status idle RSS MB'] = round(idleRss / 1024);
      figures['bond-status peak RSS MB'] = round(kilobytes(memory, 'VmHWM') / 1024);
      figures['bond-status idle CPU % (polling 20/s)'] = round(idleCpu);
    });

    const runawayRoot = join(dir, 'runaway');
    cpSync(recordedRoot, runawayRoot, { recursive: true });
    writeFileSync(join(runawayRoot, 'proc/net/bonding/bond0'), runawayReport(runawaySlaves));
    await withService(node, script, runawayRoot, nodeOptions, async (url, pid) => {
      const agent = new Agent({ keepAlive: true, maxSockets: connections });
      await load(`${url}/api/status`, agent, warmupMs);
      const { count, elapsedMs } = await load(`${url}/api/status`, agent, runawayMs);
      agent.destroy();
      figures[`bond-status ${runawaySlaves} slaves: requests/s`] = Math.round((count / elapsedMs) * 1000);
      figures[`bond-status ${runawaySlaves} slaves: peak RSS MB`] = round(kilobytes(readFileSync(`/proc/${pid}/status`, 'utf8'), 'VmHWM') / 1024);
    });
    return figures;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Runs the bundle's service over `root` for the length of `work`, then stops it. */
async function withService(node: string, script: string, root: string, nodeOptions: string, work: (url: string, pid: number) => Promise<void>): Promise<void> {
  const service = spawn(node, [script, 'serve', '--root', root, '--listen', '127.0.0.1', '--port', '0'], {
    stdio: ['ignore', 'pipe', 'inherit'],
    env: { ...process.env, NODE_OPTIONS: nodeOptions },
  });
  try {
    await work(await listeningUrl(service.stdout), service.pid ?? 0);
  } finally {
    service.kill('SIGTERM');
  }
}

/** bond0's report with `slaves` slaves, as the kernel would print it: megabytes of it. */
function runawayReport(slaves: number): string {
  let text = 'Ethernet Channel Bonding Driver: v6.1.0-50-arm64\n\nBonding Mode: fault-tolerance (active-backup)\nPrimary Slave: eth0 (primary_reselect always)\nCurrently Active Slave: eth0\nMII Status: up\nMII Polling Interval (ms): 100\n';
  for (let i = 0; i < slaves; i++) {
    const mac = `52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}`;
    text += `\nSlave Interface: eth${i}\nMII Status: up\nSpeed: 1000 Mbps\nDuplex: full\nLink Failure Count: 0\nPermanent HW addr: ${mac}\nSlave queue ID: 0\n`;
  }
  return text;
}

/** `connections` loops, each sending its next request as soon as the last answer is read. */
async function load(url: string, agent: Agent, durationMs: number): Promise<{ count: number; latencies: number[]; elapsedMs: number }> {
  const latencies: number[] = [];
  const started = performance.now();
  const end = started + durationMs;
  const loop = async () => {
    while (performance.now() < end) {
      const sent = performance.now();
      await get(url, agent);
      latencies.push(performance.now() - sent);
    }
  };
  await Promise.all(Array.from({ length: connections }, loop));
  return { count: latencies.length, latencies, elapsedMs: performance.now() - started };
}

function get(url: string, agent: Agent): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent }, (res) => {
      if (res.statusCode !== 200) reject(new Error(`${url}: HTTP ${res.statusCode}`));
      res.resume();
      res.on('end', resolve);
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end();
  });
}

function listeningUrl(stdout: NodeJS.ReadableStream): Promise<string> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(() => reject(new Error(`the service did not start: ${output}`)), 10_000);
    stdout.setEncoding('utf8');
    stdout.on('data', (chunk: string) => {
      output += chunk;
      const url = /listening on (http:\/\/\S+),/.exec(output)?.[1];
      if (url) {
        clearTimeout(timer);
        resolve(url);
      }
    });
  });
}

/** CPU time the process used over `ms`, as a percentage of one core (utime + stime from /proc/PID/stat). */
async function cpuPercent(pid: number, ms: number): Promise<number> {
  const ticks = () => {
    // The command name in field 2 may hold spaces; the fields after its ')' are fixed.
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]?.split(' ') ?? [];
    return Number(fields[11]) + Number(fields[12]);
  };
  const clockTicks = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
  const before = ticks();
  await new Promise((resolve) => setTimeout(resolve, ms));
  return ((ticks() - before) / clockTicks / (ms / 1000)) * 100;
}

function kilobytes(status: string, field: string): number {
  const match = new RegExp(`^${field}:\\s+(\\d+) kB$`, 'm').exec(status);
  if (!match) throw new Error(`no ${field} in /proc/PID/status`);
  return Number(match[1]);
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? 0;
}

function round(value: number): number {
  return Math.round(value * 100) / 100;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const { values } = parseArgs({ options: { node: { type: 'string' } } });
  const figures = await benchBondStatus(values.node);
  for (const [name, value] of Object.entries(figures)) console.log(`${name}: ${value}`);
}
