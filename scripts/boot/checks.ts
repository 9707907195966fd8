/**
 * The scenario's checks: each a small named unit over the shared probes that says what it saw, and
 * may leave a figure in the report. A scenario is an ordered table of them (see scenario.ts); each
 * check starts from the state the one before left, so the table stops at the first that fails.
 */
import { isUserError } from '../lib/errors.ts';
import { NoChange, type Probes, bondOf } from './probes.ts';
import { type CheckResult, type Figures, type GoalsMet, type SwitchOutage, goals } from './report.ts';
import type { BondState, FailoverEvent } from './status-api.ts';

/** A slave and the QMP name of the NIC that plays it. */
export interface Part {
  slave: string;
  nic: string;
}

/** Who plays what: the bond, its primary (on the main router) and its backup (on the backup router). */
export interface Cast {
  bond: string;
  primary: Part;
  backup: Part;
}

/** What the checks share. */
export interface Bench {
  probes: Probes;
  cast: Cast;
  /** Where checks leave what they measured. */
  figures: Figures;
  goalsMet: GoalsMet;
  /** The failovers the service had counted when the last check that looked ended. */
  failovers: number;
}

export interface Check {
  name: string;
  /** Throws when the check fails; otherwise says what it saw. */
  run(bench: Bench): Promise<string>;
}

/** A failed check: the run stops there. */
export class CheckFailed extends Error {}

export interface RunOptions {
  say: (message: string) => void;
  /** Aborting fails the check under way with the abort's reason. */
  signal?: AbortSignal;
  /** Where each check's result goes, in order. */
  results: CheckResult[];
  /** Milliseconds on a monotonic clock, for how long each check took. */
  now?: () => number;
}

/**
 * Runs one check and records it. A failure is recorded with its detail and thrown as CheckFailed;
 * a UserError (the user's to fix, not the image's) goes through as it is.
 */
export async function runCheck<T>(name: string, run: () => Promise<{ detail: string; value: T }>, opts: RunOptions): Promise<T> {
  const { say, signal, results, now = () => performance.now() } = opts;
  signal?.throwIfAborted();
  const started = now();
  const seconds = () => round((now() - started) / 1000, 2);
  say(`... ${name}`);
  try {
    const { detail, value } = await run();
    results.push({ name, ok: true, detail, seconds: seconds() });
    say(`ok  ${name}${detail ? `: ${detail}` : ''}`);
    return value;
  } catch (err) {
    const detail = signal?.aborted ? String((signal.reason as Error)?.message ?? signal.reason) : (err as Error).message;
    results.push({ name, ok: false, detail, seconds: seconds() });
    say(`FAIL ${name}: ${detail}`);
    if (isUserError(err)) throw err;
    throw new CheckFailed(detail);
  }
}

/** Runs the checks in order and stops at the first that fails: 'pass' if none did. */
export async function runChecks(checks: Check[], bench: Bench, opts: RunOptions): Promise<'pass' | 'fail'> {
  for (const check of checks) {
    try {
      await runCheck(check.name, async () => ({ detail: await check.run(bench), value: undefined }), opts);
    } catch (err) {
      if (err instanceof CheckFailed) return 'fail';
      throw err;
    }
  }
  return 'pass';
}

// The checks.

/** The status service answers through the primary's router: the boot is ready. */
export function serviceAnswers(timeoutMs: number): Check {
  return {
    name: 'the status service answers through the primary router',
    async run({ probes, cast, figures, goalsMet }) {
      const { seconds } = await probes.ready(cast.primary.slave, timeoutMs);
      figures.bootToReadySeconds = round(seconds, 1);
      goalsMet.bootToReady = figures.bootToReadySeconds <= goals.bootToReadySeconds;
      return `${figures.bootToReadySeconds} s after QEMU started`;
    },
  };
}

/**
 * The boot has finished, first-boot work included: the service says so (boot_finished). The
 * service answers while the first boot still runs (on the Ubuntu-like image, cloud-init's config
 * and final stages for another 30 s under emulation), and a timed switch counts the ms until the
 * service answers: on a guest that busy it would time the boot, not the bond. Worse, its probes (a
 * fresh connection every 15 ms, each given up after a short life) queue up faster than a starved
 * service answers them: seen, not one answer within 10 s of a failover the kernel made in 100 ms.
 */
