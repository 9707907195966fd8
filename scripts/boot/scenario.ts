/**
 * The failover scenario: boot the image with two NICs, then pull and replug their cables through
 * QMP and watch the guest's status service (from the host, through each router's port forward)
 * follow: eth1 takes over when eth0 loses its link, eth0 takes back over when it returns, losing
 * the backup changes nothing, and ten flaps of eth0 are each seen and counted exactly once. Last,
 * the backup NIC is pulled out altogether (QMP device_del: its netdev disappears, as a USB NIC's
 * does) and plugged back in (device_add): the image must enslave it again, as the backup, and it
 * must carry traffic when eth0 loses its link.
 *
 * "Reachable through router X only": a GET through NIC X's forward answers while one through the
 * other NIC's forward does not, since the bond drops what arrives on its backup slave.
 *
 * Timing: failover time runs from the set_link command to the first answer in which the service
 * names the new active slave. Answers can only come through the new active path, so that path is
 * polled every 15 ms with fresh connections, each given a short life. At most 16 are in flight:
 * dozens of half-open connections through QEMU's user-mode network stall the path for seconds
 * (seen: a failover never answered within 10 s with ~27 in flight, and answered in 65-180 ms with 16).
 */
import { setMaxListeners } from 'node:events';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Docker } from '../lib/docker.ts';
import { isUserError } from '../lib/errors.ts';
import type { BootImage } from './image.ts';
import { nicDevice } from './machine.ts';
import { type BootSession, type RouterPorts, startBoot } from './session.ts';
import { type BondState, type Status, bondIn, getEvents, getStatus } from './status-api.ts';
import { connect } from 'node:net';

export const goals = { bootToReadySeconds: 45, failoverMs: 300, failbackMs: 300 };

export interface Check {
  name: string;
  ok: boolean;
  detail: string;
  seconds: number;
}

export interface Figures {
  /** QEMU started -> the status service answered through the primary router. */
  bootToReadySeconds: number | null;
  /** set_link nic0 off -> the service reports the backup slave active. */
  failoverMs: number | null;
  /** set_link nic0 on -> the service reports the primary active again. */
  failbackMs: number | null;
  /** The same two figures for every flap of the primary. */
  flaps: { failoverMs: number; failbackMs: number }[];
  /** device_add of the backup NIC -> the service lists it as a slave again, up, as the backup. */
  reenslaveMs: number | null;
}

export interface BootReport {
  image: string;
  name: string;
  diskId: string;
  startedAt: string;
  verdict: 'pass' | 'fail';
  figures: Figures;
  goals: typeof goals;
  goalsMet: { bootToReady: boolean | null; failover: boolean | null; failback: boolean | null };
  checks: Check[];
  error?: string;
  /** The guest kernel's bonding messages from the serial console (the first 40). */
  bondingLog: string[];
  /** Where the whole serial log was kept, when the run failed. */
  serialLog?: string;
  ports?: { nic: string; status: number; ssh: number }[];
}

export interface ScenarioOptions {
  docker: Docker;
  builderImage: string;
  image: BootImage;
  say: (message: string) => void;
  /** Aborting stops the run where it is (Ctrl-C, the overall timeout). */
  signal?: AbortSignal;
  /** How long the boot may take until the status service answers. */
  readyTimeoutMs?: number;
  flaps?: number;
  /** Where to keep the serial log if the run fails. */
  serialLogOnFailure?: string;
}

/** A failed check: the scenario stops there, since each step starts from the state the last one left. */
class CheckFailed extends Error {}

const probeTimeoutMs = 1500;
const switchDeadlineMs = 10_000;
const maxProbesInFlight = 16;
const probeLifeMs = 250;
const maxProbeLifeMs = 3000;
/**
 * A PCIe hot-unplug waits for the guest: its pciehp driver gives the attention button 5 s to be
 * pressed again before it powers the slot off. A hot-plugged NIC is probed, named by the kernel and
 * enslaved by udev and systemd, all emulated.
 */
