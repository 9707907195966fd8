/**
 * `bond-status` in a terminal. It reads /proc and /sys itself rather than asking the service:
 * an operator runs it exactly when something is wrong, and that includes the service being down,
 * failed or sandboxed away. Only the failover history lives solely in the service's memory, so it
 * is asked for that, briefly, and the command says so when it does not answer. Uplink tracking is
 * pibond-uplink's file in /run, read here directly too.
 */
import { get } from 'node:http';
import type { FailoverEvent } from './failover.ts';
import { describeLinkMonitor } from './link-monitor.ts';
import { readBonds, type BondReading } from './read-bonds.ts';
import type { StatusDocument } from './status.ts';
import { explainActiveSlave, uplinkCells } from './uplink-summary.ts';
import { readUplinks, type UplinksFile } from './uplinks.ts';

export interface ServiceView {
  url: string;
  status: StatusDocument | null;
  events: FailoverEvent[] | null;
}

export interface TerminalOptions {
  root: string;
  expectedBonds: readonly string[];
  /** The local service's base URL. */
  serviceUrl: string;
  write: (text: string) => void;
}

/** Exit code 0 when every bond could be read, 1 otherwise (handy in scripts and health checks). */
export async function printStatus(options: TerminalOptions): Promise<number> {
  const { readings, note } = readBonds(options.root, options.expectedBonds);
  const [status, events] = await Promise.all([getJson(`${options.serviceUrl}/api/status`), getJson(`${options.serviceUrl}/api/events`)]);
  options.write(
    formatStatus(readings, {
      url: options.serviceUrl,
      status: isStatus(status) ? status : null,
      events: isEvents(events) ? events.events : null,
    }, note, readUplinks(options.root)),
  );
  return readings.every((reading) => reading.ok) ? 0 : 1;
}

export function formatStatus(readings: readonly BondReading[], service: ServiceView, note: string | null = null, uplinks: UplinksFile | null = null): string {
  const lines: string[] = [];
  if (readings.length === 0) lines.push('No bonds (is the bonding driver loaded? /proc/net/bonding is empty).');
  if (note !== null) lines.push(`Note: ${note}.`, '');
  for (const reading of readings) {
    if (!reading.ok) {
      lines.push(`${reading.name}: ERROR ${reading.error}`, '');
      continue;
    }
    const bond = reading.bond;
    lines.push(
      `${bond.name}: ${bond.mode}, MII ${bond.mii_status ?? '?'}, ${describeLinkMonitor(bond)}`,
      `  active slave: ${bond.active_slave ?? 'NONE'}    primary: ${bond.primary ?? 'none'}${bond.primary_reselect ? ` (reselect ${bond.primary_reselect})` : ''}`,
    );
    const tracking = uplinks?.bond === bond.name ? uplinks : null;
    const why = explainActiveSlave({ ...bond, uplinks: tracking });
    if (why !== null) lines.push(`  why: ${why}`);
    const history = service.status?.bonds.find((b) => b.name === bond.name);
    if (history) {
      const last = history.last_failover;
      lines.push(
        `  failovers since the service started: ${history.failovers}` +
          (last && history.seconds_since_last_failover !== null
            ? `, last ${formatAge(history.seconds_since_last_failover)} ago: ${last.from ?? 'none'} -> ${last.to ?? 'none'} (${last.cause})`
            : ''),
      );
    }
    lines.push(
      ...table([
        ['', 'SLAVE', 'STATE', 'MII', 'CARRIER', 'SPEED', 'DUPLEX', 'FAILURES', 'PERMANENT MAC'],
        ...bond.slaves.map((s) => [
          s.name === bond.active_slave ? '*' : '',
          s.name,
          s.state ?? '-',
          s.mii_status ?? '-',
          s.carrier === null ? '-' : s.carrier ? 'yes' : 'no',
          s.speed_mbps === null ? 'unknown' : `${s.speed_mbps} Mbps`,
          s.duplex ?? 'unknown',
          String(s.link_failure_count ?? '-'),
          s.perm_hwaddr ?? '-',
        ]),
      ]).map((line) => `  ${line}`),
    );
    if (tracking !== null) {
      lines.push(`  uplinks (pibond-uplink, targets ${tracking.targets.join(', ') || 'none'}):`);
      lines.push(...table([['SLAVE', 'UPLINK', 'ROUTER', 'TARGETS', 'NOTE'], ...tracking.uplinks.map(uplinkCells)]).map((line) => `    ${line}`));
    }
    lines.push('');
  }

  if (service.events === null) {
    lines.push(`Failover history: the service at ${service.url} did not answer (systemctl status bond-status).`);
  } else if (service.events.length === 0) {
    lines.push('No failovers since the service started.');
  } else {
    lines.push('Recent failovers (oldest first):');
    for (const event of service.events.slice(-10)) {
      lines.push(`  ${event.time}  ${event.bond}  ${event.from ?? 'none'} -> ${event.to ?? 'none'}  ${event.cause}${event.reason === undefined ? '' : ` (uplinks: ${event.reason})`}`);
    }
  }
  return `${lines.join('\n')}\n`;
}

function table(rows: string[][]): string[] {
  const widths: number[] = [];
  for (const row of rows) row.forEach((cell, i) => (widths[i] = Math.max(widths[i] ?? 0, cell.length)));
  return rows.map((row) => row.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ').trimEnd());
}

function formatAge(seconds: number): string {
  if (seconds < 120) return `${Math.round(seconds)} s`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86_400)} days`;
}

/** The service is local: if it has not answered in half a second, it is not going to help. */
function getJson(url: string, timeoutMs = 500): Promise<unknown> {
  return new Promise((resolve) => {
    const req = get(url, { timeout: timeoutMs }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve(null);
        return;
      }
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        try {
          resolve(JSON.parse(body));
        } catch {
          resolve(null);
        }
      });
      res.on('error', () => resolve(null));
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => resolve(null));
  });
}

function isStatus(value: unknown): value is StatusDocument {
  return typeof value === 'object' && value !== null && Array.isArray((value as { bonds?: unknown }).bonds);
}

function isEvents(value: unknown): value is { events: FailoverEvent[] } {
  return typeof value === 'object' && value !== null && Array.isArray((value as { events?: unknown }).events);
}
