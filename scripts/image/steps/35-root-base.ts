/**
 * The root file system's base image: the ext4 of the tree the root filesystem step left (before the
 * overlays), cached by a key of everything it depends on. The disk step copies it into the image and
 * applies only what the overlays and the configuration changed since, so a rebuild rewrites a few
 * blocks of the root file system, and a cold build and a cached one write the same blocks.
 */
import { createHash } from 'node:crypto';
import type { BuildContext, Step } from '../context.ts';
import { paths, runTool, verifyTools } from '../context.ts';
import { keptRootfsEntries } from './30-rootfs.ts';

/** Each base image is ~0.7 GB of data: keep as many as root file systems, one per definition built lately. */
const keptBaseImages = keptRootfsEntries;

/** Bumped when root-base.mjs makes different bytes from the same tree (2: the UUID from the packages), so no older base is reused. */
const baseFormat = 2;

/** Where the base image and the record of its tree are, inside the build container. */
export function rootBasePaths(ctx: Pick<BuildContext, 'rootfs' | 'layout' | 'options'>) {
  if (!ctx.rootfs) throw new Error('no root filesystem key (the root filesystem step did not run)');
  const key = createHash('sha256')
    .update(JSON.stringify({ rootfs: ctx.rootfs.key, rootSectors: ctx.layout.rootSectors, sourceDateEpoch: ctx.options.sourceDateEpoch, format: baseFormat }))
    .digest('hex')
    .slice(0, 24);
  return {
    key,
    file: `${paths.cache}/root-base/${key}.ext4`,
    listing: '/work/root-base.listing',
    marker: '/work/root-base.marker',
  };
}

/** What root-base.mjs reports: whether it made the base, and the file system's UUID (from the tree's packages). */
export function parseRootBaseReport(lines: readonly string[]): { built: boolean; uuid: string } {
  const last = lines.findLast((line) => line.startsWith('{'));
  const report = (last === undefined ? {} : JSON.parse(last)) as { built?: unknown; uuid?: unknown };
  if (typeof report.uuid !== 'string' || !/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/.test(report.uuid)) {
    throw new Error(`root-base.mjs reported no file system UUID; its output ended:\n  ${lines.slice(-5).join('\n  ')}`);
  }
  return { built: report.built === true, uuid: report.uuid };
}

export const rootBase: Step = {
  title: 'Root file system base image',
  async verify() {
    await verifyTools('root-base.mjs');
  },
  async run(ctx) {
    const base = rootBasePaths(ctx);
    const lines = await runTool(ctx, 'root-base.mjs', [
      {
        root: paths.rootfs,
        base: base.file,
        listing: base.listing,
        marker: base.marker,
        rootBytes: ctx.layout.rootSectors * 512,
        sourceDateEpoch: ctx.options.sourceDateEpoch,
        reuse: ctx.options.cache,
        keep: keptBaseImages,
      },
    ]);
    const report = parseRootBaseReport(lines);
    ctx.rootBaseUuid = report.uuid;
    ctx.progress.say(report.built ? `Made the root file system's base image ${base.key}` : `Reused the root file system's base image ${base.key}`);
  },
};
