/**
 * The probes every check is made of: what the host can do to the machine (pull a cable, pull a NIC
 * out, plug it back) and what it can see (the status service and its event log, asked through one
 * router's port forward; sshd's banner). Slaves are named as the definition names them; each probe
 * finds the slave's NIC and router in the session's map.
 *
 * "Reachable through router X only": a GET through NIC X's forward answers while one through the
 * other NICs' forwards does not, since the bond drops what arrives on its backup slave.
 *
 * Timing: failover time runs from the set_link command to the first answer in which the service
 * names the new active slave. Answers can only come through the new active path, so that path is
 * polled every 15 ms with fresh connections, each given a short life. At most 16 are in flight:
 * dozens of half-open connections through QEMU's user-mode network stall the path for seconds
 * (seen: a failover never answered within 10 s with ~27 in flight, and answered in 65-180 ms with 16).
 */
import { setMaxListeners } from 'node:events';
import { connect } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { PollTimeout, poll } from '../lib/poll.ts';
import { type Nic, nicDevice } from './machine.ts';
import { type SshResult, sshRun } from './ssh.ts';
import type { BootSession, RouterPorts } from './session.ts';
import { type BondState, type FailoverEvent, type Status, NoAnswer, bondIn, describeEndpoint, getEvents, getStatus } from './status-api.ts';
import type { Testbed } from './testbed/index.ts';
import { type Outage, outageOf } from './testbed/prober.ts';

export interface Probes {
  /** The bond's state, asked through the router on `through`'s NIC (again while unanswered, up to 10 s). */
  bond(through: string): Promise<BondState>;
  /** The whole status answer (uptime included), asked through `through`'s router (again while unanswered, up to 10 s). */
  status(through: string): Promise<Status>;
  /** The bond's failover events, oldest first, asked through `through`'s router. */
  events(through: string): Promise<FailoverEvent[]>;
  /** Waits (up to `timeoutMs`) for the service's first answer through `through`'s router; when it came, in s since QEMU started. */
  ready(through: string, timeoutMs: number): Promise<{ bond: BondState; seconds: number }>;
  /** Lets `ms` pass. */
  pause(ms: number): Promise<void>;
  /** Answers through `through`'s router, naming `active`, while every other router is silent; says so. */
  reachableOnly(through: string, active: string): Promise<string>;
  /** Plugs or pulls `slave`'s cable (set_link). */
  setLink(slave: string, up: boolean): Promise<void>;
  /** Plugs or pulls `slave`'s cable, then times how long until the service names `active` as the active slave. */
  timedSwitch(slave: string, up: boolean, active: string): Promise<{ ms: number; bond: BondState }>;
  /**
   * Asks through `through`'s router until `done` holds, and returns that answer; throws NoChange
   * when it does not come in time, and at once when an answer fails `opts.each` or none comes.
   */
  watch(through: string, done: (bond: BondState) => boolean, opts?: WatchOptions): Promise<BondState>;
  /** Pulls `slave`'s NIC out (device_del) and waits until the guest has let it go. */
  unplug(slave: string): Promise<void>;
  /** Plugs `slave`'s NIC back in (device_add), exactly as it was. */
  replug(slave: string): Promise<void>;
  /** The first line sshd sends through `through`'s router ("SSH-2.0-OpenSSH_9.2p1 ..."), retried for a minute. */
  sshBanner(through: string): Promise<string>;
  /**
   * Runs `command` as the admin over SSH through `through`'s router, with the boot's access key
   * (user-mode routers only); its exit status and output.
   */
  sshRun(through: string, command: string): Promise<SshResult>;
  /**
   * On the test bed only: plugs or pulls `slave`'s cable and measures, from the internet, how long
   * the user's traffic is cut until it flows through `to`'s router: inbound (connections through
   * its port forward) and outbound (the Pi's own pings); null for a direction that did not resume
   * within `windowMs`.
   */
  outage(slave: string, up: boolean, to: string, windowMs: number): Promise<Outage>;
  /** On the test bed only: as `outage`, for any change (a router's WAN cut, a router hung). */
  outageAfter(change: () => Promise<unknown>, to: string, windowMs: number): Promise<Outage>;
  /** On the test bed only: its routers' controls (fail-wan, hang, loss). */
  testbed(): Testbed;
  /** Milliseconds on a monotonic clock, for the checks' own measurements. */
  now(): number;
}

export interface WatchOptions {
  /** Sees every answer first; throws to fail at once (a rule that must hold throughout). */
  each?: (bond: BondState) => void;
  /** 10 s unless told. */
  timeoutMs?: number;
  /** 50 ms unless told. */
  intervalMs?: number;
}

