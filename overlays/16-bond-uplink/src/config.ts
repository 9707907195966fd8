/**
 * /etc/pibond/bond-uplink.json, written by render.ts from the image definition's `uplink:` section.
 * Checked by hand: the bundle runs on the device's bare nodejs (no zod there). The definition's
 * schema has already said what is allowed to the user; this check only keeps a hand-edited or
 * truncated file from starting a service that would probe nonsense.
 */
import { isIPv4 } from 'node:net';

export interface UplinkConfigFile {
  bond: string;
  /** The configured primary (bond.primary): preferred whenever its uplink is not down. */
  primary: string;
  /** The bond's slaves in the definition's order: among healthy backups, the first wins. */
  slaves: string[];
  /** The router's IPv4 address on each slave's side, where the definition says (bond.slaves[].gateway). */
  gateways: Record<string, string>;
  /** Where the echo requests go, through the router. */
  targets: string[];
  method: 'icmp';
  /** Echo requests per target per round. */
  count: number;
  /** Targets that must answer for a round to count as good. */
  reliability: number;
  /** From one round's start to the next while the uplink is healthy. */
  interval_ms: number;
  /** The same while the last round failed or the uplink is down. */
  failure_interval_ms: number;
  /** How long a round waits for the router and the targets. */
  timeout_ms: number;
  /** Failed rounds in a row that take an uplink down. */
  down: number;
  /** Good rounds in a row that bring it back. */
  up: number;
  /** Where uplinks.json goes: the unit's RuntimeDirectory. */
  runtime_directory: string;
}

const interfaceName = /^[A-Za-z0-9_.-]{1,15}$/;

export function checkConfig(raw: unknown, source: string): UplinkConfigFile {
  const bad = (field: string, what: string) => new Error(`${source}: ${field} ${what}`);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error(`${source}: must be a JSON object`);
  const c = raw as Record<string, unknown>;

  const name = (field: string, value: unknown): string => {
    if (typeof value !== 'string' || !interfaceName.test(value)) throw bad(field, 'must be an interface name');
    return value;
  };
  const whole = (field: string, min: number, max = Number.MAX_SAFE_INTEGER): number => {
    const value = c[field];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw bad(field, `must be a whole number from ${min}${max === Number.MAX_SAFE_INTEGER ? '' : ` to ${max}`}`);
    return value;
  };

  const bond = name('bond', c.bond);
  if (!Array.isArray(c.slaves) || c.slaves.length < 2) throw bad('slaves', 'must list at least two interface names');
  const slaves = c.slaves.map((slave, i) => name(`slaves[${i}]`, slave));
  const primary = name('primary', c.primary);
  if (!slaves.includes(primary)) throw bad('primary', `must be one of the slaves (${slaves.join(', ')})`);

  const gateways = c.gateways ?? {};
  if (gateways === null || typeof gateways !== 'object' || Array.isArray(gateways)) throw bad('gateways', 'must map slaves to IPv4 addresses');
  for (const [slave, gateway] of Object.entries(gateways)) {
    if (!slaves.includes(slave)) throw bad(`gateways.${slave}`, `must be one of the slaves (${slaves.join(', ')})`);
    if (typeof gateway !== 'string' || !isIPv4(gateway)) throw bad(`gateways.${slave}`, 'must be an IPv4 address');
  }

  if (!Array.isArray(c.targets) || c.targets.length === 0) throw bad('targets', 'must list at least one IPv4 address');
  const targets = c.targets.map((target, i) => {
    if (typeof target !== 'string' || !isIPv4(target)) throw bad(`targets[${i}]`, 'must be an IPv4 address');
    return target;
  });
  if (c.method !== 'icmp') throw bad('method', 'must be "icmp"');
  const count = whole('count', 1);
  const reliability = whole('reliability', 1, targets.length);
  const interval = whole('interval_ms', 1);
  const failureInterval = whole('failure_interval_ms', 1, interval);
  const timeout = whole('timeout_ms', 1);
  const down = whole('down', 1);
  const up = whole('up', 1);
  if (typeof c.runtime_directory !== 'string' || !c.runtime_directory.startsWith('/')) throw bad('runtime_directory', 'must be an absolute path');

  return {
    bond,
    primary,
    slaves,
    gateways: { ...(gateways as Record<string, string>) },
    targets,
    method: 'icmp',
    count,
    reliability,
    interval_ms: interval,
    failure_interval_ms: failureInterval,
    timeout_ms: timeout,
    down,
    up,
    runtime_directory: c.runtime_directory,
  };
}
