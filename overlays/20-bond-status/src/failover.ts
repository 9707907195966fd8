/**
 * Failovers: a change of a bond's active slave between two snapshots, and why it happened.
 *
 * The cause is inferred from the slaves' MII status and link failure counters on both sides of the
 * change. The counters matter: with 50 ms between reads a link can go down and come back unseen,
 * but the kernel counts every failure, so a counter that moved tells us the link failed in between.
 */
import type { HealAction, HealOutcome } from '../../15-bond-heal/src/healer.ts';
import type { DecisionReason } from '../../16-bond-uplink/src/report.ts';
import type { BondReading, BondStatus, SlaveStatus } from './read-bonds.ts';

export type FailoverCause =
  /** The old active slave's link went down (or the slave was removed, e.g. a USB NIC pulled). */
  | 'link_down'
  /** The primary's link came back and the bond returned to it (primary_reselect). */
  | 'primary_back'
  /** No slave was active; one came up and took over. */
  | 'link_up'
  /** Both links stayed up and the active slave changed: someone chose it (ifenslave -c, sysfs). */
  | 'manual'
  | 'unknown';

export interface FailoverEvent {
  /** ISO-8601, wall clock: for people and logs. */
  time: string;
  bond: string;
  from: string | null;
  to: string | null;
  cause: FailoverCause;
  /**
   * Milliseconds from the failover until the gateway answered on the new segment, as
   * pibond-heal.service measured it: null until it has (or when it never did).
   */
  heal_ms?: number | null;
  /** How it healed: flush (the neighbours), reuse (the router's remembered lease) or renew (a new DHCP lease). */
  heal_action?: HealAction;
  /** What came of that heal: healed, not_healed (it gave up), superseded (the next switch came first). */
  heal_outcome?: HealOutcome;
  /**
   * When pibond-uplink made this switch (a `manual` one, just after it moved the bond's primary to
   * `to`): its decision's reason, e.g. primary_uplink_down. Absent for the kernel's own switches.
   */
  reason?: DecisionReason;
}

export function detectFailovers(before: readonly BondReading[], after: readonly BondReading[], time: Date): FailoverEvent[] {
  const previous = new Map<string, BondStatus>();
  for (const reading of before) if (reading.ok) previous.set(reading.bond.name, reading.bond);

  const events: FailoverEvent[] = [];
  for (const reading of after) {
    if (!reading.ok) continue;
    const old = previous.get(reading.bond.name);
    // A bond that just appeared, or was unreadable a moment ago, has no "before" to compare with.
    if (!old) continue;
    if (old.active_slave === reading.bond.active_slave) {
      events.push(...roundTrips(old, reading.bond, time), ...unseenVisits(old, reading.bond, time));
      continue;
    }
    const change: FailoverEvent = {
      time: time.toISOString(),
      bond: reading.bond.name,
      from: old.active_slave,
      to: reading.bond.active_slave,
      cause: failoverCause(old, reading.bond),
    };
    events.push(...unseenBeforeChange(old, reading.bond, change), change, ...unseenAfterChange(old, reading.bond, time));
  }
  return events;
}

/**
 * A bond whose primary takes over whenever its link is up (primary_reselect always): then the
 * primary's link failure counter tells the switches that fall between two late reads (a starved
 * service under emulation: seen in CI as 6 failovers counted for 8 switches).
 */
function reselectsPrimary(bond: BondStatus): bond is BondStatus & { primary: string } {
  return bond.primary !== null && bond.primary_reselect === 'always';
}

/**
 * Away from the primary: it failed k times since the last read, so before the failover seen it
 * went away and came back k - 1 times (each return took over at once).
 */
function unseenBeforeChange(before: BondStatus, after: BondStatus, change: FailoverEvent): FailoverEvent[] {
  const { from, to } = change;
  if (!reselectsPrimary(after) || from !== after.primary || to === null) return [];
  const failures = countMoved(slave(before, from), slave(after, from));
  return failures < 2 ? [] : repeatedPair(failures - 1, new Date(change.time), after.name, { from, to, cause: 'link_down' }, { from: to, to: from, cause: 'primary_back' });
}

/**
 * Back to the primary, which was down at the last read: each failure since then was a failover
 * away from it and, since it is up and active again, a return.
 */
function unseenAfterChange(before: BondStatus, after: BondStatus, time: Date): FailoverEvent[] {
  const { active_slave: active } = after;
  if (!reselectsPrimary(after) || active !== after.primary) return [];
  const was = slave(before, active);
  const is = slave(after, active);
  const other = before.active_slave;
  if (!was || !is || was.mii_status === 'up' || is.mii_status !== 'up' || other === null || other === active) return [];
  const failures = countMoved(was, is);
  return repeatedPair(failures, time, after.name, { from: active, to: other, cause: 'link_down' }, { from: other, to: active, cause: 'primary_back' });
}

