/**
 * The build, as a table of contents: each step in a timed scope, every step verified before any
 * runs, cleanups in reverse order on every path (success, failure, Ctrl-C).
 */
import { mkdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { definitionHash, loadDefinition } from '../lib/definition.ts';
import { diskLayout } from '../lib/layout.ts';
import type { Progress } from '../lib/log.ts';
import type { BuildContext, BuildOptions, Step } from './context.ts';
import { host } from './steps/00-host.ts';
import { builder } from './steps/10-builder.ts';
import { container } from './steps/20-container.ts';
import { rootfs } from './steps/30-rootfs.ts';
import { overlays } from './steps/40-overlays.ts';
import { configure } from './steps/50-configure.ts';
import { disk } from './steps/60-disk.ts';
import { check } from './steps/70-check.ts';
import { outputs } from './steps/80-outputs.ts';
import { publish } from './steps/90-publish.ts';

export const defaultCacheVolume = 'pibond-cache';
export const defaultOverlaysDir = join(import.meta.dirname, '..', '..', 'overlays');

export const steps: readonly Step[] = [host, builder, container, rootfs, overlays, configure, disk, check, outputs, publish];

export interface BuildResult {
  outputs: string[];
  timings: Progress['timings'];
  rootfsFromCache: boolean;
}

/**
 * Builds one definition. `signal` aborts it (Ctrl-C): the running step's container is removed,
 * which ends whatever runs in it, and the cleanups run as after any failure.
 */
export async function build(options: BuildOptions, progress: Progress, signal?: AbortSignal, plan: readonly Step[] = steps): Promise<BuildResult> {
  const def = await loadDefinition(options.definitionFile);
  await mkdir(options.outDir, { recursive: true });
  const ctx: BuildContext = {
    def,
    definitionHash: definitionHash(def),
    options,
    layout: diskLayout(def),
    progress,
    stagingDir: join(options.outDir, `.staging-${def.name}-${process.pid}`),
  };
  progress.logTo(join(options.outDir, `${def.name}.build.log`));
  const cleanups: Step[] = [];
  // Removing the container ends whatever runs in it, so the running step fails at once.
  const onAbort = () => void Promise.all(cleanups.map((step) => step.cleanup?.(ctx))).catch(() => {});
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    for (const step of plan) await step.verify?.(ctx);
    await mkdir(ctx.stagingDir, { recursive: true });
    for (const step of plan) {
      signal?.throwIfAborted();
      if (step.cleanup) cleanups.push(step);
      await progress.step(step.title, () => step.run(ctx));
    }
    return { outputs: ctx.outputs ?? [], timings: progress.timings, rootfsFromCache: ctx.rootfs?.fromCache ?? false };
  } finally {
    signal?.removeEventListener('abort', onAbort);
    for (const step of cleanups.reverse()) await step.cleanup?.(ctx);
    await rm(ctx.stagingDir, { recursive: true, force: true });
    await progress.close();
  }
}
