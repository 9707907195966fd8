/**
 * The build, as a table of contents: each step in a timed scope, every step verified before any
 * runs, cleanups in reverse order on every path (success, failure, Ctrl-C).
 */
import { constants } from 'node:fs';
import { access, mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { definitionHash, loadDefinition } from '../lib/definition.ts';
import { UserError } from '../lib/errors.ts';
import { diskLayout } from '../lib/layout.ts';
import type { Progress } from '../lib/log.ts';
import { CleanupStack } from './_cleanups.ts';
import type { BuildContext, BuildOptions, Step } from './context.ts';
import { host } from './steps/00-host.ts';
import { builder } from './steps/10-builder.ts';
import { container } from './steps/20-container.ts';
import { rootfs } from './steps/30-rootfs.ts';
import { rootBase } from './steps/35-root-base.ts';
import { stockImage } from './steps/32-stock-image.ts';
import { overlays } from './steps/40-overlays.ts';
import { configure } from './steps/50-configure.ts';
import { disk } from './steps/60-disk.ts';
import { lay } from './steps/62-lay.ts';
import { check } from './steps/70-check.ts';
import { outputs } from './steps/80-outputs.ts';
import { publish } from './steps/90-publish.ts';

export { defaultCacheVolume } from '../lib/docker.ts';
export const defaultOverlaysDir = join(import.meta.dirname, '..', '..', 'overlays');

export const steps: readonly Step[] = [host, builder, container, rootfs, rootBase, overlays, configure, disk, check, outputs, publish];
/** A stock image as the base (base.image): unpacked and recognised, then pibond laid onto it. */
export const stockSteps: readonly Step[] = [host, builder, container, stockImage, overlays, lay, outputs, publish];

export interface BuildResult {
  outputs: string[];
  timings: Progress['timings'];
  rootfsFromCache: boolean;
}

/**
 * Builds one definition. `signal` aborts it (Ctrl-C): the cleanups unwind at once, which removes
 * the container and so ends whatever runs in it; the build's end then awaits that same unwinding.
 */
export async function build(options: BuildOptions, progress: Progress, signal?: AbortSignal, chosenPlan?: readonly Step[]): Promise<BuildResult> {
  const def = await loadDefinition(options.definitionFile);
  const plan = chosenPlan ?? (def.base.image === undefined ? steps : stockSteps);
  await prepareOutDir(options.outDir);
  const ctx: BuildContext = {
    def,
    definitionHash: definitionHash(def),
    options,
    layout: diskLayout(def),
    progress,
    stagingDir: join(options.outDir, `.staging-${def.name}-${process.pid}`),
    signal,
  };
  progress.logTo(join(options.outDir, `${def.name}.build.log`));
  const cleanups = new CleanupStack();
  const onAbort = () => void cleanups.unwind();
  signal?.addEventListener('abort', onAbort, { once: true });
  let failures;
  try {
    for (const step of plan) await step.verify?.(ctx);
    await mkdir(ctx.stagingDir, { recursive: true });
    for (const step of plan) {
      signal?.throwIfAborted();
      if (step.cleanup) cleanups.push(step.title, async () => step.cleanup?.(ctx));
      await progress.step(step.title, () => step.run(ctx));
    }
  } finally {
    signal?.removeEventListener('abort', onAbort);
    failures = await cleanups.unwind();
    await rm(ctx.stagingDir, { recursive: true, force: true });
    for (const { name, error } of failures) progress.say(`Cleaning up after "${name}" failed: ${(error as Error)?.message ?? String(error)}`);
    await progress.close();
  }
  // Only a build whose steps all succeeded gets here: a cleanup that failed left something behind.
  if (failures[0]) throw failures[0].error;
  return { outputs: ctx.outputs ?? [], timings: progress.timings, rootfsFromCache: ctx.rootfs?.fromCache ?? false };
}

/** The output directory, made if need be; one we cannot write to is the user's to fix, before anything runs. */
async function prepareOutDir(outDir: string): Promise<void> {
  try {
    await mkdir(outDir, { recursive: true });
    await access(outDir, constants.W_OK);
  } catch (err) {
    throw new UserError(`cannot write to the output directory ${outDir} (--out): ${(err as Error).message}. Choose a directory you may write to.`);
  }
}
