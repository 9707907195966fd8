/**
 * Reads every bond on the machine (or under a fake root in tests) into one snapshot.
 *
 * /proc/net/bonding/<bond> carries almost everything in one read; sysfs adds what it lacks: the
 * mode's short name, primary_reselect when there is no primary, and per slave its bonding state,
 * carrier and operstate. The reads are synchronous on purpose: these are kernel-generated files of
 * a few hundred bytes, served from memory in microseconds, and this runs 20 times a second, where
 * a thread-pool round trip per file (open, stat, read, close) would cost more than the reads.
 *
 * Synchronous reads must never wait, so every read is bounded and opened non-blocking: a FIFO or
 * device where a bonding file should be is refused (a blocking open of a FIFO would freeze the whole
 * service), and so is a file larger than any real report, or a directory of more bonds than a
 * device has. A refusal is a note in the status, never a crash or a stall.
 */
import { closeSync, constants, fstatSync, openSync, opendirSync, readSync } from 'node:fs';
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
  /** The ARP monitor, the other way the kernel watches links: 0 or null when it is off. */
  arp_interval_ms: number | null;
  arp_targets: string[];
  slaves: SlaveStatus[];
}

/**
 * One bond as read: its status, or why it could not be read (the service keeps running either way).
 * `missing` tells a bond that does not exist from one that exists but could not be read this time.
 */
export type BondReading = { ok: true; bond: BondStatus } | { ok: false; name: string; error: string; missing?: boolean };

/** Every bond read at one moment, and a note when some were left out (more bonds than the limit). */
export interface BondsReport {
  readings: BondReading[];
  note: string | null;
}

/** Far above a real device (one bond, two slaves) and far below what would stall a poll. */
export const readLimits = {
  maxBonds: 16,
  /** Entries of /proc/net/bonding looked at: bounds the cost of a directory full of junk. */
  maxDirectoryEntries: 256,
  /** A two-slave report is 600 bytes, an 802.3ad slave 600 more: 16 of those fit with room to spare. */
  maxReportBytes: 32 * 1024,
  /** sysfs attributes are one short line. */
  maxAttributeBytes: 4096,
} as const;

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
export function readBonds(root: string, expected: readonly string[] = []): BondsReport {
  const listing = listBonds(root);
  const all = [...new Set([...listing.names, ...expected])].sort();
  // The expected bonds are always read; the rest fill what the limit leaves.
  const names = all.filter((name) => expected.includes(name));
  for (const name of all) if (names.length < readLimits.maxBonds && !names.includes(name)) names.push(name);
  names.sort();
  const left = all.length - names.length;
  const notes: string[] = [];
  if (listing.more) notes.push(`/proc/net/bonding has more than ${readLimits.maxDirectoryEntries} entries: only the first ${readLimits.maxDirectoryEntries} were looked at`);
  if (left > 0) notes.push(`${all.length} bonds: only ${names.length} are read (the limit is ${readLimits.maxBonds}), ${left} left out`);
  return {
    readings: names.map((name) =>
      listing.names.includes(name) ? readBond(root, name) : { ok: false, name, error: `${name} does not exist (no /proc/net/bonding/${name})`, missing: true },
    ),
    note: notes.length > 0 ? notes.join('; ') : null,
  };
}

function listBonds(root: string): { names: string[]; more: boolean } {
  const names: string[] = [];
  let dir;
  try {
    dir = opendirSync(join(root, 'proc/net/bonding'));
  } catch {
    // No bonding driver loaded: no bonds.
    return { names, more: false };
  }
  try {
    // Entry by entry rather than readdirSync: a directory of a million names costs no more than 256.
    for (let seen = 0; ; seen++) {
      const entry = dir.readSync();
      if (entry === null) return { names, more: false };
      if (seen === readLimits.maxDirectoryEntries) return { names, more: true };
      // Only names that are interface names are ever joined into a path.
      if (interfaceName.test(entry.name)) names.push(entry.name);
    }
  } catch {
    return { names, more: false };
  } finally {
    dir.closeSync();
  }
}

export function readBond(root: string, name: string): BondReading {
  const report = readBounded(join(root, 'proc/net/bonding', name), readLimits.maxReportBytes);
  if (!report.ok) return { ok: false, name, error: `/proc/net/bonding/${name}: ${report.error}` };
  const parsed = parseProcBonding(report.text);
  if (!parsed.ok) return { ok: false, name, error: `/proc/net/bonding/${name}: ${parsed.error}` };
  const proc = parsed.bond;

  const bondSys = join(root, 'sys/class/net', name, 'bonding');
  const sysfsMode = firstWord(readText(join(bondSys, 'mode')));
  const sysfsReselect = firstWord(readText(join(bondSys, 'primary_reselect')));
  // The primary as the driver holds it; sysfs has it for any mode (an empty file: none).
  const sysfsPrimary = readText(join(bondSys, 'primary'));
  // A report cut short at a line end parses, minus its last slaves; sysfs lists them all. (Also
  // true for a moment while a slave is being added or removed: the next read agrees again.)
  const sysfsSlaves = readText(join(bondSys, 'slaves'));
  if (sysfsSlaves !== null) {
    const procNames = proc.slaves.map((slave) => slave.name).sort();
    const sysNames = sysfsSlaves.split(/\s+/).filter((slave) => slave !== '').sort();
    if (procNames.join(' ') !== sysNames.join(' ')) {
      return { ok: false, name, error: `/proc/net/bonding/${name} lists slaves ${procNames.join(' ') || 'none'} but sysfs ${sysNames.join(' ') || 'none'}: torn report, or read while slaves changed` };
    }
  }

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
      primary: sysfsPrimary === null ? proc.primary : firstWord(sysfsPrimary),
      primary_reselect: proc.primaryReselect ?? sysfsReselect,
      active_slave: proc.activeSlave,
      arp_interval_ms: proc.arpIntervalMs,
      arp_targets: proc.arpTargets,
      slaves,
    },
  };
}

/** A sysfs attribute without its trailing newline; null when it is missing, refused or the kernel says no (EINVAL on a down link). */
function readText(path: string): string | null {
  const read = readBounded(path, readLimits.maxAttributeBytes);
  return read.ok ? read.text.trim() : null;
}

/** One buffer for every read: they are synchronous, so never two at once, and 20 polls a second make no garbage. */
const scratch = Buffer.allocUnsafe(readLimits.maxReportBytes + 1);

export type BoundedRead = { ok: true; text: string } | { ok: false; error: string };

/**
 * At most `maxBytes` of a regular file, or why not. Opened non-blocking and checked with fstat
 * before any read, so a FIFO (whose blocking open waits for a writer forever) or a device is
 * refused at once. /proc files report size 0, so the size is what is read, not what stat says.
 */
export function readBounded(path: string, maxBytes: number): BoundedRead {
  if (maxBytes >= scratch.length) throw new RangeError(`readBounded: ${maxBytes} bytes is over the ${scratch.length - 1} it can hold`);
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    return { ok: false, error: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  }
  try {
    if (!fstatSync(fd).isFile()) return { ok: false, error: 'refused: not a regular file' };
    // One byte more than allowed tells "exactly at the limit" from "over it".
    let length = 0;
    for (;;) {
      const got = readSync(fd, scratch, length, maxBytes + 1 - length, null);
      if (got === 0) break;
      length += got;
      if (length > maxBytes) return { ok: false, error: `refused: larger than ${maxBytes} bytes` };
    }
    return { ok: true, text: scratch.toString('latin1', 0, length) };
  } catch (err) {
    return { ok: false, error: `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}` };
  } finally {
    closeSync(fd);
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