/** The awaited change did not come; `last` is what the service said last. */
export class NoChange extends Error {
  constructor(
    readonly last: BondState | undefined,
    timeoutMs: number,
  ) {
    super(`no change within ${timeoutMs / 1000} s; the service reports ${JSON.stringify(last)}`);
  }
}

const probeTimeoutMs = 1500;
/**
 * How long a switch may take before the check fails: a bound on "it switched at all", not the goal
 * (300 ms, reported beside each figure). On QEMU's user-mode networks the Raspberry Pi OS-like image
 * (NetworkManager, the builder's kernel) took 9-10.4 s to answer through the backup router after
 * each failover on a slower 2-core machine (2026-12-04), and 250 ms after each failback.
 */
const switchDeadlineMs = 30_000;
const maxProbesInFlight = 16;
const probeLifeMs = 250;
const maxProbeLifeMs = 3000;
/**
 * A PCIe hot-unplug waits for the guest: its pciehp driver gives the attention button 5 s to be
 * pressed again before it powers the slot off.
 */
const unplugDeadlineMs = 30_000;
const sshDeadlineMs = 60_000;
/** How long "reachable through X only" asks X again while it does not answer. */
const reachableDeadlineMs = 10_000;
/** How long a single question to the service is asked again while it goes unanswered. */
const answerDeadlineMs = 10_000;

/** The probes for one running boot of an image whose bond is called `bondName`. */
export function sessionProbes(boot: BootSession, bondName: string, signal?: AbortSignal): Probes {
  return new SessionProbes(boot, bondName, signal);
}

class SessionProbes implements Probes {
  constructor(
    private readonly boot: BootSession,
    private readonly bondName: string,
    private readonly signal: AbortSignal | undefined,
  ) {}

  async status(through: string): Promise<Status> {
    const { status } = this.routerOf(through);
    return this.answered(`the status service through ${describeEndpoint(status)}`, () => getStatus(status, probeTimeoutMs, this.signal));
  }

  async bond(through: string): Promise<BondState> {
    return bondOf(await this.status(through), this.bondName);
  }

  async events(through: string): Promise<FailoverEvent[]> {
    const { status } = this.routerOf(through);
    const events = await this.answered(`the event log through ${describeEndpoint(status)}`, () => getEvents(status, probeTimeoutMs, this.signal));
    return events.filter((e) => e.bond === this.bondName);
  }

  async ready(through: string, timeoutMs: number): Promise<{ bond: BondState; seconds: number }> {
    const answer = await this.boot.waitForStatus(this.routerOf(through).status, Date.now() + timeoutMs, this.signal);
    return { bond: bondOf(answer.status, this.bondName), seconds: (answer.at - this.boot.startedAt) / 1000 };
  }

  pause(ms: number): Promise<void> {
    return this.guarded(delay(ms, undefined, { signal: this.signal }));
  }

  async reachableOnly(through: string, active: string): Promise<string> {
    const via = this.routerOf(through);
    const others = this.boot.routers.filter((r) => r !== via);
    const ask = (router: RouterPorts) => getStatus(router.status, probeTimeoutMs, this.signal);
    // Asked again when the active path does not answer in time: an emulated guest on a busy
    // machine is slow at times. Each try asks every other path too, and any answer there fails.
    const deadline = performance.now() + reachableDeadlineMs;
    let settled: PromiseSettledResult<Status>[];
    do settled = await this.guarded(Promise.allSettled([ask(via), ...others.map(ask)]));
    while (settled[0]?.status !== 'fulfilled' && !settled.slice(1).some((s) => s.status === 'fulfilled') && performance.now() < deadline);
    const [answer, ...silences] = settled;
    if (answer?.status !== 'fulfilled') throw new Error(`no answer through ${via.nic}'s router within ${reachableDeadlineMs / 1000} s: ${(answer?.reason as Error)?.message}`);
    const leak = others.find((_, i) => silences[i]?.status === 'fulfilled');
    if (leak) throw new Error(`the service answered through ${leak.nic}'s router as well, which the bond should not allow`);
    const reported = bondOf(answer.value, this.bondName).active_slave;
    if (reported !== active) throw new Error(`the service answered through ${via.nic}'s router but reports ${reported} active, not ${active}`);
    const silent = silences.map((s, i) => `${others[i]?.nic} is silent (${((s as PromiseRejectedResult).reason as Error)?.message})`);
    return `${via.nic} answers (${active} active), ${silent.join(', ')}`;
  }

  async setLink(slave: string, up: boolean): Promise<void> {
    await this.guarded(this.boot.qmp.setLink(this.nicOf(slave).id, up));
  }

