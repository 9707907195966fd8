/**
 * The uplink service's loop: one round after another per slave (each through that slave's probe
 * helper), each round fed to the slave's tracker, then a decision on the bond's preferred slave,
 * applied when it changes, and the report rewritten. Every effect is injected, so the whole loop is
 * tested with fakes (test/overlays/bond-uplink-service.test.ts); main.ts wires the real ones.
 */
import type { UplinkConfigFile } from './config.ts';
import { type Decision, decide } from './policy.ts';
import type { ProbeRequest, ProbeResult } from './probe-helper.ts';
import type { DecisionRecord, DecisionReason, UplinksFile } from './report.ts';
import { type BondView, type Learned, heldOver, learn, planProbe } from './sources.ts';
import { type RoundResult, Tracker } from './tracker.ts';

export interface UplinkEffects {
  /** Monotonic milliseconds. */
  now(): number;
  wallClock(): Date;
  /** The bond as it is now: active slave, IPv4 address, default gateway. */
  view(): BondView;
  /** Whether `slave` has carrier; its current MAC. */
  carrier(slave: string): boolean;
  mac(slave: string): string | null;
  /** One probe through `slave` (its helper); rejects when the helper failed. */
  probe(slave: string, request: ProbeRequest): Promise<ProbeResult>;
  /** The bond's primary setting now (null: none), and a way to change it. */
  preferred(): string | null;
  setPreferred(slave: string): Promise<void>;
  writeReport(file: UplinksFile): void;
  sleep(ms: number): Promise<void>;
  log(priority: 'warning' | 'notice' | 'info', message: string): void;
}

const keptDecisions = 50;

/** How long a held-over view lasts before it is taken as the truth: far longer than any DHCP renewal. */
export const heldOverTrustMs = 30_000;

export class UplinkService {
  private readonly trackers: Map<string, Tracker>;
  private readonly learned = new Map<string, Learned>();
  /** Monotonic ms since the bond's view has been held over (sources.ts heldOver); null: it is not. */
  private heldSince: number | null = null;
  private readonly bytes: Record<string, number> = {};
  private readonly decisions: DecisionRecord[] = [];
  private readonly counts: Partial<Record<DecisionReason, number>> = {};
  private last: Decision;
  private stopped = false;
  /** Decisions are made one at a time: two uplinks' rounds may end together. */
  private deciding = Promise.resolve();

  constructor(
    private readonly config: UplinkConfigFile,
    private readonly effects: UplinkEffects,
  ) {
    const started = effects.wallClock();
    this.trackers = new Map(config.slaves.map((slave) => [slave, new Tracker(slave, config, started, config.gateways[slave] ?? null)]));
    for (const slave of config.slaves) this.bytes[slave] = 0;
    this.last = { preferred: config.primary, reason: 'primary_healthy', detail: 'no round has ended yet' };
  }

  /** Runs every uplink's rounds until `stop`. */
  async run(): Promise<void> {
    this.effects.log('info', `tracking ${this.config.slaves.join(', ')} of ${this.config.bond}: ${this.config.targets.join(', ')} every ${this.config.interval_ms} ms`);
    this.write();
    await Promise.all(this.config.slaves.map((slave) => this.loop(slave)));
  }

  stop(): void {
    this.stopped = true;
  }

  private async loop(slave: string): Promise<void> {
    const tracker = this.trackers.get(slave);
    if (tracker === undefined) return;
    while (!this.stopped) {
      const started = this.effects.now();
      const result = await this.round(slave);
      const outcome = tracker.round(result, this.effects.wallClock());
      if (outcome.changed) {
        const r = outcome.report;
        this.effects.log(r.state === 'down' ? 'warning' : 'notice', `${slave}'s uplink is ${r.state}${r.cause ? ` (${r.cause === 'router' ? 'its router does not answer' : 'its router answers, the internet does not'})` : ''}`);
      }
      this.deciding = this.deciding.then(() => this.decide()).catch((err: unknown) => this.effects.log('warning', `deciding failed: ${String(err)}`));
      await this.deciding;
      await this.effects.sleep(tracker.nextRoundDelay(this.effects.now() - started));
    }
  }

