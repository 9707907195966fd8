/**
 * The uplink scenario's checks (issue: uplink-aware failover), on the test bed of real routers:
 * the main router's line cut and restored, the main router hung and back, the backup's line cut
 * while on the primary, both lines cut, and a lossy main line. Each failure is made in the test
 * bed's routers (never at the Pi's cables: the Pi's links stay up throughout, so the kernel's
 * miimon sees nothing), and judged where the user stands: the switch by the traffic seen from the
 * test bed's internet, the rest by the status service (what the Pi's tracker says and did).
 */
import { NoChange, type Probes } from './probes.ts';
import type { Outage } from './testbed/prober.ts';
import type { UplinkFigures } from './report.ts';
import type { Bench, Cast, Check } from './checks.ts';
import { round } from './checks.ts';
import { type UplinkView, statusSchema, uplinksIn } from './status-api.ts';

/** How long a failure is given to show as traffic through the other router. */
const failureWindowMs = 30_000;
/** How long the primary's recovery is given to bring traffic back through it. */
const recoveryWindowMs = 60_000;
/** How long a status request is retried when the guest does not answer. */
const statusRetryMs = 15_000;
/** How long the tracker is given to see a line go down or come back when nothing switches. */
const noticeMs = 20_000;

/** The scenario, in order; each row starts from the state the row before left. */
export function uplinkChecks(cast: Cast, opts: { lossSeconds: number }): Check[] {
  return [
    uplinksUp(cast),
    uplinkFailure(cast, 'wan'),
    uplinkFailure(cast, 'hang'),
    backupLineCut(cast),
    bothLinesCut(cast),
    noFlapUnderLoss(cast, 30, opts.lossSeconds),
  ];
}

/** Both uplinks probed and up, and what that costs in traffic. */
export function uplinksUp({ primary, backup }: Cast): Check {
  return {
    name: `both uplinks are tracked and up: ${primary.slave}'s through the main router, ${backup.slave}'s through the backup (inactive) one`,
    async run(bench) {
      const { probes } = bench;
      const first = await untilUplinks(probes, primary.slave, bench.cast.bond, (u) => stateOf(u, primary.slave) === 'up' && stateOf(u, backup.slave) === 'up', 60_000);
      const t0 = probes.now();
      const sampleMs = 10_000;
      await sleep(sampleMs);
      const second = await view(probes, primary.slave, bench.cast.bond);
      const seconds = (probes.now() - t0) / 1000;
      const rates = Object.fromEntries(
        [primary.slave, backup.slave].map((slave) => [slave, round(((second.probe_bytes[slave] ?? 0) - (first.probe_bytes[slave] ?? 0)) / seconds, 0)]),
      );
      figuresOf(bench).probeBytesPerSecond = rates;
      const over = Object.entries(rates).filter(([, rate]) => !(rate > 0));
      if (over.length > 0) throw new Error(`no probe traffic counted on ${over.map(([s]) => s).join(', ')} in ${round(seconds, 1)} s`);
      return `${second.uplinks.map((u) => `${u.slave} ${u.state} (router ${u.router.rtt_ms ?? '-'} ms, ${answered(u)})`).join('; ')}; probe traffic ${Object.entries(rates).map(([s, r]) => `${s} ${r} B/s`).join(', ')}`;
    },
  };
}

/**
 * The main router's line cut (its LAN link stays up), or the main router hung (link up, nothing
 * answers): traffic must move to the backup router, the status must say why, and when the main
 * comes back the traffic must return to it.
 */
export function uplinkFailure(cast: Cast, kind: 'wan' | 'hang'): Check {
  const { primary, backup } = cast;
  const [what, fail, restore, cause] =
    kind === 'wan'
      ? (['the main router\'s WAN cut (its LAN up)', 'failWan', 'restoreWan', 'line'] as const)
      : (['the main router hung (link up, nothing answers)', 'hang', 'unhang', 'router'] as const);
  return {
    name: `${what}: traffic moves to the backup router, and back when it recovers`,
    async run(bench) {
      const { probes } = bench;
      const bed = probes.testbed();
      const away = await probes.outageAfter(() => bed[fail]('main'), backup.slave, failureWindowMs);
      // The service writes its report once the switch is made: the traffic may show it first.
      const moved = await untilUplinks(probes, backup.slave, cast.bond, (u) => u.preferred === backup.slave, statusRetryMs).catch((err: unknown) => {
        throw new Error(`after ${what} the tracker does not prefer ${backup.slave}: ${(err as Error).message}`);
      });
      if (moved.reason !== 'primary_uplink_down') throw new Error(`the tracker prefers ${backup.slave} for ${moved.reason}, expected primary_uplink_down`);
      const down = moved.uplinks.find((u) => u.slave === primary.slave);
      if (down?.state !== 'down' || down.cause !== cause) throw new Error(`${primary.slave}'s uplink is ${down?.state} (${down?.cause}), expected down (${cause})`);
      if (away.inboundMs === null || away.outboundMs === null) throw new Error(`traffic did not resume through the backup router within ${failureWindowMs / 1000} s (${describe(away)})`);

      const back = await probes.outageAfter(() => bed[restore]('main'), primary.slave, recoveryWindowMs);
      await untilUplinks(probes, primary.slave, cast.bond, (u) => u.preferred === primary.slave, statusRetryMs).catch((err: unknown) => {
        throw new Error(`after the main router recovered the tracker does not prefer ${primary.slave}: ${(err as Error).message}`);
      });
      const bond = await probes.bond(primary.slave);
      if (bond.active_slave !== primary.slave) throw new Error(`after the main router recovered ${bond.active_slave} is active, not ${primary.slave}`);
      bench.failovers = bond.failovers;
      const figures = figuresOf(bench);
      if (kind === 'wan') Object.assign(figures, { wanCut: away, wanBack: back });
      else Object.assign(figures, { hang: away, unhang: back });
      return `away: ${describe(away)} (${down.cause}); back: ${describe(back)}`;
    },
  };
}

