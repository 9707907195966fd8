/**
 * What the build's steps share. Built once from the typed definition and the CLI's options;
 * steps read it and add what they produce (the builder image, the container, the cache key...).
 */
import { constants } from 'node:fs';
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { recipeDir } from '../builder/builder-image.ts';
import type { Definition } from '../lib/definition.ts';
import { type Docker, type LineSink, execIn } from '../lib/docker.ts';
import type { EngineInfo } from '../lib/engine.ts';
import type { DiskLayout } from '../lib/layout.ts';
import type { LoadedLock } from '../lib/lock.ts';
import type { Progress } from '../lib/log.ts';
import type { CardSlot } from '../lib/manifest.ts';
import type { StockImage } from '../lib/stock/detect.ts';

export interface BuildOptions {
  definitionFile: string;
  outDir: string;
  /** Reuse the cached root filesystem and downloaded packages (default true). */
  cache: boolean;
  /** Seconds since the epoch for every timestamp the build writes (SOURCE_DATE_EPOCH). */
  sourceDateEpoch: number;
  /** The Docker volume that keeps downloaded packages and cached root filesystems. */
  cacheVolume: string;
  /** Folders of overlays/NN-name trees to lay in: the repo's overlays/, then any the user adds. */
  overlaysDirs: string[];
  /**
   * The lock (or manifest) whose package versions to install: given with --locked, or the
   * definition's own <name>.lock.json found beside it. Undefined: whatever the mirror has now.
   */
  lock?: { file: string; from: 'option' | 'beside the definition' };
}

export interface BuildContext {
  readonly def: Definition;
  readonly definitionHash: string;
  readonly options: BuildOptions;
  readonly layout: DiskLayout;
  readonly progress: Progress;
  /** Where outputs are written before they are renamed into options.outDir at the very end. */
  readonly stagingDir: string;
  /**
   * The build's stop (Ctrl-C). Its cleanups run at once when it fires, while the running step goes
   * on until what it waits for ends: a step that makes something must look here once it is made.
   */
  readonly signal?: AbortSignal;
  /** Set by the steps as they go. */
  docker?: Docker;
  /** Where the engine is and what it runs on: a local one gets the staging directory bind-mounted. */
  engine?: EngineInfo;
  builderImage?: string;
  container?: Docker.Container;
  rootfs?: { key: string; fromCache: boolean };
  /** The lock the rootfs step's verify read (when options.lock names one). */
  lock?: LoadedLock;
  /** The root file system's UUID, from the base image step (the same for the same packages). */
  rootBaseUuid?: string;
  /** A stock base (base.image): what it was found to be, and where its partitions are in the image. */
  stock?: StockBase;
  /** A stock base's sizes for the manifest (set by the lay step; a Debian build's come from its tree). */
  stockSizes?: { rootfsBytes: number; kernelModulesBytes: number; bootBytes: number };
  /** The card-settings slot on the boot partition (set by the disk step). */
  card?: CardSlot;
  outputs?: string[];
}

export interface StockBase {
  image: StockImage;
  /** The MBR's disk id, kept: the image's PARTUUIDs (and so its fstab and cmdline.txt) name it. */
  diskId: string;
  bootOffset: number;
  rootOffset: number;
}

/** A build step, debos-style: verify everything before anything runs; clean up in reverse order. */
export interface Step {
  readonly title: string;
  verify?(ctx: BuildContext): Promise<void>;
  run(ctx: BuildContext): Promise<void>;
  cleanup?(ctx: BuildContext): Promise<void>;
}

/** Inside the build container. */
export const paths = {
  /** The container's scratch space (an anonymous volume, removed with it). */
  work: '/work',
  rootfs: '/work/rootfs',
  /** The outputs: the staging directory bind-mounted (a local engine), or a volume they are fetched from. */
  out: '/out',
  image: (name: string) => `/out/${name}.img`,
  cache: '/cache',
  aptCache: '/cache/apt',
  rootfsCache: '/cache/rootfs',
  tools: '/usr/local/lib/pibond',
} as const;

export function requireContainer(ctx: BuildContext): { docker: Docker; container: Docker.Container } {
  if (!ctx.docker || !ctx.container) throw new Error('the build container is not running (a step ran out of order)');
  return { docker: ctx.docker, container: ctx.container };
}

/** The in-container scripts a step runs (scripts/builder/recipe/bin, installed in paths.tools). */
export type Tool =
  | 'register-binfmt.mjs'
  | 'bootstrap-rootfs'
  | 'rootfs-cache.mjs'
  | 'root-base.mjs'
  | 'configure-rootfs.mjs'
  | 'assemble-disk.mjs'
  | 'check-boot-chain.mjs'
  | 'outputs.mjs'
  | 'send-file.mjs'
  | 'stock-image.mjs'
  | 'lay-stock.mjs';

/**
 * Runs one in-container script; an object argument goes as one JSON argument (typed input, no
 * environment strings). Every line goes to the build log (and `sink`); returns standard output's
 * lines. A non-zero exit is a CommandFailed carrying the exit code and the last lines.
 */
export async function runTool(ctx: BuildContext, tool: Tool, args: readonly (string | object)[], sink?: LineSink): Promise<string[]> {
  const { docker, container } = requireContainer(ctx);
  const stdout: string[] = [];
  const cmd = [`${paths.tools}/${tool}`, ...args.map((arg) => (typeof arg === 'string' ? arg : JSON.stringify(arg)))];
  await execIn(docker, container, cmd, {
    sink: (line, stream) => {
      ctx.progress.sink(line, stream);
      sink?.(line, stream);
      if (stream === 'stdout') stdout.push(line);
    },
  });
  return stdout;
}

/** A step's verify: the scripts it runs are in the builder's recipe (a rename there fails here, not minutes in). */
export async function verifyTools(...tools: Tool[]): Promise<void> {
  for (const tool of tools) {
    try {
      await access(join(recipeDir, 'bin', tool), constants.X_OK);
    } catch {
      throw new Error(`the builder recipe lacks the executable bin/${tool} (${recipeDir})`);
    }
  }
}
