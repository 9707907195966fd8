/**
 * Parser for /proc/net/bonding/<bond>, the kernel's report on one bond (drivers/net/bonding/bond_procfs.c).
 *
 * The kernel adds, drops and reorders lines between versions and modes (no `Currently Active Slave`
 * outside active-backup, no reselect suffix when there is no primary, ARP lines only with the ARP
 * monitor, 802.3ad blocks, no Speed/Duplex on old kernels), so every value is found by its label,
 * never by its position. Anything that does not fit comes back as an error value: this runs in a
 * service that must keep answering while a bond is being torn down or half written.
 *
 * A report read while it was being written is refused rather than half believed: one that stops
 * mid-line, or a mode that has an active slave without its `Currently Active Slave` line, would
 * otherwise read as "no active slave" or as a slave named `et` and make up a failover. Reports are
 * bounded too (slaves, line length), so a runaway file costs the service a refusal, not its memory.
 */

export interface ProcSlave {
  name: string;
  /** up, going down, down or going back (the last two exist only with updelay/downdelay). */
  miiStatus: string | null;
  /** null when the kernel prints `Unknown` (no link, or a driver that cannot tell). */
  speedMbps: number | null;
  duplex: 'full' | 'half' | null;
  linkFailureCount: number | null;
  permHwaddr: string | null;
}

export interface ProcBond {
  /** e.g. `v6.1.0-50-arm64` or, on old kernels, `v3.7.1 (April 27, 2011)`. */
  driverVersion: string;
  /** The mode as the kernel words it here, e.g. `fault-tolerance (active-backup)`. */
  mode: string;
  /** `active` or `follow` when the mode line carries ` (fail_over_mac ...)`; null for the default. */
  failOverMac: string | null;
  primary: string | null;
  primaryReselect: string | null;
  /** null for `None`, and for modes without an active slave (the line is missing there). */
  activeSlave: string | null;
  miiStatus: 'up' | 'down' | null;
  miimonMs: number | null;
  updelayMs: number | null;
  downdelayMs: number | null;
  arpIntervalMs: number | null;
  arpMissedMax: number | null;
  arpTargets: string[];
  slaves: ProcSlave[];
}

export type ProcParseResult = { ok: true; bond: ProcBond } | { ok: false; error: string };

/** More than any real bond has (the Pi's has two); a report past these is refused whole. */
export const procLimits = {
  maxSlaves: 16,
  /** The longest real lines are the ARP and NS target lists: 16 IPv6 targets fit in 700 characters. */
  maxLineLength: 1024,
} as const;

const header = 'Ethernet Channel Bonding Driver';
const slaveMiiStatuses = new Set(['up', 'going down', 'down', 'going back']);
/** What the kernel accepts as an interface name, minus what could wander out of a sysfs path. */
const interfaceName = /^[^\s/:]{1,15}$/;
/** The modes in which the kernel prints Primary Slave and Currently Active Slave (bond_uses_primary). */
const modesWithActiveSlave = new Set(['fault-tolerance (active-backup)', 'transmit load balancing', 'adaptive load balancing']);

class Malformed extends Error {}

export function parseProcBonding(text: string): ProcParseResult {
  try {
    return { ok: true, bond: parse(text) };
  } catch (err) {
    if (err instanceof Malformed) return { ok: false, error: err.message };
    throw err;
  }
}

function parse(text: string): ProcBond {
  const lines = text.split('\n').map((line) => line.replace(/\r$/, ''));
  const first = lines.find((line) => line.trim() !== '');
  if (first === undefined) throw new Malformed('empty bonding report');
  // The kernel ends every line, the last one too: a report without it was read while being written.
  if (!text.endsWith('\n')) throw new Malformed('torn report: it stops mid-line (read while being written)');
  const long = lines.find((line) => line.length > procLimits.maxLineLength);
  if (long !== undefined) throw new Malformed(`refused: a line of ${long.length} characters, over the limit of ${procLimits.maxLineLength}`);
  if (!first.startsWith(`${header}:`)) throw new Malformed(`not a bonding report: first line is ${JSON.stringify(first.slice(0, 80))}`);

  const bond: ProcBond = {
    driverVersion: first.slice(header.length + 1).trim(),
    mode: '',
    failOverMac: null,
    primary: null,
    primaryReselect: null,
    activeSlave: null,
    miiStatus: null,
    miimonMs: null,
    updelayMs: null,
    downdelayMs: null,
    arpIntervalMs: null,
    arpMissedMax: null,
    arpTargets: [],
    slaves: [],
  };
  let slave: ProcSlave | null = null;
  let sawActiveSlave = false;

  for (const line of lines.slice(lines.indexOf(first) + 1)) {
    // Indented lines are the nested 802.3ad details ("details actor lacp pdu:"): nothing we report.
    if (line.trim() === '' || /^\s/.test(line)) continue;
    const colon = line.indexOf(':');
    // Headings without a value ("802.3ad info") and free text ("bond0 has no active aggregator").
    if (colon < 0) continue;
    const label = line.slice(0, colon).trim();
    const value = line.slice(colon + 1).trim();

    if (label === 'Slave Interface') {
      if (!interfaceName.test(value)) throw new Malformed(`Slave Interface: not an interface name: ${JSON.stringify(value)}`);
      if (bond.slaves.some((s) => s.name === value)) throw new Malformed(`Slave Interface: ${value} is listed twice`);
      if (bond.slaves.length >= procLimits.maxSlaves) throw new Malformed(`refused: more than ${procLimits.maxSlaves} slaves`);
      slave = { name: value, miiStatus: null, speedMbps: null, duplex: null, linkFailureCount: null, permHwaddr: null };
      bond.slaves.push(slave);
    } else if (slave) {
      readSlaveLine(slave, label, value);
    } else {
      if (label === 'Currently Active Slave') sawActiveSlave = true;
      readBondLine(bond, label, value);
    }
  }

  if (bond.mode === '') throw new Malformed('no Bonding Mode line');
  if (modesWithActiveSlave.has(bond.mode) && !sawActiveSlave) throw new Malformed('torn report: no Currently Active Slave line (read while being written)');
  return bond;
}

