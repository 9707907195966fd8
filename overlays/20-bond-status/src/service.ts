/**
 * `serve`: the monitor and the HTTP API together, listening. Kept apart from main.ts so tests can
 * run the whole service in-process on port 0.
 */
import type { AddressInfo } from 'node:net';
import { createStatusServer, type HttpLimits } from './http.ts';
import type { Journal } from './journal.ts';
import { BondMonitor } from './monitor.ts';

export interface ServiceOptions {
  root: string;
  listen: string;
  port: number;
  expectedBonds?: readonly string[];
  pollMs?: number;
  limits?: Partial<HttpLimits>;
  journal: Journal;
}

export interface RunningService {
  monitor: BondMonitor;
  /** e.g. http://127.0.0.1:8080 (IPv6 in brackets). */
  url: string;
  close(): Promise<void>;
}

export async function startService(options: ServiceOptions): Promise<RunningService> {
  const monitor = new BondMonitor({ root: options.root, expectedBonds: options.expectedBonds, pollMs: options.pollMs, uplinksEveryMs: 250, journal: options.journal });
  const http = createStatusServer(monitor, options.limits);
  await new Promise<void>((resolve, reject) => {
    http.server.once('error', reject);
    http.server.listen(options.port, options.listen, () => {
      http.server.off('error', reject);
      resolve();
    });
  });
  monitor.start();

  const address = http.server.address() as AddressInfo;
  const host = address.address.includes(':') ? `[${address.address}]` : address.address;
  const url = `http://${host}:${address.port}`;
  options.journal.info(`listening on ${url}, reading bonds under ${options.root}`);

  return {
    monitor,
    url,
    close: async () => {
      monitor.stop();
      await http.close();
    },
  };
}