export function bootFinishes(timeoutMs: number): Check {
  return {
    name: 'the boot finishes, first-boot work included',
    async run({ probes, cast, figures }) {
      const started = probes.now();
      for (;;) {
        const { boot_finished: finished } = await probes.status(cast.primary.slave);
        if (finished === undefined) return 'not reported by this image (built by an older pibond): not waited for';
        const seconds = (probes.now() - started) / 1000;
        if (finished) {
          figures.bootFinishedSeconds = round((figures.bootToReadySeconds ?? 0) + seconds, 1);
          return `${figures.bootFinishedSeconds} s after QEMU started, ${round(seconds, 1)} s after the first answer`;
        }
        if (seconds * 1000 > timeoutMs) throw new Error(`the service still says the boot goes on, ${timeoutMs / 1000} s after its first answer`);
        await probes.pause(1000);
      }
    },
  };
}

/**
 * Every slave enslaved and up, the primary the kernel's primary and active. The service may answer
 * a moment before the network stack has enslaved the second NIC; a bond still incomplete after
 * 10 s is a failed boot (see FACTS: the enslaving race).
 */
export function bondWhole(cast: Cast): Check {
  const { primary, backup } = cast;
  return {
    name: `${cast.bond} has both slaves up, ${primary.slave} active`,
    async run(bench) {
      const problem = (state: BondState | undefined) => bondProblem(state, cast.bond, primary.slave, [primary.slave, backup.slave]);
      const bond = await bench.probes.watch(primary.slave, (state) => !problem(state), { timeoutMs: 10_000, intervalMs: 250 }).catch((err: unknown) => {
        if (!(err instanceof NoChange)) throw err;
        throw new Error(`${problem(err.last)}; the service reports ${JSON.stringify(err.last)}`);
      });
      bench.failovers = bond.failovers;
      const described = (bond.slaves ?? []).map((s) => `${s.name} ${s.mii_status}${s.speed_mbps ? ` ${s.speed_mbps} Mb/s` : ''}`);
      return `${described.join(', ')}; ${bond.failovers} failovers since the service started`;
    },
  };
}

/** Only `part`'s router carries traffic, and the service names `part` active. */
export function reachableOnly(part: Part, role: 'primary' | 'backup', again = ''): Check {
  return {
    name: `reachable through the ${role} router only${again}`,
    run: ({ probes }) => probes.reachableOnly(part.slave, part.slave),
  };
}

export interface SwitchOptions {
  /** Which figure the time goes to (the first failover and failback; the flaps keep their own). */
  figure?: 'failover' | 'failback';
  /** Words for the slave that takes over, e.g. "the re-enslaved". */
  backupAs?: string;
  /** Also check the event log's newest entry names this switch. */
  logged?: boolean;
  /** Also check that only the new active slave's router answers. */
  reachable?: boolean;
}

/**
 * The primary's cable pulled (failover) or plugged back (failback): the service, asked through the
 * router that must carry traffic afterwards, names the new active slave, timed from set_link, and
 * counts exactly one more failover.
 */
function linkSwitch(cast: Cast, up: boolean, opts: SwitchOptions): Check {
  const { primary, backup } = cast;
  const [from, to] = up ? [backup, primary] : [primary, backup];
  const backupAs = opts.backupAs ? `${opts.backupAs} ` : '';
  const name = up
    ? `replug ${primary.slave} (set_link ${primary.nic} on): ${opts.backupAs ? `it takes back over from ${backupAs}${backup.slave}` : `${primary.slave} is active again`}`
    : `unplug ${primary.slave} (set_link ${primary.nic} off): ${backupAs}${backup.slave} takes over`;
  return {
    name,
    async run(bench) {
      const { probes, figures, goalsMet } = bench;
      const change = await probes.timedSwitch(primary.slave, up, to.slave);
      if (opts.figure === 'failover') {
        figures.failoverMs = change.ms;
        goalsMet.failover = change.ms <= goals.failoverMs;
      } else if (opts.figure === 'failback') {
        figures.failbackMs = change.ms;
        goalsMet.failback = change.ms <= goals.failbackMs;
      }
      expectCount(change.bond.failovers, bench.failovers + 1);
      bench.failovers = change.bond.failovers;
      let cause = '';
      if (opts.logged) {
        const last = expectLastEvent(await probes.events(to.slave), from.slave, to.slave);
        cause = ` (${last.cause})`;
      }
      if (opts.reachable) await probes.reachableOnly(to.slave, to.slave);
      const answering = opts.reachable ? `, answering through ${to.nic} only` : '';
      return `the service reported ${to.slave} active ${change.ms} ms after set_link${cause}${answering}`;
    },
  };
}

