/**
 * The host's side of the test bed's prober (testbed.mjs): the host has no network into the test
 * bed, but the prober listens on a unix socket in a bind-mounted host directory, and acts on the
 * internet side for it: it fetches through the routers' port forwards (status-api's Endpoint does
 * that), reads sshd's banner, and records what a user out there sees while a switch happens.
 *
 * The outage of a switch is judged from that record alone, per direction:
 * - inbound: from the change (set_link) until the first connection answered through the router
 *   that must carry the traffic afterwards;
 * - outbound: the longest silence in the Pi's own echo requests arriving at the internet, from the
 *   last one before the change until the first one through the new router.
 * Either is null when the traffic did not come back through the new router within the window.
 */
import { request } from 'node:http';
import type { RouterName } from './index.ts';

/** What the prober recorded, all times in ms since the epoch (the host and the test bed share the kernel's clock). */
export interface Recording {
  started: number;
  now: number;
  /** Per router: when a TCP connection through its status forward was answered. */
  inbound: Record<RouterName, number[]>;
  /** Each echo request of the Pi's that reached the internet, and through which router. */
  outbound: { at: number; via: string }[];
  /** Each frame the Pi sent into a router's LAN (when the recording was given its MACs). */
  lan?: { at: number; via: string }[];
}

/** The outside figures of one switch. */
export interface Outage {
  inboundMs: number | null;
  outboundMs: number | null;
  /** The bond's own switch, seen on the wire: from the change to the Pi's first frame into the new router's LAN. */
  bondMs?: number | null;
}

export class Prober {
  constructor(readonly socketPath: string) {}

  /** The first line a TCP server behind `host:port` sends (sshd's banner), asked from the internet. */
  async banner(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<string> {
    const query = new URLSearchParams({ host, port: String(port), timeoutMs: String(timeoutMs) });
    const { line } = (await this.call('GET', `/banner?${query.toString()}`, timeoutMs + 2000, signal)) as { line: string };
    if (!line.startsWith('SSH-')) throw new Error(`not an SSH banner: ${line.slice(0, 80)}`);
    return line;
  }

  /**
   * Starts a fresh record: inbound connects every 20 ms through each router, the Pi's echo
   * requests, and the frames the NICs with these MACs send into each router's LAN.
   */
  async startRecording(macs: string[], signal?: AbortSignal): Promise<void> {
    await this.call('POST', `/record/start?macs=${encodeURIComponent(macs.join(','))}`, 10_000, signal);
  }

  async recording(signal?: AbortSignal): Promise<Recording> {
    const record = (await this.call('GET', '/record', 10_000, signal)) as Recording | null;
    if (!record) throw new Error('the prober is not recording');
    return record;
  }

  async stopRecording(signal?: AbortSignal): Promise<void> {
    await this.call('POST', '/record/stop', 10_000, signal);
  }

  private call(method: 'GET' | 'POST', path: string, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    return new Promise((resolve, reject) => {
      const req = request({ socketPath: this.socketPath, method, path, agent: false, timeout: timeoutMs, signal });
      req.on('timeout', () => req.destroy(new Error(`the test bed's prober did not answer ${method} ${path} within ${timeoutMs} ms`)));
      req.on('error', reject);
      req.on('response', (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          try {
            const body = JSON.parse(text) as { error?: string } | null;
            if (res.statusCode !== 200) reject(new Error(body?.error ?? `the prober answered ${res.statusCode}`));
            else resolve(body);
          } catch {
            reject(new Error(`the prober answered ${method} ${path} with something that is not JSON: ${text.slice(0, 80)}`));
          }
        });
      });
      req.end();
    });
  }
}

/**
 * The outage of the switch made at `changedAt` (epoch ms) towards router `to`, whose WAN address
 * is `toWan`, judged from the record up to `until` (the window's end). See the header.
 */
export function outageOf(record: Recording, changedAt: number, to: RouterName, toWan: string, until = record.now): Outage {
  const answered = record.inbound[to]?.find((at) => at >= changedAt && at <= until);
  const inboundMs = answered === undefined ? null : round(answered - changedAt);

  const arrivals = record.outbound.filter((p) => p.at <= until).sort((a, b) => a.at - b.at);
  const resumed = arrivals.find((p) => p.at > changedAt && (p.via === to || p.via === toWan));
  let outboundMs: number | null = null;
  if (resumed) {
    const before = arrivals.filter((p) => p.at <= changedAt).at(-1);
    // Pings may still arrive through the old router for a moment after the change (the bond has
    // not noticed yet): the outage is the longest silence on the way to the new router.
    const around = arrivals.filter((p) => p.at >= (before?.at ?? changedAt) && p.at <= resumed.at).map((p) => p.at);
    if (!before) around.unshift(changedAt);
    let longest = 0;
    for (let i = 1; i < around.length; i++) longest = Math.max(longest, (around[i] ?? 0) - (around[i - 1] ?? 0));
    outboundMs = round(longest);
  }
  const sent = record.lan?.find((frame) => frame.via === to && frame.at >= changedAt && frame.at <= until);
  return { inboundMs, outboundMs, bondMs: record.lan ? (sent ? round(sent.at - changedAt) : null) : undefined };
}

function round(ms: number): number {
  return Math.round(ms);
}
