/**
 * The document behind GET /api/status and `bond-status --json`. Its names are an interface: the
 * QEMU failover test and operators' scripts read them, so they change only on purpose.
 */
import { hostname, networkInterfaces } from 'node:os';
import type { FailoverEvent } from './failover.ts';
import type { HealRecord } from './heals.ts';
import type { BondMonitor } from './monitor.ts';
import type { BondReading, SlaveStatus } from './read-bonds.ts';
import type { UplinksFile } from './uplinks.ts';

export interface BondDocument {
  name: string;
  /** The bond's addresses with their prefix lengths (192.168.1.50/24), IPv4 first; [] when it has none. */
  addresses: string[];
  mode?: string;
  mii_status?: string | null;
  miimon_ms?: number | null;
  primary?: string | null;
  primary_reselect?: string | null;
  active_slave?: string | null;
  arp_interval_ms?: number | null;
  arp_targets?: string[];
  /** Present only when the bond could not be read. */
  error?: string;
  failovers: number;
  last_failover: FailoverEvent | null;
  seconds_since_last_failover: number | null;
  /** The last switch's heal, as pibond-heal.service measured it; null when none is known. */
  last_heal: HealRecord | null;
  slaves?: SlaveStatus[];
  /**
   * Uplink tracking, as pibond-uplink.service last reported it: each slave's uplink (state, cause,
   * router and targets with their round-trip times), the slave the bond prefers and why
   * (`reason`), the last decisions and their counts. null: no uplink tracking for this bond.
   */
  uplinks: UplinksFile | null;
}

export interface StatusDocument {
  /** The Pi's host name (the image's, or the one its card set at first boot). */
  hostname: string;
  uptime_seconds: number;
  /**
   * Whether the boot has finished, first-boot work (cloud-init's last stage) included: until then
   * a Pi may be slow to answer and to switch (pibond-boot-finished.service).
   */
  boot_finished: boolean;
  bonds: BondDocument[];
  /** Present only when some bonds were left out: more of them than the service reads. */
  note?: string;
}

export function statusDocument(monitor: BondMonitor): StatusDocument {
  const doc: StatusDocument = {
    hostname: hostname(),
    uptime_seconds: round(monitor.uptimeSeconds()),
    boot_finished: monitor.bootFinished(),
    bonds: monitor.bonds().map((reading) => bondDocument(reading, monitor)),
  };
  const note = monitor.note();
  if (note !== null) doc.note = note;
  return doc;
}

function bondDocument(reading: BondReading, monitor: BondMonitor): BondDocument {
  const name = reading.ok ? reading.bond.name : reading.name;
  const history = monitor.history(name);
  const sinceLast = history.lastFailoverAt === null ? null : round(monitor.secondsSince(history.lastFailoverAt));
  // Literals rather than spreads: this runs for every request, and a fixed shape is cheaper to build.
  if (!reading.ok) {
    return {
      name,
      addresses: addressesOf(name),
      error: reading.error,
      failovers: history.failovers,
      last_failover: history.lastFailover,
      seconds_since_last_failover: sinceLast,
      last_heal: history.lastHeal,
      uplinks: monitor.uplinks(name),
    };
  }
  const bond = reading.bond;
  return {
    name,
    addresses: addressesOf(name),
    mode: bond.mode,
    mii_status: bond.mii_status,
    miimon_ms: bond.miimon_ms,
    primary: bond.primary,
    primary_reselect: bond.primary_reselect,
    active_slave: bond.active_slave,
    arp_interval_ms: bond.arp_interval_ms,
    arp_targets: bond.arp_targets,
    failovers: history.failovers,
    last_failover: history.lastFailover,
    seconds_since_last_failover: sinceLast,
    last_heal: history.lastHeal,
    slaves: bond.slaves,
    uplinks: monitor.uplinks(name),
  };
}

/** An interface's addresses as the kernel has them (getifaddrs, over netlink); [] when it cannot say. */
function addressesOf(name: string): string[] {
  try {
    const entries = networkInterfaces()[name] ?? [];
    return entries.sort((a, b) => (a.family === b.family ? 0 : a.family === 'IPv4' ? -1 : 1)).flatMap((entry) => (entry.cidr === null ? [] : [entry.cidr]));
  } catch {
    return [];
  }
}

/** Milliseconds are plenty; fifteen digits of float noise are not. */
function round(seconds: number): number {
  return Math.round(seconds * 1000) / 1000;
}