/** The primary's cable pulled: the backup takes over. */
export const failover = (cast: Cast, opts: SwitchOptions = {}): Check => linkSwitch(cast, false, opts);

/** The primary's cable plugged back: it takes back over. */
export const failback = (cast: Cast, opts: SwitchOptions = {}): Check => linkSwitch(cast, true, opts);

/** The event log's newest entry is the failover, caused by the lost link. */
export function failoverLogged({ primary, backup }: Cast): Check {
  return {
    name: 'the failover is in the event log',
    async run({ probes }) {
      const last = expectLastEvent(await probes.events(backup.slave), primary.slave, backup.slave);
      if (last.cause !== 'link_down') throw new Error(`the event's cause is ${last.cause}, not link_down`);
      return `${last.from} -> ${last.to} (${last.cause}) at ${last.time}`;
    },
  };
}

/** The backup's cable pulled: it goes down, the primary stays active and answering, no failover. */
export function backupLinkDown({ primary, backup }: Cast): Check {
  return {
    name: `unplug ${backup.slave} (set_link ${backup.nic} off): nothing changes for traffic`,
    async run(bench) {
      const { probes } = bench;
      await probes.setLink(backup.slave, false);
      const down = await probes.watch(primary.slave, (state) => slaveIn(state, backup.slave)?.mii_status !== 'up', { each: primaryStaysActive(primary.slave) });
      expectCount(down.failovers, bench.failovers);
      await probes.reachableOnly(primary.slave, primary.slave);
      return `${backup.slave} is ${slaveIn(down, backup.slave)?.mii_status}, ${primary.slave} still active and answering, no failover`;
    },
  };
}

/** The backup's cable plugged back: it is up again, as the backup, and nothing switched. */
export function backupLinkUp({ primary, backup }: Cast): Check {
  return {
    name: `replug ${backup.slave} (set_link ${backup.nic} on): it is the backup again`,
    async run(bench) {
      const { probes } = bench;
      await probes.setLink(backup.slave, true);
      const up = await probes.watch(primary.slave, (state) => slaveIn(state, backup.slave)?.mii_status === 'up', { each: primaryStaysActive(primary.slave) });
      expectCount(up.failovers, bench.failovers);
      return `${backup.slave} up, ${primary.slave} still active`;
    },
  };
}

/**
 * The primary's cable pulled and plugged back `times` times: every switch is seen, counted once and
 * logged in order, and the service never restarts.
 */
export function flapPrimary(cast: Cast, times: number): Check {
  const { primary, backup } = cast;
  return {
    name: `flap ${primary.slave} ${times} times: every switch seen and counted, the service stays up`,
    async run(bench) {
      const { probes, figures } = bench;
      const before = await probes.status(primary.slave);
      const eventsBefore = (await probes.events(primary.slave)).length;
      const started = probes.now();
      for (let i = 0; i < times; i++) {
        const off = await probes.timedSwitch(primary.slave, false, backup.slave);
        const on = await probes.timedSwitch(primary.slave, true, primary.slave);
        figures.flaps.push({ failoverMs: off.ms, failbackMs: on.ms });
      }
      const elapsed = (probes.now() - started) / 1000;
      const after = await probes.status(primary.slave);
      const switches = 2 * times;
      const failovers = (status: typeof after) => bondOf(status, cast.bond).failovers;
      expectCount(failovers(after), failovers(before) + switches);
      if (after.uptime_seconds + 1 < before.uptime_seconds + elapsed) {
        throw new Error(`the service restarted: uptime ${before.uptime_seconds} s before, ${after.uptime_seconds} s ${elapsed.toFixed(1)} s later`);
      }
      const fresh = (await probes.events(primary.slave)).slice(eventsBefore);
      if (fresh.length !== switches) throw new Error(`${fresh.length} new events in the log, expected ${switches}`);
      fresh.forEach((event, i) => {
        const [from, to] = i % 2 === 0 ? [primary.slave, backup.slave] : [backup.slave, primary.slave];
        if (event.from !== from || event.to !== to) throw new Error(`event ${i + 1} of the flaps is ${event.from} -> ${event.to}, expected ${from} -> ${to}`);
      });
      bench.failovers = failovers(after);
      await probes.reachableOnly(primary.slave, primary.slave);
      const worst = Math.max(...figures.flaps.flatMap((f) => [f.failoverMs, f.failbackMs]));
      return `${switches} switches, ${switches} more failovers counted and logged in order, slowest ${worst} ms, uptime ${after.uptime_seconds} s`;
    },
  };
}