  async timedSwitch(slave: string, up: boolean, active: string): Promise<{ ms: number; bond: BondState }> {
    const { id } = this.nicOf(slave);
    const port = this.routerOf(active).status;
    const { ms, status } = await this.guarded(
      timedSwitch({
        change: () => this.boot.qmp.setLink(id, up),
        ask: (lifeMs, cancel) => getStatus(port, lifeMs, cancel),
        switched: (answer) => bondIn(answer, this.bondName)?.active_slave === active,
        what: `the service did not report ${active} active within ${switchDeadlineMs / 1000} s of set_link ${id} ${up ? 'on' : 'off'}`,
        signal: this.signal,
      }),
    );
    return { ms, bond: bondOf(status, this.bondName) };
  }

  async watch(through: string, done: (bond: BondState) => boolean, { each, timeoutMs = switchDeadlineMs, intervalMs = 50 }: WatchOptions = {}): Promise<BondState> {
    let last: BondState | undefined;
    const attempt = async () => {
      last = await this.bond(through);
      each?.(last);
      return done(last) ? last : undefined;
    };
    try {
      // An answer that breaks a rule, or none at all, fails at once: only "not yet" is retried.
      return await poll(attempt, { what: `a change of ${this.bondName}`, timeoutMs, intervalMs, signal: this.signal, retryable: () => false });
    } catch (err) {
      if (err instanceof PollTimeout) throw new NoChange(last, timeoutMs);
      throw err;
    }
  }

  async unplug(slave: string): Promise<void> {
    await this.guarded(this.boot.qmp.unplug(this.nicOf(slave).id, Date.now() + unplugDeadlineMs));
  }

  async replug(slave: string): Promise<void> {
    const nic = this.nicOf(slave);
    await this.guarded(this.boot.qmp.plug(nicDevice(nic, this.boot.nics.indexOf(nic))));
  }

  async sshBanner(through: string): Promise<string> {
    const { ssh } = this.routerOf(through);
    const what = `an SSH banner on ${describeEndpoint(ssh)}`;
    const prober = this.boot.testbed?.prober;
    const ask = () => (typeof ssh === 'number' ? sshBanner(ssh, 3000) : (prober ?? noProber()).banner(ssh.host, ssh.port, 3000, this.signal));
    return this.guarded(poll(ask, { what, timeoutMs: sshDeadlineMs, intervalMs: 500, signal: this.signal }));
  }

  async sshRun(through: string, command: string): Promise<SshResult> {
    const { ssh } = this.routerOf(through);
    const key = this.boot.card?.accessKey;
    if (!key) throw new Error('this boot has no access key (startBoot\'s accessKey option)');
    if (typeof ssh !== 'number') throw new Error('logging in is done through user-mode routers only');
    const admin = this.boot.image.manifest.definition.value.admin.name;
    return this.guarded(sshRun(ssh, admin, key.privateKey, command, 20_000));
  }

  async outage(slave: string, up: boolean, to: string, windowMs: number): Promise<Outage> {
    const { id } = this.nicOf(slave);
    return this.outageAfter(() => this.boot.qmp.setLink(id, up), to, windowMs);
  }

  async outageAfter(change: () => Promise<unknown>, to: string, windowMs: number): Promise<Outage> {
    const prober = this.boot.testbed?.prober ?? noProber();
    const router = this.routerOf(to).router;
    if (!router) throw new Error(`no test bed router carries ${to}`);
    const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
    return this.guarded(
      (async () => {
        await prober.startRecording(this.boot.nics.map((nic) => nic.mac), this.signal);
        try {
          // A moment of traffic before the change, so the silence is measured from its last packet.
          await sleep(outageLeadMs);
          const changedAt = performance.timeOrigin + performance.now();
          await change();
          const until = changedAt + windowMs;
          for (;;) {
            this.signal?.throwIfAborted();
            const record = await prober.recording(this.signal);
            const outage = outageOf(record, changedAt, router.name, router.wan, Math.min(until, record.now));
            if ((outage.inboundMs !== null && outage.outboundMs !== null) || record.now >= until) return outage;
            await sleep(outagePollMs);
          }
        } finally {
          await prober.stopRecording().catch(() => undefined);
        }
      })(),
    );
  }

  testbed(): Testbed {
    return (this.boot.testbed ?? noProber()).bed;
  }

  now(): number {
    return performance.now();
  }

