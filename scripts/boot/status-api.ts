/**
 * The guest's status service, as seen from the host through one router's port forward: GET with a
 * fresh connection each time (a kept-alive socket would hide which path answered) and a hard
 * deadline, answers checked against the documented shape.
 */
import { request } from 'node:http';
import { z } from 'zod';

const slaveSchema = z.object({
  name: z.string(),
  mii_status: z.string(),
  state: z.string().nullable().optional(),
  link_failure_count: z.number().nullable().optional(),
  speed_mbps: z.number().nullable().optional(),
});

/** pibond-uplink's view of each uplink, as bond-status serves it (overlays/16-bond-uplink/src/report.ts). */
const uplinkSchema = z.object({
  slave: z.string(),
  state: z.enum(['up', 'down', 'unknown']),
  cause: z.enum(['router', 'line']).nullable(),
  note: z.string().nullable().optional(),
  router: z.object({ address: z.string().nullable(), mac: z.string().nullable(), rtt_ms: z.number().nullable() }),
  targets: z.array(z.object({ address: z.string(), rtt_ms: z.number().nullable() })),
  rounds: z.object({ ok: z.number(), failed: z.number() }),
});

const uplinksSchema = z.object({
  preferred: z.string().nullable(),
  reason: z.string(),
  uplinks: z.array(uplinkSchema),
  decision_counts: z.record(z.string(), z.number()),
  probe_bytes: z.record(z.string(), z.number()),
});

const bondSchema = z.object({
  name: z.string(),
  /** Absent from images built before it was reported. */
  addresses: z.array(z.string()).optional(),
  mode: z.string().optional(),
  active_slave: z.string().nullable().optional(),
  primary: z.string().nullable().optional(),
  failovers: z.number(),
  slaves: z.array(slaveSchema).optional(),
  error: z.string().optional(),
  /** null or absent: the image tracks no uplinks. */
  uplinks: uplinksSchema.nullable().optional(),
});

export const statusSchema = z.object({
  /** Absent from images built before it was reported. */
  hostname: z.string().optional(),
  uptime_seconds: z.number(),
  /** Absent from images built before it was reported. */
  boot_finished: z.boolean().optional(),
  bonds: z.array(bondSchema),
});

export const eventsSchema = z.object({
  events: z.array(
    z.object({
      time: z.string(),
      bond: z.string(),
      from: z.string().nullable(),
      to: z.string().nullable(),
      cause: z.string(),
      /** pibond-heal's measure of the switch, once it healed (null: not yet, or never). */
      heal_ms: z.number().nullable().optional(),
      /** flush, reuse (a router's remembered lease) or renew (a new DHCP lease). */
      heal_action: z.string().optional(),
      /** healed, not_healed or superseded: absent while no heal was recorded for the switch. */
      heal_outcome: z.string().optional(),
    }),
  ),
});

export type Status = z.output<typeof statusSchema>;
export type BondState = z.output<typeof bondSchema>;
export type UplinkView = z.output<typeof uplinksSchema>;
export type FailoverEvent = z.output<typeof eventsSchema>['events'][number];

/**
 * Where the service is asked: a port on the host's loopback (a user-mode network's forward), or an
 * address on the test bed's internet, asked through the test bed's prober (a forward proxy on a
 * unix socket; it makes a fresh connection from the internet side for each request).
 */
export type Endpoint = number | { socketPath: string; host: string; port: number };

/** An endpoint in words: `127.0.0.1:8080`, or `198.51.100.2:8080 (from the test bed's internet)`. */
export function describeEndpoint(endpoint: Endpoint): string {
  return typeof endpoint === 'number' ? `127.0.0.1:${endpoint}` : `${endpoint.host}:${endpoint.port} (from the test bed's internet)`;
}

/** No answer came (refused, reset, timed out): unlike a wrong answer, worth asking again. */
export class NoAnswer extends Error {
  override name = 'NoAnswer';
}

/**
 * GETs `path` from the endpoint and parses the JSON answer; rejects on any error or after
 * `timeoutMs`, with NoAnswer when nothing (or no whole answer) came back.
 */
export function getJson(endpoint: Endpoint, path: string, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
  const where =
    typeof endpoint === 'number'
      ? { host: '127.0.0.1', port: endpoint, path }
      : { socketPath: endpoint.socketPath, path: `http://${endpoint.host}:${endpoint.port}${path}` };
  return new Promise((resolve, reject) => {
    const req = request({ ...where, agent: false, headers: { Connection: 'close', 'x-timeout-ms': String(timeoutMs) }, timeout: timeoutMs, signal });
    const timer = setTimeout(() => req.destroy(new NoAnswer(`no answer within ${timeoutMs} ms`)), timeoutMs);
    req.on('timeout', () => req.destroy(new NoAnswer(`no answer within ${timeoutMs} ms`)));
    req.on('error', (err) => {
      clearTimeout(timer);
      reject(signal?.aborted || err instanceof NoAnswer ? err : new NoAnswer(err.message, { cause: err }));
    });
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (chunk: Buffer) => chunks.push(chunk));
      res.on('error', (err) => reject(err instanceof NoAnswer ? err : new NoAnswer(err.message, { cause: err })));
      res.on('end', () => {
        clearTimeout(timer);
        if (res.statusCode !== 200) {
          const why = res.headers['x-prober-error'] ? `: ${Buffer.concat(chunks).toString('utf8').trim()}` : '';
          reject(new Error(`GET ${path} answered ${res.statusCode}${why}`));
          return;
        }
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')));
        } catch {
          reject(new Error(`GET ${path} answered with something that is not JSON`));
        }
      });
    });
    req.end();
  });
}

export async function getStatus(port: Endpoint, timeoutMs: number, signal?: AbortSignal): Promise<Status> {
  return statusSchema.parse(await getJson(port, '/api/status', timeoutMs, signal));
}

export async function getEvents(port: Endpoint, timeoutMs: number, signal?: AbortSignal): Promise<FailoverEvent[]> {
  return eventsSchema.parse(await getJson(port, '/api/events', timeoutMs, signal)).events;
}

/** The bond called `name` in a status answer, or undefined. */
export function bondIn(status: Status, name: string): BondState | undefined {
  return status.bonds.find((bond) => bond.name === name);
}

/** The uplink tracking of the bond called `name`; null when the image tracks none. */
export function uplinksIn(status: Status, name: string): UplinkView | null {
  return bondIn(status, name)?.uplinks ?? null;
}