const unplugDeadlineMs = 30_000;
const replugDeadlineMs = 30_000;

export async function runFailoverScenario(opts: ScenarioOptions): Promise<BootReport> {
  const { image, say, signal } = opts;
  const bondDef = image.manifest.definition.value.bond;
  const [primary, backup] = bondDef.slaves.map((slave) => slave.name);
  if (!primary || !backup) throw new Error('the manifest names fewer than two slaves');
  const flaps = opts.flaps ?? 10;
  const report: BootReport = {
    image: image.path,
    name: image.name,
    diskId: image.manifest.diskId,
    startedAt: new Date().toISOString(),
    verdict: 'fail',
    figures: { bootToReadySeconds: null, failoverMs: null, failbackMs: null, flaps: [], reenslaveMs: null },
    goals,
    goalsMet: { bootToReady: null, failover: null, failback: null },
    checks: [],
    bondingLog: [],
  };

  const checkWith = async <T>(name: string, run: () => Promise<{ detail: string; value: T }>): Promise<T> => {
    signal?.throwIfAborted();
    const started = performance.now();
    say(`... ${name}`);
    try {
      const { detail, value } = await run();
      report.checks.push({ name, ok: true, detail, seconds: round((performance.now() - started) / 1000, 2) });
      say(`ok  ${name}${detail ? `: ${detail}` : ''}`);
      return value;
    } catch (err) {
      const detail = signal?.aborted ? String((signal.reason as Error)?.message ?? signal.reason) : (err as Error).message;
      report.checks.push({ name, ok: false, detail, seconds: round((performance.now() - started) / 1000, 2) });
      say(`FAIL ${name}: ${detail}`);
      if (isUserError(err)) throw err;
      throw new CheckFailed(detail);
    }
  };
  const check = (name: string, run: () => Promise<string>): Promise<void> =>
    checkWith(name, async () => ({ detail: await run(), value: undefined }));

  let session: BootSession | undefined;
  try {
    const boot = await checkWith('QEMU starts with two NICs and answers on QMP', async () => {
      session = await startBoot({ docker: opts.docker, builderImage: opts.builderImage, image, say });
      report.ports = session.routers;
      const detail = session.routers.map((r) => `${r.nic}: status 127.0.0.1:${r.status}, ssh 127.0.0.1:${r.ssh}`).join('; ');
      return { detail, value: session };
    });
    const [main, lte] = boot.routers as [RouterPorts, RouterPorts];
    const routerFor = (slave: string) => (slave === primary ? main : lte);
    const guarded = <T>(work: Promise<T>) => boot.whileRunning(work);

    let status: Status | undefined;
    await check('the status service answers through the primary router', async () => {
      const ready = await boot.waitForStatus(main.status, Date.now() + (opts.readyTimeoutMs ?? 180_000), signal);
      report.figures.bootToReadySeconds = round((ready.at - boot.startedAt) / 1000, 1);
      report.goalsMet.bootToReady = report.figures.bootToReadySeconds <= goals.bootToReadySeconds;
      status = ready.status;
      return `${report.figures.bootToReadySeconds} s after QEMU started`;
    });

    await check(`${bondDef.name} has both slaves up, ${primary} active`, async () => {
      // The service may answer a moment before ifupdown has enslaved the second NIC; a bond that is
      // still incomplete after a few seconds is a failed boot (see FACTS: the enslaving race).
      const deadline = Date.now() + 10_000;
      for (;;) {
        const bond = bondIn(status as Status, bondDef.name);
        const problem = bondProblem(bond, bondDef.name, primary, [primary, backup]);
        if (!problem) return `${bond?.slaves?.map((s) => `${s.name} ${s.mii_status}${s.speed_mbps ? ` ${s.speed_mbps} Mb/s` : ''}`).join(', ')}; ${bond?.failovers} failovers since the service started`;
        if (Date.now() > deadline) throw new Error(`${problem}; the service reports ${JSON.stringify(bond ?? status)}`);
        await sleep(250, undefined, { signal });
        status = await guarded(getStatus(main.status, probeTimeoutMs, signal));
      }
    });

    await check('reachable through the primary router only', () => guarded(reachableOnly(main, lte, bondDef.name, primary, signal)));

    let failovers = currentBond(status, bondDef.name).failovers;

    await check(`unplug ${primary} (set_link nic0 off): ${backup} takes over`, async () => {
      const change = await guarded(linkChange(boot, 'nic0', false, lte.status, bondDef.name, backup, signal));
      report.figures.failoverMs = change.ms;
      report.goalsMet.failover = change.ms <= goals.failoverMs;
      const bond = currentBond(change.status, bondDef.name);
      expectCount(bond.failovers, failovers + 1);
      failovers = bond.failovers;
      return `the service reported ${backup} active ${change.ms} ms after set_link`;
    });

    await check('reachable through the backup router only', () => guarded(reachableOnly(lte, main, bondDef.name, backup, signal)));

    await check('the failover is in the event log', async () => {
      const events = await guarded(getEvents(lte.status, probeTimeoutMs, signal));
      const last = events.filter((e) => e.bond === bondDef.name).at(-1);
      if (!last || last.from !== primary || last.to !== backup) throw new Error(`the last event is ${JSON.stringify(last ?? null)}, not ${primary} -> ${backup}`);
      if (last.cause !== 'link_down') throw new Error(`the event's cause is ${last.cause}, not link_down`);
      return `${last.from} -> ${last.to} (${last.cause}) at ${last.time}`;
    });

    await check(`replug ${primary} (set_link nic0 on): ${primary} is active again`, async () => {
      const change = await guarded(linkChange(boot, 'nic0', true, main.status, bondDef.name, primary, signal));
      report.figures.failbackMs = change.ms;
      report.goalsMet.failback = change.ms <= goals.failbackMs;
      const bond = currentBond(change.status, bondDef.name);
      expectCount(bond.failovers, failovers + 1);
      failovers = bond.failovers;
      const last = (await guarded(getEvents(main.status, probeTimeoutMs, signal))).filter((e) => e.bond === bondDef.name).at(-1);
      if (!last || last.from !== backup || last.to !== primary) throw new Error(`the last event is ${JSON.stringify(last ?? null)}, not ${backup} -> ${primary}`);
      return `the service reported ${primary} active ${change.ms} ms after set_link (${last.cause})`;
    });

    await check('reachable through the primary router only, again', () => guarded(reachableOnly(main, lte, bondDef.name, primary, signal)));

    await check(`unplug ${backup} (set_link nic1 off): nothing changes for traffic`, async () => {
      await boot.qmp.setLink('nic1', false);
      const down = await guarded(waitForBond(main.status, bondDef.name, (bond) => slaveIn(bond, backup)?.mii_status !== 'up', signal, (bond) => {
        if (bond.active_slave !== primary) throw new Error(`the active slave became ${bond.active_slave}`);
      }));
      const bond = currentBond(down, bondDef.name);
      expectCount(bond.failovers, failovers);
      await guarded(reachableOnly(main, lte, bondDef.name, primary, signal));
      return `${backup} is ${slaveIn(bond, backup)?.mii_status}, ${primary} still active and answering, no failover`;
    });

    await check(`replug ${backup} (set_link nic1 on): it is the backup again`, async () => {
      await boot.qmp.setLink('nic1', true);
      const up = await guarded(waitForBond(main.status, bondDef.name, (bond) => slaveIn(bond, backup)?.mii_status === 'up', signal, (bond) => {
        if (bond.active_slave !== primary) throw new Error(`the active slave became ${bond.active_slave}`);
      }));
      expectCount(currentBond(up, bondDef.name).failovers, failovers);
      return `${backup} up, ${primary} still active`;
    });

    await check(`flap ${primary} ${flaps} times: every switch seen and counted, the service stays up`, async () => {
      const before = await guarded(getStatus(main.status, probeTimeoutMs, signal));
      const eventsBefore = (await guarded(getEvents(main.status, probeTimeoutMs, signal))).filter((e) => e.bond === bondDef.name).length;
      const started = performance.now();
      for (let i = 0; i < flaps; i++) {
        const off = await guarded(linkChange(boot, 'nic0', false, lte.status, bondDef.name, backup, signal));
        const on = await guarded(linkChange(boot, 'nic0', true, main.status, bondDef.name, primary, signal));
        report.figures.flaps.push({ failoverMs: off.ms, failbackMs: on.ms });
      }
      const elapsed = (performance.now() - started) / 1000;
      const after = await guarded(getStatus(routerFor(primary).status, probeTimeoutMs, signal));
      const switches = 2 * flaps;
      expectCount(currentBond(after, bondDef.name).failovers, currentBond(before, bondDef.name).failovers + switches);
      if (after.uptime_seconds + 1 < before.uptime_seconds + elapsed) {
        throw new Error(`the service restarted: uptime ${before.uptime_seconds} s before, ${after.uptime_seconds} s ${elapsed.toFixed(1)} s later`);
      }
      const events = (await guarded(getEvents(main.status, probeTimeoutMs, signal))).filter((e) => e.bond === bondDef.name);
      const fresh = events.slice(eventsBefore);
      if (fresh.length !== switches) throw new Error(`${fresh.length} new events in the log, expected ${switches}`);
      fresh.forEach((event, i) => {
        const [from, to] = i % 2 === 0 ? [primary, backup] : [backup, primary];
        if (event.from !== from || event.to !== to) throw new Error(`event ${i + 1} of the flaps is ${event.from} -> ${event.to}, expected ${from} -> ${to}`);
      });
      failovers = currentBond(after, bondDef.name).failovers;
      await guarded(reachableOnly(main, lte, bondDef.name, primary, signal));
      const worst = Math.max(...report.figures.flaps.flatMap((f) => [f.failoverMs, f.failbackMs]));
      return `${switches} switches, ${switches} more failovers counted and logged in order, slowest ${worst} ms, uptime ${after.uptime_seconds} s`;
    });

    await check('SSH answers through the primary router', async () => {
      const banner = await guarded(waitForSshBanner(main.ssh, Date.now() + 60_000, signal));
      return banner;
    });

    const backupNic = boot.nics[1];
    if (!backupNic) throw new Error('the machine has no second NIC');

    await check(`pull ${backup} out (device_del nic1): ${bondDef.name} runs on ${primary} alone`, async () => {
      const started = performance.now();
      await guarded(boot.qmp.unplug(backupNic.id, Date.now() + unplugDeadlineMs));
      const deletedMs = Math.round(performance.now() - started);
      const gone = await guarded(waitForBond(main.status, bondDef.name, (bond) => !slaveIn(bond, backup), signal, (bond) => {
        if (bond.active_slave !== primary) throw new Error(`the active slave became ${bond.active_slave}`);
      }));
      const bond = currentBond(gone, bondDef.name);
      const listed = (bond.slaves ?? []).map((s) => s.name);
      if (listed.join(' ') !== primary) throw new Error(`${bondDef.name}'s slaves are ${listed.join(', ') || 'none'}, expected ${primary} alone`);
      expectCount(bond.failovers, failovers);
      await guarded(reachableOnly(main, lte, bondDef.name, primary, signal));
      return `the guest let go of nic1 ${deletedMs} ms after device_del; slaves: ${listed.join(', ')}, ${primary} still active and answering`;
    });

    await check(`plug ${backup} back in (device_add nic1): it is enslaved again, as the backup`, async () => {
      const started = performance.now();
      await guarded(boot.qmp.plug(nicDevice(backupNic, 1)));
      const back = await guarded(waitForBond(main.status, bondDef.name, (bond) => {
        const slave = slaveIn(bond, backup);
        return slave?.mii_status === 'up' && slave.state === 'backup';
      }, signal, (bond) => {
        if (bond.active_slave !== primary) throw new Error(`the active slave became ${bond.active_slave}`);
      }, replugDeadlineMs));
      report.figures.reenslaveMs = Math.round(performance.now() - started);
      const bond = currentBond(back, bondDef.name);
      expectCount(bond.failovers, failovers);
      const slave = slaveIn(bond, backup);
      return `${backup} enslaved, ${slave?.mii_status}${slave?.speed_mbps ? ` ${slave.speed_mbps} Mb/s` : ''}, ${slave?.state}, ${report.figures.reenslaveMs} ms after device_add; ${primary} still active`;
    });

    await check(`unplug ${primary} (set_link nic0 off): the re-enslaved ${backup} takes over`, async () => {
      const change = await guarded(linkChange(boot, 'nic0', false, lte.status, bondDef.name, backup, signal));
      expectCount(currentBond(change.status, bondDef.name).failovers, failovers + 1);
      failovers += 1;
      await guarded(reachableOnly(lte, main, bondDef.name, backup, signal));
      return `the service reported ${backup} active ${change.ms} ms after set_link, answering through nic1 only`;
    });

    await check(`replug ${primary} (set_link nic0 on): it takes back over from the re-enslaved ${backup}`, async () => {
      const change = await guarded(linkChange(boot, 'nic0', true, main.status, bondDef.name, primary, signal));
      expectCount(currentBond(change.status, bondDef.name).failovers, failovers + 1);
      failovers += 1;
      await guarded(reachableOnly(main, lte, bondDef.name, primary, signal));
      return `the service reported ${primary} active ${change.ms} ms after set_link, answering through nic0 only`;
    });

    report.verdict = 'pass';
  } catch (err) {
    if (isUserError(err)) throw err;
    report.verdict = 'fail';
    if (!(err instanceof CheckFailed)) report.error = (err as Error)?.stack ?? String(err);
  } finally {
    const boot: BootSession | undefined = session;
    if (boot) {
      try {
        report.bondingLog = await bondingLines(boot.serialLogPath);
        if (report.verdict === 'fail' && opts.serialLogOnFailure) {
          await boot.keepSerialLog(opts.serialLogOnFailure);
          report.serialLog = opts.serialLogOnFailure;
        }
      } finally {
        await boot.stop();
      }
    }
  }
  return report;
}

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
  return undefined;
}