/** The backup's line cut while the primary carries traffic: the status shows it, nothing switches. */
export function backupLineCut(cast: Cast): Check {
  const { primary, backup } = cast;
  return {
    name: `the backup router's WAN cut while on ${primary.slave}: the status shows ${backup.slave}'s uplink down, nothing switches`,
    async run(bench) {
      const { probes } = bench;
      const bed = probes.testbed();
      const before = bench.failovers;
      await bed.failWan('backup');
      try {
        const seen = await untilUplinks(probes, primary.slave, cast.bond, (u) => stateOf(u, backup.slave) === 'down', noticeMs, stayOn(primary.slave, before));
        const down = seen.uplinks.find((u) => u.slave === backup.slave);
        await bed.restoreWan('backup');
        await untilUplinks(probes, primary.slave, cast.bond, (u) => stateOf(u, backup.slave) === 'up', 60_000, stayOn(primary.slave, before));
        return `${backup.slave}'s uplink went down (${down?.cause}) and came back up; ${primary.slave} stayed active, no switch`;
      } finally {
        await bed.restoreWan('backup');
      }
    },
  };
}

/** Both lines cut: nowhere is better, so the bond stays on the primary. */
export function bothLinesCut(cast: Cast): Check {
  const { primary, backup } = cast;
  return {
    name: 'both routers\' WANs cut: the bond stays on the primary',
    async run(bench) {
      const { probes } = bench;
      const bed = probes.testbed();
      const before = bench.failovers;
      // With both lines cut the internet reaches neither router: the service is asked from the
      // main router's own LAN, as a machine next to the Pi would.
      const fromLan = await lanAsker(probes, 'main');
      await Promise.all([bed.failWan('main'), bed.failWan('backup')]);
      try {
        const seen = await untilUplinks(
          fromLan,
          primary.slave,
          cast.bond,
          (u) => stateOf(u, primary.slave) === 'down' && stateOf(u, backup.slave) === 'down',
          noticeMs,
          stayOn(primary.slave, before),
        );
        // A moment longer: a late decision would show now.
        await sleep(5000);
        const after = await untilUplinks(fromLan, primary.slave, cast.bond, () => true, 5000, stayOn(primary.slave, before));
        if (after.preferred !== primary.slave) throw new Error(`the tracker prefers ${after.preferred} (${after.reason})`);
        await Promise.all([bed.restoreWan('main'), bed.restoreWan('backup')]);
        await untilUplinks(probes, primary.slave, cast.bond, (u) => stateOf(u, primary.slave) === 'up' && stateOf(u, backup.slave) === 'up', 60_000, stayOn(primary.slave, before));
        return `both uplinks down (${seen.reason}), ${primary.slave} stayed active; both came back, no switch`;
      } finally {
        await Promise.all([bed.restoreWan('main'), bed.restoreWan('backup')]);
      }
    },
  };
}

