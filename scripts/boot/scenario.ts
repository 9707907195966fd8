/**
 * The failover scenario: boot the image with a NIC for each slave, then pull and replug their
 * cables through QMP and watch the guest's status service (from the host, through each router's
 * port forward) follow: the backup takes over when the primary loses its link, the primary takes
 * back over when it returns, losing the backup changes nothing, and ten flaps of the primary are
 * each seen and counted exactly once. Last, the backup NIC is pulled out altogether (QMP
 * device_del: its netdev disappears, as a USB NIC's does) and plugged back in (device_add): the
 * image must enslave it again, as the backup, and it must carry traffic when the primary loses its
 * link.
 *
 * The scenario is the table in `failoverChecks`; each row is a check from checks.ts, made of the
 * probes in probes.ts. A new failure, router layout or network stack is a row there.
 */
import { readFile } from 'node:fs/promises';
import type { Docker } from '../lib/docker.ts';
import { isUserError } from '../lib/errors.ts';
import {
  type Cast,
  type Check,
  CheckFailed,
  backupLinkDown,
  backupLinkUp,
  backupPluggedBackIn,
  backupPulledOut,
  bondWhole,
  failback,
  failover,
  failoverLogged,
  flapPrimary,
  reachableOnly,
  runCheck,
  runChecks,
  serviceAnswers,
  sshAnswers,
} from './checks.ts';
import type { BootImage } from './image.ts';
import { type SlaveNic, slaveNics } from './machine.ts';
import { sessionProbes } from './probes.ts';
import { type BootReport, goals } from './report.ts';
import { type BootSession, startBoot } from './session.ts';

export { type BootReport, type Figures, goals } from './report.ts';

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

/** The scenario, in order: each row starts from the state the row before left. */
export function failoverChecks(cast: Cast, opts: { readyTimeoutMs: number; flaps: number }): Check[] {
  const { primary, backup } = cast;
  return [
    serviceAnswers(opts.readyTimeoutMs),
    bondWhole(cast),
    reachableOnly(primary, 'primary'),
    failover(cast, { figure: 'failover' }),
    reachableOnly(backup, 'backup'),
    failoverLogged(cast),
    failback(cast, { figure: 'failback', logged: true }),
    reachableOnly(primary, 'primary', ', again'),
    backupLinkDown(cast),
    backupLinkUp(cast),
    flapPrimary(cast, opts.flaps),
    sshAnswers(cast),
    backupPulledOut(cast),
    backupPluggedBackIn(cast),
    failover(cast, { backupAs: 'the re-enslaved', reachable: true }),
    failback(cast, { backupAs: 'the re-enslaved', reachable: true }),
  ];
}

/** The bond's primary (`bond.primary`, wherever it is listed) and its backup, with their NICs. */
export function castOf(bond: string, nics: SlaveNic[]): Cast {
  const primary = nics.find((nic) => nic.role === 'primary');
  const backup = nics.find((nic) => nic.role === 'backup');
  if (!primary || !backup) throw new Error(`${bond} needs a primary and a backup slave; its NICs are ${JSON.stringify(nics)}`);
  return { bond, primary: { slave: primary.slave, nic: primary.id }, backup: { slave: backup.slave, nic: backup.id } };
}

export async function runFailoverScenario(opts: ScenarioOptions): Promise<BootReport> {
  const { image, say, signal } = opts;
  const bondDef = image.manifest.definition.value.bond;
  const cast = castOf(bondDef.name, slaveNics(bondDef));
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
  const run = { say, signal, results: report.checks };

  let session: BootSession | undefined;
  try {
    const boot = await runCheck('QEMU starts with two NICs and answers on QMP', async () => {
      session = await startBoot({ docker: opts.docker, builderImage: opts.builderImage, image, say });
      report.ports = session.routers;
      const detail = session.routers.map((r) => `${r.nic}: status 127.0.0.1:${r.status}, ssh 127.0.0.1:${r.ssh}`).join('; ');
      return { detail, value: session };
    }, run);
    const bench = { probes: sessionProbes(boot, bondDef.name, signal), cast, figures: report.figures, goalsMet: report.goalsMet, failovers: 0 };
    const checks = failoverChecks(cast, { readyTimeoutMs: opts.readyTimeoutMs ?? 180_000, flaps: opts.flaps ?? 10 });
    report.verdict = await runChecks(checks, bench, run);
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