  /** Every probe ends, with QEMU's last words, as soon as QEMU does. */
  /**
   * One question to the service, asked again while it goes unanswered (up to 10 s): an emulated
   * guest on a busy host misses a 1.5 s deadline at times (seen in CI right after a failback). A
   * wrong answer fails at once; "answers through X only" has its own probe that counts silences.
   */
  private answered<T>(what: string, ask: () => Promise<T>): Promise<T> {
    return this.guarded(
      poll(ask, { what, timeoutMs: answerDeadlineMs, intervalMs: 250, signal: this.signal, retryable: (err) => err instanceof NoAnswer }).catch((err: unknown) => {
        throw err instanceof PollTimeout ? new Error(`no answer from ${what} within ${answerDeadlineMs / 1000} s (last: ${err.lastProblem})`) : err;
      }),
    );
  }

  private guarded<T>(work: Promise<T>): Promise<T> {
    return this.boot.whileRunning(work);
  }

  private nicOf(slave: string): Nic {
    const nic = this.boot.nics.find((n) => n.slave === slave);
    if (!nic) throw new Error(`the machine has no NIC for slave ${slave}`);
    return nic;
  }

  private routerOf(slave: string): RouterPorts {
    const { id } = this.nicOf(slave);
    const router = this.boot.routers.find((r) => r.nic === id);
    if (!router) throw new Error(`no router forwards to ${id} (slave ${slave})`);
    return router;
  }
}

function noProber(): never {
  throw new Error('this boot is not on the test bed of real routers (--routers testbed:LAYOUT): nothing watches from the internet side');
}

/** Traffic recorded before a measured change; how often the record is read while waiting. */
const outageLeadMs = 300;
const outagePollMs = 200;

/** The bond called `name` in a status answer; an answer without it is an error. */
export function bondOf(status: Status, name: string): BondState {
  const bond = bondIn(status, name);
  if (!bond) throw new Error(`the status has no bond ${name}`);
  return bond;
}

export interface TimedSwitch {
  /** The change to time: a set_link. */
  change: () => Promise<void>;
  /** One GET of the status through the path that will carry traffic afterwards, living `lifeMs`. */
  ask: (lifeMs: number, signal: AbortSignal) => Promise<Status>;
  /** Whether an answer shows the switch done. */
  switched: (status: Status) => boolean;
  /** The error when it never comes. */
  what: string;
  signal?: AbortSignal;
}

/**
 * Makes the change and asks every 15 ms, each time on a fresh connection, until an answer shows the
 * switch: the requests sent before the switch are dropped by the bond and never answer, the first
 * one sent after it answers at once. Resolves with the ms from the change to that answer.
 */
export async function timedSwitch({ change, ask, switched, what, signal }: TimedSwitch): Promise<{ ms: number; status: Status }> {
  const cancel = new AbortController();
  // Every probe listens on this one signal.
  setMaxListeners(0, cancel.signal);
  const abort = () => cancel.abort(signal?.reason);
  signal?.addEventListener('abort', abort, { once: true });
  try {
    const started = performance.now();
    await change();
    return await new Promise<{ ms: number; status: Status }>((resolve, reject) => {
      let inFlight = 0;
      let sent = 0;
      let answered = 0;
      const timer = setInterval(() => {
        if (performance.now() - started > switchDeadlineMs) {
          clearInterval(timer);
          reject(new Error(`${what} (${sent} requests, ${answered === 0 ? 'not one answered' : `${answered} answered, none showing the switch`})`));
          return;
        }
        if (inFlight >= maxProbesInFlight) return;
        inFlight++;
        sent++;
        // Short-lived probes time the switch closely; on a loaded host the guest may answer
        // only after seconds, so later probes are given longer to answer (up to 3 s): the time
        // measured then includes that delay, and the check still sees the switch happen.
        const life = Math.min(maxProbeLifeMs, Math.max(probeLifeMs, (performance.now() - started) / 2));
        ask(life, cancel.signal).then(
          (status) => {
            inFlight--;
            answered++;
            if (!switched(status)) return;
            clearInterval(timer);
            resolve({ ms: Math.round(performance.now() - started), status });
          },
          () => inFlight--,
        );
      }, 15);
      cancel.signal.addEventListener('abort', () => {
        clearInterval(timer);
        reject(cancel.signal.reason);
      }, { once: true });
    });
  } finally {
    signal?.removeEventListener('abort', abort);
    cancel.abort();
  }
}

function sshBanner(port: number, timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no banner within ${timeoutMs} ms`)));
    socket.on('data', (chunk: Buffer) => {
      received += chunk.toString('latin1');
      const line = received.split(/\r?\n/)[0] ?? '';
      if (received.includes('\n')) {
        socket.destroy();
        if (line.startsWith('SSH-')) resolve(line);
        else reject(new Error(`not an SSH banner: ${line.slice(0, 80)}`));
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed without a banner')));
  });
}