  /** One probe through `slave`, or a skipped round saying why not. */
  private async round(slave: string): Promise<RoundResult> {
    const view = this.effects.view();
    // A view held over (sources.ts) is not learnt, unless it stays: then the router behind the
    // active slave has changed (the user moved it to the other's subnet), and it is the truth.
    const now = this.effects.now();
    this.heldSince = heldOver(view, this.learned, this.config.gateways) ? (this.heldSince ?? now) : null;
    if (this.heldSince === null || now - this.heldSince >= heldOverTrustMs) learn(this.learned, view);
    const plan = planProbe(slave, view, this.learned, this.config.gateways);
    const skipped = (why: string): RoundResult => ({ routerAnswered: false, routerRttMs: null, routerMac: null, targets: [], source: null, skipped: why, router: plan.router });
    // A slave without carrier is the kernel's (miimon): its rounds say nothing about the line.
    if (!this.effects.carrier(slave)) return skipped('no carrier: the bond\'s link monitor handles it');
    const mac = this.effects.mac(slave);
    if (plan.router === null || mac === null) return skipped(plan.note ?? 'the slave has no MAC address');
    const targets = plan.note === null ? this.config.targets : [];
    let result: ProbeResult;
    try {
      result = await this.effects.probe(slave, { sourceMac: mac, source: plan.source, router: plan.router, timeoutMs: this.config.timeout_ms, count: this.config.count, targets });
    } catch (err) {
      return skipped(`the probe failed: ${(err as Error).message}`);
    }
    this.bytes[slave] = (this.bytes[slave] ?? 0) + result.bytes;
    // Lost carrier during the round: the failed answers are the cable's doing, not the line's.
    if (!this.effects.carrier(slave)) return skipped('no carrier: the bond\'s link monitor handles it');
    if (plan.note !== null) {
      return { ...skipped(plan.note), routerAnswered: result.routerMac !== null, routerRttMs: result.routerRttMs, routerMac: result.routerMac };
    }
    return {
      routerAnswered: result.routerMac !== null,
      routerRttMs: result.routerRttMs,
      routerMac: result.routerMac,
      targets: result.targets,
      source: plan.source,
      skipped: null,
      router: plan.router,
    };
  }

  private async decide(): Promise<void> {
    const reports = [...this.trackers.values()].map((t) => t.report());
    const current = this.effects.preferred();
    const decision = decide(this.config.primary, this.config.slaves, reports, this.last.preferred, (slave) => this.effects.carrier(slave));
    if (decision.preferred !== current) {
      await this.effects.setPreferred(decision.preferred);
      const record: DecisionRecord = { time: this.effects.wallClock().toISOString(), reason: decision.reason, from: current, to: decision.preferred, detail: decision.detail };
      this.decisions.push(record);
      if (this.decisions.length > keptDecisions) this.decisions.shift();
      this.counts[decision.reason] = (this.counts[decision.reason] ?? 0) + 1;
      this.effects.log('notice', `${this.config.bond}: prefer ${decision.preferred} (was ${current ?? 'none'}): ${decision.detail}`);
    }
    this.last = decision;
    this.write(reports);
  }

  private write(reports = [...this.trackers.values()].map((t) => t.report())): void {
    this.effects.writeReport({
      bond: this.config.bond,
      primary: this.config.primary,
      preferred: this.effects.preferred(),
      reason: this.last.reason,
      targets: this.config.targets,
      uplinks: reports,
      decisions: this.decisions,
      decision_counts: this.counts,
      probe_bytes: this.bytes,
      updated: this.effects.wallClock().toISOString(),
    });
  }
}