/** Loss on the main line that still carries most traffic: the tracker must not flap. */
export function noFlapUnderLoss(cast: Cast, percent: number, seconds: number): Check {
  const { primary } = cast;
  return {
    name: `${percent}% loss on the main router's WAN for ${seconds} s: no switch`,
    async run(bench) {
      const { probes } = bench;
      const bed = probes.testbed();
      const before = bench.failovers;
      const decisionsBefore = total((await view(probes, primary.slave, cast.bond)).decision_counts);
      // Asked from the main router's LAN: through the lossy WAN a request may take longer than the
      // check's patience, which is the line's doing, not the tracker's.
      const fromLan = await lanAsker(probes, 'main');
      await bed.loss('main', percent);
      try {
        const until = probes.now() + seconds * 1000;
        let last: UplinkView | undefined;
        while (probes.now() < until) {
          last = await untilUplinks(fromLan, primary.slave, cast.bond, () => true, statusRetryMs, stayOn(primary.slave, before));
          await sleep(2000);
        }
        const decisions = total(last?.decision_counts ?? {}) - decisionsBefore;
        figuresOf(bench).loss = { percent, seconds, switches: decisions };
        if (decisions !== 0) throw new Error(`${decisions} decisions under ${percent}% loss`);
        const main = last?.uplinks.find((u) => u.slave === primary.slave);
        return `${primary.slave} stayed active and its uplink ${main?.state} (${main?.rounds.failed} failed rounds of ${(main?.rounds.ok ?? 0) + (main?.rounds.failed ?? 0)}); no decision`;
      } finally {
        await bed.loss('main', 0);
      }
    },
  };
}

// Helpers.

/** Probes whose status requests go from a router's LAN side (its namespace) to the Pi's address there. */
async function lanAsker(probes: Probes, router: 'main' | 'backup'): Promise<Pick<Probes, 'status' | 'now'>> {
  const bed = probes.testbed();
  const plan = bed.router(router);
  const lease = (await bed.status()).routers[router].dhcp.leases[0];
  const forward = plan.forwards.find((f) => f.service === 'status');
  if (lease === undefined || forward === undefined) throw new Error(`the ${router} router has leased no address to the Pi, or forwards no status port`);
  const url = `http://${lease.address}:${forward.piPort}/api/status`;
  return {
    now: () => probes.now(),
    status: async () => statusSchema.parse(JSON.parse(await bed.exec(['ip', 'netns', 'exec', plan.namespace, 'curl', '-sS', '--max-time', '3', url]))),
  };
}

function figuresOf({ figures }: Bench): UplinkFigures {
  figures.uplink ??= {};
  return figures.uplink;
}

/** The uplinks as the service reports them through `through`'s router (retried: a busy guest answers late). */
async function view(probes: Probes, through: string, bond: string): Promise<UplinkView> {
  const found = await untilUplinks(probes, through, bond, () => true, statusRetryMs);
  return found;
}

/** The bond must stay on `slave` with no new failover: a rule checked on every answer. */
function stayOn(slave: string, failovers: number) {
  return (status: { active_slave?: string | null; failovers: number }) => {
    if (status.active_slave !== slave) throw new Error(`the bond switched to ${status.active_slave}`);
    if (status.failovers !== failovers) throw new Error(`the bond counted ${status.failovers - failovers} failovers`);
  };
}

/** Asks through `through` until the uplinks satisfy `done`; `each` sees every bond state first. */
async function untilUplinks(
  probes: Pick<Probes, 'status' | 'now'>,
  through: string,
  bond: string,
  done: (u: UplinkView) => boolean,
  timeoutMs: number,
  each?: (status: { active_slave?: string | null; failovers: number }) => void,
): Promise<UplinkView> {
  const deadline = probes.now() + timeoutMs;
  let unanswered: unknown;
  for (;;) {
    // An unanswered request is retried until the deadline: software emulation on a busy machine
    // answers late at times. A rule broken (each) or a bond without tracking fails at once.
    const status = await probes.status(through).catch((err: unknown) => {
      unanswered = err;
      return null;
    });
    if (status !== null) {
      unanswered = undefined;
      const state = status.bonds.find((b) => b.name === bond);
      if (state) each?.(state);
      // No report yet is "not yet": the tracker starts after the status service.
      const last = uplinksIn(status, bond);
      if (last !== null && done(last)) return last;
      if (probes.now() >= deadline) {
        if (last === null) throw new Error(`the status service reported no uplink tracking for ${bond} within ${timeoutMs / 1000} s`);
        throw new NoChange(state, timeoutMs);
      }
    } else if (probes.now() >= deadline) {
      throw new Error(`the status service did not answer through ${through}'s router within ${timeoutMs / 1000} s: ${(unanswered as Error)?.message}`);
    }
    await sleep(500);
  }
}

function stateOf(view: UplinkView, slave: string): string | undefined {
  return view.uplinks.find((u) => u.slave === slave)?.state;
}

function answered(u: UplinkView['uplinks'][number]): string {
  const got = u.targets.filter((t) => t.rtt_ms !== null).length;
  return `${got} of ${u.targets.length} targets answered`;
}

function total(counts: Record<string, number | undefined>): number {
  return Object.values(counts).reduce<number>((sum, n) => sum + (n ?? 0), 0);
}

function describe(o: Outage): string {
  const words = (ms: number | null) => (ms === null ? 'never' : `${ms} ms`);
  return `inbound ${words(o.inboundMs)}, outbound ${words(o.outboundMs)}`;
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
