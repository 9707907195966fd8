/**
 * One uplink's health from its probe rounds, with hysteresis like mwan3track: a round is good when
 * the router answered and at least `reliability` targets did (each target counts once, however
 * many echo requests it got). A new uplink is up after its first good round, and down after `down`
 * failed rounds in a row; an up uplink goes down after `down` failed rounds in a row, and a down
 * one comes back after `up` good rounds in a row. Short of that, a streak of the other kind only
 * counts towards it: intermittent loss never flaps the state.
 *
 * A round that could not be probed (no source address known on the router's LAN yet, no carrier)
 * is skipped: the state stays as it is and the report's note says why.
 *
 * Pure: the service feeds it the probe helper's results and the wall clock, and reads back the
 * report it writes to uplinks.json (test/overlays/bond-uplink.test.ts drives it with made-up rounds).
 */
import type { UplinkConfigFile } from './config.ts';
import type { ProbeAnswer, UplinkReport, UplinkState } from './report.ts';

/** What one probe round through a slave found (the helper's result line, and what was known before it). */
export interface RoundResult {
  routerAnswered: boolean;
  routerRttMs: number | null;
  routerMac: string | null;
  /** One per target; rtt_ms null when it never answered within the round's timeout. */
  targets: ProbeAnswer[];
  /** The source address the probes used; null when none is known on that router's LAN. */
  source: string | null;
  /** Why the round could not be probed (no carrier, no source address...); null when it was. */
  skipped: string | null;
  /** The router's address this round asked for, when the caller knows it; leaves the last one when absent. */
  router?: string | null;
}

export type TrackerConfig = Pick<UplinkConfigFile, 'targets' | 'reliability' | 'down' | 'up' | 'interval_ms' | 'failure_interval_ms'>;

export interface RoundOutcome {
  /** The uplink's report after this round (a copy: the tracker keeps its own). */
  report: UplinkReport;
  /** The state before this round. */
  previous: UplinkState;
  changed: boolean;
  /** Whether the round counted as good; null for a skipped round. */
  good: boolean | null;
}

/** A round is good when the router answered and at least `reliability` distinct targets did. */
export function roundIsGood(round: RoundResult, reliability: number): boolean {
  if (!round.routerAnswered) return false;
  const answered = new Set(round.targets.filter((target) => target.rtt_ms !== null).map((target) => target.address));
  return answered.size >= reliability;
}

export class Tracker {
  private current: UplinkReport;

  constructor(
    slave: string,
    private readonly config: TrackerConfig,
    started: Date,
    /** The router's address on this slave's side, when the definition names it. */
    router: string | null = null,
  ) {
    this.current = {
      slave,
      state: 'unknown',
      since: started.toISOString(),
      cause: null,
      note: null,
      source: null,
      router: { address: router, mac: null, rtt_ms: null },
      targets: this.unanswered(),
      last_round: null,
      streak: 0,
      rounds: { ok: 0, failed: 0 },
    };
  }

  get state(): UplinkState {
    return this.current.state;
  }

  /** Takes one round's result, ended at `now`. */
  round(result: RoundResult, now: Date): RoundOutcome {
    const report = this.current;
    const previous = report.state;
    const time = now.toISOString();
    report.last_round = time;
    report.source = result.source;
    if (result.router !== undefined && result.router !== report.router.address) {
      // Another router (a new lease on another subnet): the old one's MAC says nothing about it.
      report.router = { address: result.router, mac: null, rtt_ms: null };
    }

    // A skipped round may still have heard the router (an address probe before any source address
    // is known): shown, but not counted.
    report.router.rtt_ms = result.routerAnswered ? result.routerRttMs : null;
    if (result.routerMac !== null) report.router.mac = result.routerMac;
    report.targets = result.targets.length > 0 ? result.targets.map((target) => ({ address: target.address, rtt_ms: target.rtt_ms })) : this.unanswered();
    if (result.skipped !== null) {
      report.note = result.skipped;
      return { report: this.report(), previous, changed: false, good: null };
    }
    report.note = null;

    const good = roundIsGood(result, this.config.reliability);
    if (good) {
      report.rounds.ok++;
      report.streak = report.streak > 0 ? report.streak + 1 : 1;
    } else {
      report.rounds.failed++;
      report.streak = report.streak < 0 ? report.streak - 1 : -1;
    }

    const next = this.nextState(previous, report.streak);
    if (next === 'down' && !good) report.cause = result.routerAnswered ? 'line' : 'router';
    if (next !== 'down') report.cause = null;
    if (next !== previous) {
      report.state = next;
      report.since = time;
    }
    return { report: this.report(), previous, changed: next !== previous, good };
  }

  /** The report as it stands (a copy). */
  report(): UplinkReport {
    const r = this.current;
    return { ...r, router: { ...r.router }, targets: r.targets.map((t) => ({ ...t })), rounds: { ...r.rounds } };
  }

  /**
   * How long to wait before the next round, given how long the last one took: rounds start every
   * failure_interval_ms while the last round failed (a failure is confirmed quickly), otherwise every
   * interval_ms, also while a down uplink recovers (its `up` good rounds then span up * interval_ms:
   * "healthy long enough" is time, not a burst), and a round never starts before the previous one ended. So at the
   * defaults a dead line's failed rounds (each waits the whole 1 s timeout) follow each other at once.
   */
  nextRoundDelay(lastRoundMs = 0): number {
    const failing = this.current.streak < 0;
    return Math.max(0, (failing ? this.config.failure_interval_ms : this.config.interval_ms) - lastRoundMs);
  }

  private nextState(state: UplinkState, streak: number): UplinkState {
    const { down, up } = this.config;
    if (streak <= -down) return 'down';
    if (state === 'unknown' && streak > 0) return 'up';
    if (state === 'down' && streak >= up) return 'up';
    return state;
  }

  private unanswered(): ProbeAnswer[] {
    return this.config.targets.map((address) => ({ address, rtt_ms: null }));
  }
}