function currentBond(status: Status | undefined, name: string): BondState {
  const bond = status && bondIn(status, name);
  if (!bond) throw new Error(`the status has no bond ${name}`);
  return bond;
}

function slaveIn(bond: BondState, name: string) {
  return bond.slaves?.find((s) => s.name === name);
}

function expectCount(actual: number, expected: number): void {
  if (actual !== expected) throw new Error(`the service counts ${actual} failovers, expected ${expected}`);
}

/**
 * The answering path must be `via` and report `active` as the active slave, while `other` stays
 * silent. Both are asked at once.
 */
async function reachableOnly(
  via: { nic: string; status: number },
  other: { nic: string; status: number },
  bond: string,
  active: string,
  signal?: AbortSignal,
): Promise<string> {
  const [answer, silence] = await Promise.allSettled([getStatus(via.status, probeTimeoutMs, signal), getStatus(other.status, probeTimeoutMs, signal)]);
  if (answer.status === 'rejected') throw new Error(`no answer through ${via.nic}'s router: ${(answer.reason as Error).message}`);
  if (silence.status === 'fulfilled') throw new Error(`the service answered through ${other.nic}'s router as well, which the bond should not allow`);
  const reported = currentBond(answer.value, bond).active_slave;
  if (reported !== active) throw new Error(`the service answered through ${via.nic}'s router but reports ${reported} active, not ${active}`);
  return `${via.nic} answers (${active} active), ${other.nic} is silent (${(silence.reason as Error).message})`;
}