function readBondLine(bond: ProcBond, label: string, value: string): void {
  switch (label) {
    case 'Bonding Mode': {
      const match = /^(.+?)(?: \(fail_over_mac (\w+)\))?$/.exec(value);
      if (!match?.[1]) throw new Malformed(`Bonding Mode: empty`);
      bond.mode = match[1];
      bond.failOverMac = match[2] ?? null;
      break;
    }
    case 'Primary Slave': {
      if (value === 'None') break;
      const match = /^(\S+)(?: \(primary_reselect (\w+)\))?$/.exec(value);
      if (!match?.[1] || !interfaceName.test(match[1])) throw new Malformed(`Primary Slave: cannot read ${JSON.stringify(value)}`);
      bond.primary = match[1];
      bond.primaryReselect = match[2] ?? null;
      break;
    }
    case 'Currently Active Slave':
      if (value === 'None') break;
      if (!interfaceName.test(value)) throw new Malformed(`Currently Active Slave: not an interface name: ${JSON.stringify(value)}`);
      bond.activeSlave = value;
      break;
    case 'MII Status':
      if (value !== 'up' && value !== 'down') throw new Malformed(`MII Status: unexpected ${JSON.stringify(value)}`);
      bond.miiStatus = value;
      break;
    case 'MII Polling Interval (ms)':
      bond.miimonMs = count(label, value);
      break;
    case 'Up Delay (ms)':
      bond.updelayMs = count(label, value);
      break;
    case 'Down Delay (ms)':
      bond.downdelayMs = count(label, value);
      break;
    case 'ARP Polling Interval (ms)':
      bond.arpIntervalMs = count(label, value);
      break;
    case 'ARP Missed Max':
      bond.arpMissedMax = count(label, value);
      break;
    case 'ARP IP target/s (n.n.n.n form)':
      bond.arpTargets = value.split(',').map((target) => target.trim()).filter((target) => target !== '');
      break;
    default:
      // Transmit Hash Policy, Peer Notification Delay, LACP settings...: not part of the status.
      break;
  }
}

function readSlaveLine(slave: ProcSlave, label: string, value: string): void {
  switch (label) {
    case 'MII Status':
      if (!slaveMiiStatuses.has(value)) throw new Malformed(`${slave.name}: MII Status: unexpected ${JSON.stringify(value)}`);
      slave.miiStatus = value;
      break;
    case 'Speed': {
      if (value === 'Unknown') break;
      const match = /^(-?\d{1,10}) Mbps$/.exec(value);
      if (!match?.[1]) throw new Malformed(`${slave.name}: Speed: cannot read ${JSON.stringify(value)}`);
      const speed = Number(match[1]);
      // Kernels from before the `Unknown` wording printed SPEED_UNKNOWN as -1.
      slave.speedMbps = speed > 0 ? speed : null;
      break;
    }
    case 'Duplex':
      if (value === 'Unknown') break;
      if (value !== 'full' && value !== 'half') throw new Malformed(`${slave.name}: Duplex: unexpected ${JSON.stringify(value)}`);
      slave.duplex = value;
      break;
    case 'Link Failure Count':
      slave.linkFailureCount = count(`${slave.name}: ${label}`, value);
      break;
    case 'Permanent HW addr':
      if (!/^[0-9a-f]{2}(:[0-9a-f]{2})*$/i.test(value)) throw new Malformed(`${slave.name}: Permanent HW addr: cannot read ${JSON.stringify(value)}`);
      slave.permHwaddr = value.toLowerCase();
      break;
    default:
      // Slave queue ID, Aggregator ID, actor/partner churn...: not part of the status.
      break;
  }
}

function count(label: string, value: string): number {
  if (!/^\d{1,10}$/.test(value)) throw new Malformed(`${label}: not a number: ${JSON.stringify(value)}`);
  return Number(value);
}