/** How many link failures the kernel counted between two readings of a slave (0 when unknown). */
function countMoved(before: SlaveStatus | undefined, after: SlaveStatus | undefined): number {
  const was = before?.link_failure_count;
  const is = after?.link_failure_count;
  if (was === null || was === undefined || is === null || is === undefined || is <= was) return 0;
  return is - was;
}

/** Round trips reported for one unchanged active slave at most: a counter that leaps is not 100 flaps' worth of events. */
const maxRoundTrips = 8;

/**
 * The active slave is the same in both readings, but its link failed in between (its counter
 * moved): the bond went away from it and came back, unseen. Under load (a busy Pi, or QEMU with
 * the healer at work) a switch and its way back can both fall between two reads; the kernel's
 * counter still tells, so each failure is a failover away and one back.
 */
function roundTrips(before: BondStatus, after: BondStatus, time: Date): FailoverEvent[] {
  const active = after.active_slave;
  if (active === null) return [];
  // Back means up again: a read can catch the counter already moved while the bond has not yet
  // left the slave whose link just failed (its switch comes in the next read, as an event of its own).
  if (slave(after, active)?.mii_status !== 'up') return [];
  const failures = countMoved(slave(before, active), slave(after, active));
  const other = after.slaves.find((s) => s.name !== active && s.mii_status === 'up')?.name ?? null;
  const back: FailoverCause = active === after.primary ? 'primary_back' : 'link_up';
  return repeatedPair(failures, time, after.name, { from: active, to: other, cause: 'link_down' }, { from: other, to: active, cause: back });
}

/**
 * The backup is active in both readings, and the primary, down in both, failed again in between:
 * it came up and, with primary_reselect always, the bond went to it at once (the kernel does so
 * the moment its link is up, with no updelay) and came back when it failed. The backup's counter
 * cannot tell (it never failed). Seen in CI as 6 failovers counted for 8 switches: a read of the
 * status service came more than a second late under emulation, after a failback and the next
 * failover. Each failure of the primary is a visit: to it and back.
 */
function unseenVisits(before: BondStatus, after: BondStatus, time: Date): FailoverEvent[] {
  if (!reselectsPrimary(after)) return [];
  const { primary, active_slave: active } = after;
  if (active === null || active === primary) return [];
  const was = slave(before, primary);
  const is = slave(after, primary);
  if (!was || !is || was.mii_status === 'up' || is.mii_status === 'up') return [];
  const failures = countMoved(was, is);
  return repeatedPair(failures, time, after.name, { from: active, to: primary, cause: 'primary_back' }, { from: primary, to: active, cause: 'link_down' });
}

type Switch = Pick<FailoverEvent, 'from' | 'to' | 'cause'>;

/** A switch there and its way back, `times` times (at most maxRoundTrips), all dated `time`. */
function repeatedPair(times: number, time: Date, bond: string, there: Switch, back: Switch): FailoverEvent[] {
  const at = { time: time.toISOString(), bond };
  const events: FailoverEvent[] = [];
  for (let i = 0; i < Math.min(times, maxRoundTrips); i++) events.push({ ...at, ...there }, { ...at, ...back });
  return events;
}

export function failoverCause(before: BondStatus, after: BondStatus): FailoverCause {
  const from = before.active_slave;
  const to = after.active_slave;
  if (from === null) return to === null ? 'unknown' : 'link_up';

  const oldActiveNow = slave(after, from);
  if (!oldActiveNow || oldActiveNow.mii_status !== 'up' || failedBetween(slave(before, from), oldActiveNow)) return 'link_down';

  if (to !== null && to === after.primary) {
    const primaryBefore = slave(before, to);
    const primaryNow = slave(after, to);
    if (!primaryBefore || primaryBefore.mii_status !== 'up' || failedBetween(primaryBefore, primaryNow)) return 'primary_back';
  }
  return to === null ? 'unknown' : 'manual';
}

function slave(bond: BondStatus, name: string): SlaveStatus | undefined {
  return bond.slaves.find((s) => s.name === name);
}

function failedBetween(before: SlaveStatus | undefined, after: SlaveStatus | undefined): boolean {
  const was = before?.link_failure_count;
  const is = after?.link_failure_count;
  return was !== null && was !== undefined && is !== null && is !== undefined && is > was;
}