export interface OutsideOptions {
  /** How long traffic is given to resume through the new router; a direction still silent then is null. */
  windowMs: number;
  /**
   * Where the bond's own switch times (seen on the wire) go, as the secondary figures: the first
   * failover and failback, the flaps', or nowhere (a switch made to prove something else).
   */
  bondFigures: 'first' | 'flaps' | 'none';
  /** Said of the backup in the check's name: "the re-enslaved" after it was plugged back in. */
  backupAs?: string;
}

/**
 * The primary's cable pulled and plugged back `times` times on the test bed, every switch judged
 * from the internet (where the user stands): how long inbound connections and the Pi's own
 * outbound traffic were cut until they flowed through the new router. These rows measure and never
 * judge the figures (outageWithin does); they do check what must hold whatever the image heals:
 * afterwards the service answers through the main router again, and its log and count show every
 * switch, in order, so the bond was on the backup after each failover.
 */
export function outsideFlaps(cast: Cast, times: number, opts: OutsideOptions): Check {
  const { primary, backup } = cast;
  return {
    name:
      times === 1
        ? `unplug ${primary.slave} and plug it back (set_link ${primary.nic} off, on)${opts.backupAs ? `, ${opts.backupAs} ${backup.slave} taking over` : ''}: the outage seen from the internet`
        : `flap ${primary.slave} ${times} times: the outage of every switch seen from the internet`,
    async run(bench) {
      const { probes, figures } = bench;
      const eventsBefore = (await probes.events(primary.slave)).length;
      const before = (await probes.ready(primary.slave, opts.windowMs)).bond;
      const measured: SwitchOutage[] = [];
      for (let i = 0; i < times; i++) {
        measured.push({ switch: 'failover', ...(await probes.outage(primary.slave, false, backup.slave, opts.windowMs)) });
        measured.push({ switch: 'failback', ...(await probes.outage(primary.slave, true, primary.slave, opts.windowMs)) });
      }
      figures.outages.push(...measured);
      keepBondFigures(bench, measured, opts.bondFigures);
      // After the last failback the main router carries traffic again (the measurement waited for
      // it, or for its window; a slow heal is given one more window).
      const { bond } = await probes.ready(primary.slave, opts.windowMs);
      // Only the cable moved: both lines stayed healthy, so pibond-uplink has nothing to decide.
      const decisions = uplinkDecisions(bond) - uplinkDecisions(before);
      if (decisions !== 0) throw new Error(`pibond-uplink moved the bond's primary ${decisions} times while only ${primary.slave}'s cable moved (both lines healthy): ${JSON.stringify(bond.uplinks)}`);
      const switches = 2 * times;
      expectCount(bond.failovers, bench.failovers + switches);
      bench.failovers = bond.failovers;
      const fresh = (await probes.events(primary.slave)).slice(eventsBefore);
      if (fresh.length !== switches) throw new Error(`${fresh.length} new events in the log, expected ${switches}`);
      fresh.forEach((event, i) => {
        const [from, to] = i % 2 === 0 ? [primary.slave, backup.slave] : [backup.slave, primary.slave];
        if (event.from !== from || event.to !== to) throw new Error(`switch ${i + 1}'s event is ${event.from} -> ${event.to}, expected ${from} -> ${to}`);
        const outage = measured[i];
        if (!outage) return;
        const healed = event.heal_ms !== null && event.heal_ms !== undefined;
        outage.healAction = healed ? (event.heal_action ?? null) : null;
        if (!healed) outage.healOutcome = event.heal_outcome ?? null;
      });
      const lines = (['failover', 'failback'] as const).map((which) => {
        const these = measured.filter((m) => m.switch === which);
        const words = (ms: number | null) => (ms === null ? `never within ${opts.windowMs / 1000} s` : `${ms} ms`);
        if (these.length === 1) return `${which}: inbound ${words(these[0]?.inboundMs ?? null)}, outbound ${words(these[0]?.outboundMs ?? null)}`;
        const all = (direction: 'inboundMs' | 'outboundMs') => these.map((m) => words(m[direction])).join(' ');
        return `${which}s: inbound ${all('inboundMs')}; outbound ${all('outboundMs')}`;
      });
      const heals = measured.map((m) => m.healAction ?? `-(${m.healOutcome ?? 'none recorded'})`).join(' ');
      return `${lines.join('; ')}; ${switches} switches logged in order, healed by ${heals}${failedRounds(before, bond)}`;
    },
  };
}

