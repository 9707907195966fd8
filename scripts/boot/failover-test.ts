/**
 * The failover test as one call, for the CLI (`pibond boot --test`), the e2e test and the bench:
 * check the image, make sure Docker and the builder image are there, run the scenario under an
 * overall deadline, write the report.
 */
import { join, dirname } from 'node:path';
import { ensureBuilderImage } from '../builder/builder-image.ts';
import type { CardSettings } from '../lib/card.ts';
import type { Docker } from '../lib/docker.ts';
import { ensureLocalDockerEngine } from '../lib/host.ts';
import { type BootImage, inspectImage } from './image.ts';
import { writeReport } from './report.ts';
import { type BootReport, runFailoverScenario } from './scenario.ts';
import type { Routers } from './session.ts';

export interface FailoverTestOptions {
  image: string;
  /** Default: <image's directory>/<name>.boot-report.json. */
  reportFile?: string;
  /** The whole run, boot included. */
  timeoutSeconds?: number;
  flaps?: number;
  /** QEMU's user-mode networks (the default), or the test bed of real routers in a layout. */
  routers?: Routers;
  /** On the test bed: also require every switch's outage (inbound and outbound) to be at most this (ms). */
  outageLimitMs?: number;
  /** failover (cables, the default) or uplink (on the test bed: lines cut, a router hung, loss). */
  scenario?: 'failover' | 'uplink';
  /** The uplink scenario: seconds of 30% loss on the main line. */
  lossSeconds?: number;
  /** Per-card settings for the boot (pibond flash's options); checked first. */
  card?: CardSettings;
  /** The volume that keeps the builder's kernel (default: pibond-cache). */
  cacheVolume?: string;
  say: (message: string) => void;
  signal?: AbortSignal;
}

export interface FailoverTestResult {
  report: BootReport;
  reportFile: string;
}

export const defaultTestTimeoutSeconds = 900;

export async function failoverTest(opts: FailoverTestOptions): Promise<FailoverTestResult> {
  const image = await inspectImage(opts.image);
  const { docker, builderImage } = await prepareHost(image, opts.say);
  const reportFile = opts.reportFile ?? join(dirname(image.path), `${image.name}.boot-report.json`);
  const seconds = opts.timeoutSeconds ?? defaultTestTimeoutSeconds;
  const timeout = AbortSignal.timeout(seconds * 1000);
  const signal = opts.signal ? AbortSignal.any([opts.signal, timeout]) : timeout;
  const report = await runFailoverScenario({
    docker,
    builderImage,
    image,
    say: opts.say,
    signal,
    flaps: opts.flaps,
    routers: opts.routers,
    strictOutageMs: opts.outageLimitMs,
    scenario: opts.scenario,
    lossSeconds: opts.lossSeconds,
    card: opts.card,
    cacheVolume: opts.cacheVolume,
    serialLogOnFailure: join(dirname(reportFile), `${image.name}.boot-serial.log`),
  });
  if (timeout.aborted && report.verdict === 'fail') report.error = `the run took longer than its timeout (${seconds} s)`;
  await writeReport(report, reportFile);
  return { report, reportFile };
}

/** The Docker engine, and the builder image (which has QEMU) for the mirror the image was built from. */
export async function prepareHost(image: BootImage, say: (message: string) => void): Promise<{ docker: Docker; builderImage: string }> {
  const docker = await ensureLocalDockerEngine(say, 'A test boot');
  const builderImage = await ensureBuilderImage(docker, image.manifest.definition.value.mirror, () => undefined, say);
  return { docker, builderImage };
}
