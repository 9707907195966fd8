/**
 * Reads every bond on the machine (or under a fake root in tests) into one snapshot.
 *
 * /proc/net/bonding/<bond> carries almost everything in one read; sysfs adds what it lacks: the
 * mode's short name, primary_reselect when there is no primary, and per slave its bonding state,
 * carrier and operstate. The reads are synchronous on purpose: these are kernel-generated files of
 * a few hundred bytes, served from memory in microseconds, and this runs 20 times a second, where
 * a thread-pool round trip per file (open, stat, read, close) would cost more than the reads.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseProcBonding } from './proc-bonding.ts';

export interface SlaveStatus {
  name: string;
  mii_status: string | null;
  carrier: boolean | null;
  speed_mbps: number | null;
  duplex: string | null;
  link_failure_count: number | null;
  perm_hwaddr: string | null;
  state: 'active' | 'backup' | null;
  operstate: string | null;
}

export interface BondStatus {
  name: string;
  mode: string;
  mii_status: 'up' | 'down' | null;
  miimon_ms: number | null;
  primary: string | null;
  primary_reselect: string | null;
  active_slave: string | null;
  slaves: SlaveStatus[];
}

/** One bond as read: its status, or why it could not be read (the service keeps running either way). */
export type BondReading = { ok: true; bond: BondStatus } | { ok: false; name: string; error: string };

export function bondName(reading: BondReading): string {
  return reading.ok ? reading.bond.name : reading.name;
}

/** The kernel's long mode names in /proc, mapped to the short names sysfs and ifupdown use. */
const modeNames: Record<string, string> = {
  'load balancing (round-robin)': 'balance-rr',
  'fault-tolerance (active-backup)': 'active-backup',
  'load balancing (xor)': 'balance-xor',
  'fault-tolerance (broadcast)': 'broadcast',
  'IEEE 802.3ad Dynamic link aggregation': '802.3ad',
  'transmit load balancing': 'balance-tlb',
  'adaptive load balancing': 'balance-alb',
};

const interfaceName = /^[^\s/:]{1,15}$/;

/**
 * Every bond under `root`, sorted by name. `expected` bonds (from the image definition) that do not
 * exist are reported as errors, so an operator sees "bond0 is missing" rather than an empty list.
 */
export function readBonds(root: string, expected: readonly string[] = []): BondReading[] {
  const present = listBonds(root);
  const names = [...new Set([...present, ...expected])].sort();
  return names.map((name) =>
    present.includes(name) ? readBond(root, name) : { ok: false, name, error: `${name} does not exist (no /proc/net/bonding/${name})` },
  );
}

function listBonds(root: string): string[] {
  try {
    // Only names that are interface names are ever joined into a path.
    return readdirSync(join(root, 'proc/net/bonding')).filter((name) => interfaceName.test(name));
  } catch {
    // No bonding driver loaded: no bonds.
    return [];
  }
}

export function readBond(root: string, name: string): BondReading {
  const report = readText(join(root, 'proc/net/bonding', name));
  if (report === null) return { ok: false, name, error: `cannot read /proc/net/bonding/${name}` };
  const parsed = parseProcBonding(report);
  if (!parsed.ok) return { ok: false, name, error: `/proc/net/bonding/${name}: ${parsed.error}` };
  const proc = parsed.bond;

  const bondSys = join(root, 'sys/class/net', name, 'bonding');
  const sysfsMode = firstWord(readText(join(bondSys, 'mode')));
  const sysfsReselect = firstWord(readText(join(bondSys, 'primary_reselect')));

  const slaves = proc.slaves.map((slave): SlaveStatus => {
    const slaveSys = join(root, 'sys/class/net', slave.name);
    const state = readText(join(slaveSys, 'bonding_slave/state'));
    const carrier = readText(join(slaveSys, 'carrier'));
    return {
      name: slave.name,
      mii_status: slave.miiStatus ?? readText(join(slaveSys, 'bonding_slave/mii_status')),
      carrier: carrier === '1' ? true : carrier === '0' ? false : null,
      // Old kernels print neither Speed nor Duplex; sysfs then answers, with -1 and "unknown" for Unknown.
      speed_mbps: slave.speedMbps ?? positive(readText(join(slaveSys, 'speed'))),
      duplex: slave.duplex ?? knownDuplex(readText(join(slaveSys, 'duplex'))),
      link_failure_count: slave.linkFailureCount,
      perm_hwaddr: slave.permHwaddr,
      state: state === 'active' || state === 'backup' ? state : proc.activeSlave === null ? null : slave.name === proc.activeSlave ? 'active' : 'backup',
      operstate: readText(join(slaveSys, 'operstate')),
    };
  });

  return {
    ok: true,
    bond: {
      name,
      mode: sysfsMode ?? modeNames[proc.mode] ?? proc.mode,
      mii_status: proc.miiStatus,
      miimon_ms: proc.miimonMs,
      primary: proc.primary,
      primary_reselect: proc.primaryReselect ?? sysfsReselect,
      active_slave: proc.activeSlave,
      slaves,
    },
  };
}

/** A file's text without the trailing newline; null when it is missing or the kernel refuses (EINVAL on a down link). */
function readText(path: string): string | null {
  try {
    return readFileSync(path, 'latin1').trim();
  } catch {
    return null;
  }
}

/** sysfs writes `active-backup 1`, `always 0`: the name, then the number. */
function firstWord(text: string | null): string | null {
  const word = text?.split(/\s+/)[0];
  return word ? word : null;
}

function positive(text: string | null): number | null {
  if (text === null || !/^\d{1,10}$/.test(text)) return null;
  const value = Number(text);
  return value > 0 ? value : null;
}

function knownDuplex(text: string | null): string | null {
  return text === 'full' || text === 'half' ? text : null;
}