/**
 * pibond-uplink's failed rounds between two readings, per slave, for the row's detail: a round cut
 * by the cable may fail, so this is told, not judged (the decisions are).
 */
function failedRounds(before: BondState, after: BondState): string {
  const uplinks = after.uplinks?.uplinks;
  if (!uplinks) return '';
  const was = (slave: string) => before.uplinks?.uplinks.find((u) => u.slave === slave)?.rounds.failed ?? 0;
  return `; pibond-uplink's failed rounds meanwhile: ${uplinks.map((u) => `${u.slave} ${u.rounds.failed - was(u.slave)}`).join(', ')}`;
}

/** How many times pibond-uplink has moved the bond's primary (0 without uplink tracking). */
function uplinkDecisions(bond: BondState): number {
  return Object.values(bond.uplinks?.decision_counts ?? {}).reduce((sum, n) => sum + n, 0);
}

/** The bond-level figures from the switches measured outside, where the wire showed them. */
function keepBondFigures({ figures, goalsMet }: Bench, measured: SwitchOutage[], where: OutsideOptions['bondFigures']): void {
  if (where === 'none') return;
  const pairs = measured.flatMap((m, i) => (m.switch === 'failover' ? [[m.bondMs, measured[i + 1]?.bondMs] as const] : []));
  if (where === 'first') {
    const [failoverMs, failbackMs] = pairs[0] ?? [];
    if (typeof failoverMs === 'number') {
      figures.failoverMs = failoverMs;
      goalsMet.failover = failoverMs <= goals.failoverMs;
    }
    if (typeof failbackMs === 'number') {
      figures.failbackMs = failbackMs;
      goalsMet.failback = failbackMs <= goals.failbackMs;
    }
    return;
  }
  for (const [failoverMs, failbackMs] of pairs) {
    if (typeof failoverMs === 'number' && typeof failbackMs === 'number') figures.flaps.push({ failoverMs, failbackMs });
  }
}

/**
 * The healing's promise, judged on every switch measured so far: inbound and outbound traffic
 * resumed through the new router within `limitMs`. An image without pibond-heal fails it (FACTS:
 * 5-6 s inbound in one layout, never in the other); CI's test bed boots run it per layout, and
 * `pibond boot --strict-outage` with 3 s.
 */
export function outageWithin(limitMs: number): Check {
  return {
    name: `every switch's inbound and outbound outage is at most ${limitMs / 1000} s`,
    async run({ figures }) {
      if (figures.outages.length === 0) throw new Error('no switch was measured from the internet');
      // One phrase per direction and kind of switch: which switches broke the limit, and how.
      const over = (['inboundMs', 'outboundMs'] as const).flatMap((direction) =>
        (['failover', 'failback'] as const).flatMap((which) => {
          const broken = figures.outages
            .map((m, i) => ({ n: i + 1, ms: m[direction], which: m.switch }))
            .filter((m) => m.which === which && (m.ms === null || m.ms > limitMs));
          if (broken.length === 0) return [];
          const all = figures.outages.filter((m) => m.switch === which).length;
          const said = broken.map((m) => `#${m.n} ${m.ms === null ? 'never' : `${m.ms} ms`}`).join(', ');
          return [`${which} ${direction.replace('Ms', '')}: ${broken.length} of ${all} (${said})`];
        }),
      );
      if (over.length) throw new Error(`over ${limitMs} ms or never resumed: ${over.join('; ')}`);
      const worst = Math.max(...figures.outages.flatMap((m) => [m.inboundMs ?? 0, m.outboundMs ?? 0]));
      return `${figures.outages.length} switches, the worst ${worst} ms`;
    },
  };
}

/** sshd's banner comes back through the primary's router. */
export function sshAnswers({ primary }: Cast): Check {
  return {
    name: 'SSH answers through the primary router',
    run: ({ probes }) => probes.sshBanner(primary.slave),
  };
}

