/**
 * The bond monitor: reads the bonds every `pollMs`, keeps the latest snapshot for the HTTP API
 * (requests never touch the file system, so a burst of requests costs no extra reads), and turns
 * each change of active slave into a failover event: kept in a bounded log, counted per bond,
 * written to the journal and passed to live listeners (the SSE stream).
 *
 * Polling rather than netlink: 20 small reads a second are cheap, need no extra address family in
 * the unit's sandbox, and work the same against a fake tree in tests. A 50 ms period keeps a
 * failover visible well within the 100 ms the API promises.
 *
 * A failover is a change between the last two GOOD readings of a bond, not the last two reads: a
 * read that fails or comes back torn in between says nothing about the active slave, and comparing
 * across it would lose the failover that happened meanwhile. Only a bond that no longer exists is
 * forgotten, so one that is created anew is not taken for a failover.
 *
 * What the API shows rides out a short run of failed reads the same way: a slave being enslaved or
 * removed tears a read now and then (the report and sysfs disagree for a moment), and the page must
 * not flicker to an error, nor a client see the active slave vanish, for one 50 ms poll. Up to
 * `graceReads` failed reads in a row show the bond's last good reading; a failure that lasts
 * longer (a FIFO, a refused report) shows as the error it is.
 *
 * Two other units' files are read at every poll too: pibond-heal's heal times, and pibond-uplink's
 * uplink tracking (each uplink's state, and the decisions that moved the bond's primary). What
 * they held when the service started is history; what changes afterwards is announced.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { detectFailovers, type FailoverEvent } from './failover.ts';
import { healKey, matchWindowMs, readHeals, type HealRecord } from './heals.ts';
import type { Journal } from './journal.ts';
import { bondName, readBonds, type BondReading, type BondsReport, type BondStatus } from './read-bonds.ts';
import {
  decisionKey,
  decisionMatches,
  uplinkChanges,
  uplinksReader,
  uplinksView,
  type DecisionRecord,
  type UplinkEvent,
  type UplinksFile,
} from './uplinks.ts';

export interface BondHistory {
  failovers: number;
  lastFailover: FailoverEvent | null;
  /** Monotonic ms of the last failover: a Pi has no RTC and its wall clock jumps when NTP syncs. */
  lastFailoverAt: number | null;
  /** The last switch pibond-heal.service recorded for this bond: how long until the gateway answered. */
  lastHeal: HealRecord | null;
}

export interface MonitorOptions {
  root: string;
  /** Bonds the image is built with: reported as missing when absent. */
  expectedBonds?: readonly string[];
  pollMs?: number;
  /** How many events the log keeps; older ones drop out (the counters keep counting). */
  eventCapacity?: number;
  /**
   * Reads of pibond-uplink's report at most this often (default: at every poll). It changes twice
   * a second at most, and a read of it at every 50 ms poll is CPU an emulated or busy Pi lacks.
   */
  uplinksEveryMs?: number;
  /** How many failed reads in a row still show the bond's last good reading (default 4: 200 ms). */
  graceReads?: number;
  journal: Journal;
}

/** pibond-boot-finished.service's mark, a directory that exists once the boot has finished. */
export const bootFinishedMark = 'run/pibond-boot-finished';

/** Heals kept for a failover not yet seen; more are older than any failover still to come. */
const maxHealsWaiting = 8;

/**
 * Of the `items` that `fits`, the one whose time is closest to `time` and at most `windowMs` from
 * it (the first of equals); undefined when none is. How heals and decisions find their failovers.
 */
function closestInTime<T extends { time: string }>(items: Iterable<T>, time: string, fits: (item: T) => boolean, windowMs = Number.POSITIVE_INFINITY): T | undefined {
  const at = Date.parse(time);
  let best: T | undefined;
  let bestDistance = windowMs;
  for (const item of items) {
    if (!fits(item)) continue;
    const distance = Math.abs(Date.parse(item.time) - at);
    if (distance < bestDistance || (best === undefined && distance === bestDistance)) {
      best = item;
      bestDistance = distance;
    }
  }
  return best;
}

function giveHeal(event: FailoverEvent, heal: HealRecord): void {
  event.heal_ms = heal.heal_ms;
  event.heal_action = heal.action;
  event.heal_outcome = heal.outcome;
}

type FailoverListener = (event: FailoverEvent) => void;
type HealListener = (event: FailoverEvent | null, heal: HealRecord) => void;
type UplinkListener = (event: UplinkEvent) => void;