/**
 * Changes a link with QMP and polls the status service through `port` (the path that will carry
 * traffic afterwards) until it names `expected` as the active slave. Requests go out every 15 ms,
 * each on its own connection: the ones sent before the switch are dropped by the bond and never
 * answer, the first one sent after it answers at once.
 */
export async function linkChange(
  boot: BootSession,
  nic: string,
  up: boolean,
  port: number,
  bond: string,
  expected: string,
  signal?: AbortSignal,
): Promise<{ ms: number; status: Status }> {
  const cancel = new AbortController();
  // Every probe listens on this one signal.
  setMaxListeners(0, cancel.signal);
  const abort = () => cancel.abort(signal?.reason);
  signal?.addEventListener('abort', abort, { once: true });
  try {
    const started = performance.now();
    await boot.qmp.setLink(nic, up);
    return await new Promise<{ ms: number; status: Status }>((resolve, reject) => {
      let inFlight = 0;
      const timer = setInterval(() => {
        if (performance.now() - started > switchDeadlineMs) {
          clearInterval(timer);
          reject(new Error(`the service did not report ${expected} active within ${switchDeadlineMs / 1000} s of set_link ${nic} ${up ? 'on' : 'off'}`));
          return;
        }
        if (inFlight >= maxProbesInFlight) return;
        inFlight++;
        // Short-lived probes time the switch closely; on a loaded host the guest may answer
        // only after seconds, so later probes are given longer to answer (up to 3 s): the time
        // measured then includes that delay, and the check still sees the switch happen.
        const life = Math.min(maxProbeLifeMs, Math.max(probeLifeMs, (performance.now() - started) / 2));
        getStatus(port, life, cancel.signal).then(
          (status) => {
            inFlight--;
            if (bondIn(status, bond)?.active_slave !== expected) return;
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

/** Polls the status through `port` (every 50 ms, 10 s unless told) until `done`; every answer goes past `each` first. */
async function waitForBond(
  port: number,
  bond: string,
  done: (bond: BondState) => boolean,
  signal: AbortSignal | undefined,
  each: (bond: BondState) => void,
  deadlineMs = switchDeadlineMs,
): Promise<Status> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const status = await getStatus(port, probeTimeoutMs, signal);
    const state = currentBond(status, bond);
    each(state);
    if (done(state)) return status;
    if (Date.now() > deadline) throw new Error(`no change within ${deadlineMs / 1000} s; the service reports ${JSON.stringify(state)}`);
    await sleep(50, undefined, { signal });
  }
}

/** The first line sshd sends ("SSH-2.0-OpenSSH_9.2p1 ..."), retried until `deadline`. */
async function waitForSshBanner(port: number, deadline: number, signal?: AbortSignal): Promise<string> {
  let lastError = '';
  for (;;) {
    signal?.throwIfAborted();
    try {
      return await sshBanner(port, 3000);
    } catch (err) {
      lastError = (err as Error).message;
    }
    if (Date.now() > deadline) throw new Error(`no SSH banner on 127.0.0.1:${port} (last error: ${lastError})`);
    await sleep(500, undefined, { signal });
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

/** The guest kernel's bonding lines on the serial console: how the bond came together. */
async function bondingLines(serialLog: string): Promise<string[]> {
  const text = await readFile(serialLog, 'utf8').catch(() => '');
  return text
    .split(/\r?\n/)
    // eslint-disable-next-line no-control-regex
    .map((line) => line.replace(/\x1b\[[0-9;]*m/g, '').trim())
    .filter((line) => /\bbond\d|bonding|ifup|networking/i.test(line))
    .slice(0, 40);
}

function round(value: number, digits: number): number {
  const factor = 10 ** digits;
  return Math.round(value * factor) / factor;
}