/** The backup's NIC pulled out (its netdev disappears, as a USB NIC's does): the bond runs on the primary alone. */
export function backupPulledOut({ bond, primary, backup }: Cast): Check {
  return {
    name: `pull ${backup.slave} out (device_del ${backup.nic}): ${bond} runs on ${primary.slave} alone`,
    async run(bench) {
      const { probes } = bench;
      const started = probes.now();
      await probes.unplug(backup.slave);
      const deletedMs = Math.round(probes.now() - started);
      const gone = await probes.watch(primary.slave, (state) => !slaveIn(state, backup.slave), { each: primaryStaysActive(primary.slave) });
      const listed = (gone.slaves ?? []).map((s) => s.name);
      if (listed.join(' ') !== primary.slave) throw new Error(`${bond}'s slaves are ${listed.join(', ') || 'none'}, expected ${primary.slave} alone`);
      expectCount(gone.failovers, bench.failovers);
      await probes.reachableOnly(primary.slave, primary.slave);
      return `the guest let go of ${backup.nic} ${deletedMs} ms after device_del; slaves: ${listed.join(', ')}, ${primary.slave} still active and answering`;
    },
  };
}

/**
 * A hot-plugged NIC is probed, named by the kernel and enslaved by udev and systemd, all emulated:
 * it gets 30 s.
 */
const reenslaveTimeoutMs = 30_000;

/** The backup's NIC plugged back in: the image enslaves it again, as the backup, and nothing switched. */
export function backupPluggedBackIn({ primary, backup }: Cast): Check {
  return {
    name: `plug ${backup.slave} back in (device_add ${backup.nic}): it is enslaved again, as the backup`,
    async run(bench) {
      const { probes, figures } = bench;
      const started = probes.now();
      await probes.replug(backup.slave);
      const back = await probes.watch(
        primary.slave,
        (state) => {
          const slave = slaveIn(state, backup.slave);
          return slave?.mii_status === 'up' && slave.state === 'backup';
        },
        { each: primaryStaysActive(primary.slave), timeoutMs: reenslaveTimeoutMs },
      );
      figures.reenslaveMs = Math.round(probes.now() - started);
      expectCount(back.failovers, bench.failovers);
      const slave = slaveIn(back, backup.slave);
      return `${backup.slave} enslaved, ${slave?.mii_status}${slave?.speed_mbps ? ` ${slave.speed_mbps} Mb/s` : ''}, ${slave?.state}, ${figures.reenslaveMs} ms after device_add; ${primary.slave} still active`;
    },
  };
}

// What the checks have in common.

/** Undefined when the bond is whole: every slave listed and up, the primary active. */
export function bondProblem(bond: BondState | undefined, name: string, primary: string, slaves: string[]): string | undefined {
  if (!bond) return `no bond ${name} in the status`;
  if (bond.error) return `${name} cannot be read: ${bond.error}`;
  const listed = (bond.slaves ?? []).map((s) => s.name);
  const missing = slaves.filter((s) => !listed.includes(s));
  if (missing.length) return `${name} has no slave ${missing.join(', ')} (enslaved: ${listed.join(', ') || 'none'})`;
  const down = (bond.slaves ?? []).filter((s) => s.mii_status !== 'up');
  if (down.length) return `${down.map((s) => `${s.name} is ${s.mii_status}`).join(', ')}`;
  if (bond.active_slave !== primary) return `the active slave is ${bond.active_slave}, not ${primary}`;
  // The kernel's primary (bonding/primary in sysfs), not the configuration's: a stack can write the
  // primary where it is silently ignored (networkd's PrimarySlave= on a port matched by MAC).
  // Absent only from images older than the report.
  if (bond.primary !== undefined && bond.primary !== primary) return `the kernel's primary is ${bond.primary ?? 'none'}, not ${primary}`;
  return undefined;
}

function slaveIn(bond: BondState, name: string) {
  return bond.slaves?.find((s) => s.name === name);
}

/** For watch(): while the backup comes and goes, the primary must stay active throughout. */
function primaryStaysActive(primary: string): (bond: BondState) => void {
  return (bond) => {
    if (bond.active_slave !== primary) throw new Error(`the active slave became ${bond.active_slave}`);
  };
}

function expectCount(actual: number, expected: number): void {
  if (actual !== expected) throw new Error(`the service counts ${actual} failovers, expected ${expected}`);
}

function expectLastEvent(events: FailoverEvent[], from: string, to: string): FailoverEvent {
  const last = events.at(-1);
  if (!last || last.from !== from || last.to !== to) throw new Error(`the last event is ${JSON.stringify(last ?? null)}, not ${from} -> ${to}`);
  return last;
}

export function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
