/**
 * The Perl probe helper (/usr/lib/pibond/uplink-probe), one process per slave, driven over its
 * stdin and stdout: Node has no packet sockets, the helper has. The protocol is in the helper's
 * header: `probe ID SRC_MAC SRC_IP ROUTER_IP TIMEOUT_MS COUNT TARGET...` in, `result ID ...` out.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';

export const helperPath = '/usr/lib/pibond/uplink-probe';

export interface ProbeRequest {
  sourceMac: string;
  source: string;
  router: string;
  timeoutMs: number;
  count: number;
  targets: string[];
}

export interface ProbeResult {
  routerMac: string | null;
  routerRttMs: number | null;
  targets: { address: string; rtt_ms: number | null }[];
  /** Ethernet bytes sent and received for this probe. */
  bytes: number;
}

/** Parses `result ID MAC|- RTT|- TARGET=RTT|TARGET=- ... BYTES`; null when it is not one. */
export function parseResult(line: string): { id: number; result: ProbeResult } | null {
  const words = line.trim().split(/\s+/);
  if (words[0] !== 'result' || words.length < 5) return null;
  const id = Number(words[1]);
  const bytes = Number(words[words.length - 1]);
  if (!Number.isInteger(id) || !Number.isInteger(bytes)) return null;
  const number = (word: string | undefined) => (word === undefined || word === '-' ? null : Number(word));
  const targets = words.slice(4, -1).map((word) => {
    const [address = '', rtt] = word.split('=');
    return { address, rtt_ms: number(rtt) };
  });
  return { id, result: { routerMac: words[2] === '-' ? null : (words[2] ?? null), routerRttMs: number(words[3]), targets, bytes } };
}

/**
 * One helper for one slave. `probe` resolves with the helper's answer, or rejects when the helper
 * died or said `error`/`fatal`; the caller counts that round as not probed and starts a new helper.
 */
export class ProbeHelper {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly pending = new Map<number, { resolve: (r: ProbeResult) => void; reject: (e: Error) => void }>();
  private nextId = 1;
  private ended: Error | null = null;
  readonly ready: Promise<string>;

  constructor(
    readonly dev: string,
    command: string[] = ['/usr/bin/perl', helperPath],
  ) {
    const [program = '', ...args] = command;
    this.child = spawn(program, [...args, dev], { stdio: ['pipe', 'pipe', 'pipe'] });
    let readyResolve: (mac: string) => void = () => {};
    let readyReject: (err: Error) => void = () => {};
    this.ready = new Promise<string>((resolve, reject) => {
      readyResolve = resolve;
      readyReject = reject;
    });
    this.ready.catch(() => {});
    const stderr: string[] = [];
    createInterface({ input: this.child.stderr }).on('line', (line) => {
      stderr.push(line);
      if (stderr.length > 5) stderr.shift();
    });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const words = line.trim().split(/\s+/);
      if (words[0] === 'ready') readyResolve(words[2] ?? '');
      else if (words[0] === 'fatal') this.end(new Error(`uplink-probe ${dev}: ${words.slice(1).join(' ')}`), readyReject);
      else if (words[0] === 'error') this.settle(Number(words[1]), new Error(`uplink-probe ${dev}: ${words.slice(2).join(' ')}`));
      else {
        const parsed = parseResult(line);
        if (parsed !== null) this.settle(parsed.id, parsed.result);
      }
    });
    this.child.on('error', (err) => this.end(err, readyReject));
    this.child.on('exit', (code, signal) => {
      const said = stderr.length > 0 ? `: ${stderr.join('; ')}` : '';
      this.end(new Error(`uplink-probe ${dev} ended (${signal ?? code})${said}`), readyReject);
    });
    this.child.stdin.on('error', () => {});
  }

  get alive(): boolean {
    return this.ended === null;
  }

  probe(request: ProbeRequest): Promise<ProbeResult> {
    if (this.ended !== null) return Promise.reject(this.ended);
    const id = this.nextId++;
    const line = ['probe', id, request.sourceMac, request.source, request.router, Math.round(request.timeoutMs), request.count, ...request.targets].join(' ');
    return new Promise<ProbeResult>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.child.stdin.write(`${line}\n`);
    });
  }

  stop(): void {
    this.child.stdin.end();
    this.child.kill();
  }

  private settle(id: number, outcome: ProbeResult | Error): void {
    const waiting = this.pending.get(id);
    if (waiting === undefined) return;
    this.pending.delete(id);
    if (outcome instanceof Error) waiting.reject(outcome);
    else waiting.resolve(outcome);
  }

  private end(err: Error, readyReject: (err: Error) => void): void {
    if (this.ended !== null) return;
    this.ended = err;
    readyReject(err);
    for (const waiting of this.pending.values()) waiting.reject(err);
    this.pending.clear();
  }
}