export class BondMonitor {
  readonly startedAt = performance.now();
  private bootFinishedSeen = false;
  private snapshot: BondsReport;
  /** Each bond's last good reading: what the next good one is compared with. */
  private readonly lastGood = new Map<string, BondStatus>();
  /** Bonds whose last read looked like a round trip not yet confirmed: the reading before it. */
  private readonly held = new Map<string, BondStatus>();
  private readonly events: FailoverEvent[] = [];
  private readonly histories = new Map<string, BondHistory>();
  private readonly listeners = new Set<FailoverListener>();
  private readonly healListeners = new Set<HealListener>();
  /** Heals already taken from the heals file, by healKey. */
  private readonly healsSeen = new Set<string>();
  /**
   * Heals read before the failover they belong to was seen: the healer can be quicker than this
   * service's next read (a switch healed in 40 ms, this process starved for longer under load, or
   * a round trip held a poll for confirmation: seen in CI as a switch with no heal time). The
   * failover recorded next takes its heal from here.
   */
  private readonly healsWaiting: HealRecord[] = [];
  private readonly uplinkListeners = new Set<UplinkListener>();
  private readonly readUplinks: () => UplinksFile | null;
  /** The uplinks file as last read (null: no uplink tracking), and as /api/status shows it. */
  private uplinksNow: UplinksFile | null = null;
  private uplinksShown: UplinksFile | null = null;
  /** The last file that could be read: what a change of an uplink's state is measured against. */
  private uplinksBefore: UplinksFile | null = null;
  /** Decisions already taken from the uplinks file, and those a failover event was matched to, by decisionKey. */
  private readonly decisionsSeen = new Set<string>();
  private readonly decisionsMatched = new Set<string>();
  private readonly errors = new Map<string, string>();
  /** Each bond's failed reads in a row. */
  private readonly failedInARow = new Map<string, number>();
  private journalledNote: string | null = null;
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly options: MonitorOptions) {
    this.snapshot = readBonds(options.root, options.expectedBonds);
    this.remember(this.snapshot.readings);
    this.journalErrors(this.snapshot.readings);
    // Heals from before this start are history: the last one per bond shows, none is announced.
    for (const heal of readHeals(options.root)) {
      this.healsSeen.add(healKey(heal));
      this.histories.set(heal.bond, { ...this.history(heal.bond), lastHeal: heal });
    }
    // The same for uplink tracking: states and decisions from before this start are not news.
    this.readUplinks = uplinksReader(options.root, options.uplinksEveryMs ?? 0);
    this.takeUplinks(false);
  }

  start(): void {
    this.timer ??= setInterval(() => this.poll(), this.options.pollMs ?? 50);
  }

  stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  /** One read and comparison; the timer calls it, tests may too. */
  poll(): FailoverEvent[] {
    const next = readBonds(this.options.root, this.options.expectedBonds);
    const before = [...this.lastGood.values()].map((bond): BondReading => ({ ok: true, bond }));
    const events = this.confirmRoundTrips(detectFailovers(before, next.readings, new Date()), next.readings);
    this.countFailures(next.readings);
    this.snapshot = { ...next, readings: next.readings.map((reading) => this.shown(reading)) };
    this.remember(next.readings);
    for (const [name, held] of this.held) if (this.lastGood.has(name)) this.lastGood.set(name, held);
    // As shown: a read torn for a moment is no news for the journal either.
    this.journalErrors(this.snapshot.readings);
    // Uplinks first: a decision already written is announced before the failover it caused, which
    // then carries its reason.
    this.takeUplinks(true);
    for (const event of events) this.record(event);
    this.takeHeals();
    return events;
  }

  bonds(): readonly BondReading[] {
    return this.snapshot.readings;
  }

  /** Why some bonds were left out of the last read, if they were (see readLimits). */
  note(): string | null {
    return this.snapshot.note;
  }

  /** Oldest first. */
  recentEvents(): readonly FailoverEvent[] {
    return this.events;
  }

  history(bond: string): BondHistory {
    return this.histories.get(bond) ?? { failovers: 0, lastFailover: null, lastFailoverAt: null, lastHeal: null };
  }

  /** The bond's uplink tracking as /api/status shows it; null when pibond-uplink reports nothing on it. */
  uplinks(bond: string): UplinksFile | null {
    return this.uplinksShown?.bond === bond ? this.uplinksShown : null;
  }

  /**
   * Whether the boot has finished, first-boot work included: pibond-boot-finished.service's mark
   * exists. Once true it stays true (the mark goes only at shutdown), so it is looked for until then.
   */
  bootFinished(): boolean {
    this.bootFinishedSeen ||= existsSync(join(this.options.root, bootFinishedMark));
    return this.bootFinishedSeen;
  }

  uptimeSeconds(): number {
    return (performance.now() - this.startedAt) / 1000;
  }

  secondsSince(monotonicMs: number): number {
    return (performance.now() - monotonicMs) / 1000;
  }

  onFailover(listener: FailoverListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Called with each heal pibond-heal.service records, and the failover event it belongs to (if seen). */
  onHeal(listener: HealListener): () => void {
    this.healListeners.add(listener);
    return () => this.healListeners.delete(listener);
  }

  /** Called when an uplink's state changes and when pibond-uplink makes a decision. */
  onUplink(listener: UplinkListener): () => void {
    this.uplinkListeners.add(listener);
    return () => this.uplinkListeners.delete(listener);
  }

  /**
   * The uplinks file, when it changed: each uplink whose state changed, and each new decision, is
   * an event; a new decision gives its reason to the failover it caused, when that was seen first.
   */
  private takeUplinks(announce: boolean): void {
    const file = this.readUplinks();
    if (file === this.uplinksNow) return;
    this.uplinksNow = file;
    this.uplinksShown = file === null ? null : uplinksView(file);
    if (file === null) return;
    const events: UplinkEvent[] = uplinkChanges(this.uplinksBefore, file);
    this.uplinksBefore = file;
    for (const decision of file.decisions) {
      const key = decisionKey(file.bond, decision);
      if (this.decisionsSeen.has(key)) continue;
      this.decisionsSeen.add(key);
      events.push({ type: 'decision', bond: file.bond, ...decision });
      if (announce) this.giveReason(file.bond, decision, key);
    }
    // The file keeps only its last decisions: forget the keys of those that have left it.
    if (this.decisionsSeen.size > 2 * file.decisions.length + 64) {
      const kept = new Set(file.decisions.map((decision) => decisionKey(file.bond, decision)));
      for (const key of this.decisionsSeen) if (!kept.has(key)) this.decisionsSeen.delete(key);
      for (const key of this.decisionsMatched) if (!kept.has(key)) this.decisionsMatched.delete(key);
    }
    if (!announce) return;
    for (const event of events) for (const listener of this.uplinkListeners) listener(event);
  }

  /** A decision read after its failover was recorded: the closest such failover gets its reason. */
  private giveReason(bond: string, decision: DecisionRecord, key: string): void {
    const match = closestInTime(this.events, decision.time, (event) => event.reason === undefined && decisionMatches(event, bond, decision));
    if (match === undefined) return;
    match.reason = decision.reason;
    this.decisionsMatched.add(key);
  }

  /** A failover recorded after the decision that caused it was read: the latest such decision not yet matched. */
  private takeReason(event: FailoverEvent): void {
    const file = this.uplinksNow;
    if (file === null) return;
    for (let i = file.decisions.length - 1; i >= 0; i--) {
      const decision = file.decisions[i];
      if (decision === undefined || !decisionMatches(event, file.bond, decision)) continue;
      const key = decisionKey(file.bond, decision);
      if (this.decisionsMatched.has(key)) continue;
      this.decisionsMatched.add(key);
      event.reason = decision.reason;
      return;
    }
  }

  /**
   * New records in the heals file: each is the last heal of its bond, and gives its heal_ms to the
   * failover event of the same bond and slave seen closest to it in time.
   */
  private takeHeals(): void {
    const heals = readHeals(this.options.root);
    for (const heal of heals) {
      const key = healKey(heal);
      if (this.healsSeen.has(key)) continue;
      this.healsSeen.add(key);
      this.histories.set(heal.bond, { ...this.history(heal.bond), lastHeal: heal });
      const match = closestInTime(this.events, heal.time, (event) => event.bond === heal.bond && event.to === heal.to && event.heal_ms === null, matchWindowMs) ?? null;
      if (match !== null) giveHeal(match, heal);
      else this.healsWaiting.push(heal);
      for (const listener of this.healListeners) listener(match, heal);
    }
    if (this.healsWaiting.length > maxHealsWaiting) this.healsWaiting.splice(0, this.healsWaiting.length - maxHealsWaiting);
    // The file keeps only its last records: forget the keys of those that have left it.
    if (this.healsSeen.size > 2 * heals.length + 64) {
      this.healsSeen.clear();
      for (const heal of heals) this.healsSeen.add(healKey(heal));
    }
  }

  /** The closest heal read before `event` was seen, of its bond and slave, within the match window. */
  private takeWaitingHeal(event: FailoverEvent): void {
    const heal = closestInTime(this.healsWaiting, event.time, (waiting) => waiting.bond === event.bond && waiting.to === event.to, matchWindowMs);
    if (heal === undefined) return;
    this.healsWaiting.splice(this.healsWaiting.indexOf(heal), 1);
    giveHeal(event, heal);
  }

  private record(event: FailoverEvent): void {
    // Not known yet, as a rule: pibond-heal.service records it once the gateway answers on the new
    // segment. A heal read before this failover was seen is given to it now.
    event.heal_ms = null;
    this.takeWaitingHeal(event);
    this.takeReason(event);
    const history = this.history(event.bond);
    this.histories.set(event.bond, { ...history, failovers: history.failovers + 1, lastFailover: event, lastFailoverAt: performance.now() });
    this.events.push(event);
    if (this.events.length > (this.options.eventCapacity ?? 256)) this.events.shift();

    const message = `${event.bond}: failover from ${event.from ?? 'none'} to ${event.to ?? 'none'} (${event.cause}${event.reason === undefined ? '' : `, uplinks: ${event.reason}`})`;
    // Losing the primary link is what an operator wants to find; the way back is routine.
    if (event.cause === 'link_down' || event.to === null) this.options.journal.warning(message);
    else this.options.journal.notice(message);

    for (const listener of this.listeners) listener(event);
  }

  private countFailures(readings: readonly BondReading[]): void {
    for (const reading of readings) {
      const name = bondName(reading);
      if (reading.ok) this.failedInARow.delete(name);
      else this.failedInARow.set(name, (this.failedInARow.get(name) ?? 0) + 1);
    }
  }

  /** The reading the API shows: a bond's last good one while its reads fail only briefly. */
  private shown(reading: BondReading): BondReading {
    if (reading.ok || reading.missing) return reading;
    const lastGood = this.lastGood.get(reading.name);
    const failed = this.failedInARow.get(reading.name) ?? 0;
    return lastGood && failed <= (this.options.graceReads ?? 4) ? { ok: true, bond: lastGood } : reading;
  }

  /**
   * A round trip (the active slave unchanged, its link failure counter moved) is believed only when
   * the next read still shows it. The kernel counts a failure just before it marks the link down
   * and leaves the slave, and a read in between looks like a round trip; the next one then shows
   * the switch itself. Until then the bond's reading before it stays the "before" to compare with,
   * so that switch is one event, and a true round trip is reported one read late.
   */
  private confirmRoundTrips(events: readonly FailoverEvent[], readings: readonly BondReading[]): FailoverEvent[] {
    const kept: FailoverEvent[] = [];
    for (const reading of readings) {
      if (!reading.ok) continue;
      const { name } = reading.bond;
      const before = this.lastGood.get(name);
      const own = events.filter((event) => event.bond === name);
      if (before && own.length > 0 && before.active_slave === reading.bond.active_slave && !this.held.has(name)) {
        this.held.set(name, before);
        continue;
      }
      this.held.delete(name);
      kept.push(...own);
    }
    return kept;
  }

  private remember(readings: readonly BondReading[]): void {
    const listed = new Set<string>();
    for (const reading of readings) {
      if (reading.ok) this.lastGood.set(reading.bond.name, reading.bond);
      else if (reading.missing) this.lastGood.delete(reading.name);
      listed.add(bondName(reading));
    }
    for (const name of this.lastGood.keys()) if (!listed.has(name)) this.lastGood.delete(name);
  }

  /** A bond that cannot be read is logged when that starts and when it ends, not 20 times a second. */
  private journalErrors(readings: readonly BondReading[]): void {
    const note = this.snapshot.note;
    if (note !== null && note !== this.journalledNote) this.options.journal.warning(note);
    this.journalledNote = note;
    const seen = new Set<string>();
    for (const reading of readings) {
      const name = bondName(reading);
      seen.add(name);
      if (!reading.ok && this.errors.get(name) !== reading.error) {
        this.errors.set(name, reading.error);
        this.options.journal.error(reading.error);
      } else if (reading.ok && this.errors.delete(name)) {
        this.options.journal.info(`${name}: readable again`);
      }
    }
    for (const name of this.errors.keys()) if (!seen.has(name)) this.errors.delete(name);
  }
}
