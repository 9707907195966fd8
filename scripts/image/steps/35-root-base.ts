/**
 * The root file system's base image: the ext4 of the tree the root filesystem step left (before the
 * overlays), cached by a key of everything it depends on. The disk step copies it into the image and
 * applies only what the overlays and the configuration changed since, so a rebuild rewrites a few
 * blocks of the root file system, and a cold build and a cached one write the same blocks.
 */
import { createHash } from 'node:crypto';
import type { BuildContext, Step } from '../context.ts';
import { paths, runTool, verifyTools } from '../context.ts';

/** Each base image is ~0.7 GB of data: keep the newest few (another definition may want its own). */
const keptBaseImages = 3;

/** Where the base image and the record of its tree are, inside the build container. */
export function rootBasePaths(ctx: Pick<BuildContext, 'rootfs' | 'layout' | 'options'>) {
  if (!ctx.rootfs) throw new Error('no root filesystem key (the root filesystem step did not run)');
  const key = createHash('sha256')
    .update(JSON.stringify({ rootfs: ctx.rootfs.key, rootSectors: ctx.layout.rootSectors, sourceDateEpoch: ctx.options.sourceDateEpoch }))
    .digest('hex')
    .slice(0, 24);
  return {
    key,
    file: `${paths.cache}/root-base/${key}.ext4`,
    listing: '/work/root-base.listing',
    marker: '/work/root-base.marker',
    uuid: uuidFrom(key),
  };
}

/**
 * The root file system's UUID, from the base's key rather than the definition: it seeds every
 * metadata checksum, so a UUID per definition would make a new base for a new host name. Nothing
 * names the root by UUID (fstab and cmdline.txt use the PARTUUID, which is per definition).
 */
export function uuidFrom(key: string): string {
  const hex = createHash('sha256').update(`root-uuid:${key}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-4${hex.slice(13, 16)}-8${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
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
        uuid: base.uuid,
        sourceDateEpoch: ctx.options.sourceDateEpoch,
        reuse: ctx.options.cache,
        keep: keptBaseImages,
      },
    ]);
    const report = JSON.parse(lines.findLast((line) => line.startsWith('{')) ?? '{}') as { built?: boolean };
    ctx.progress.say(report.built ? `Made the root file system's base image ${base.key}` : `Reused the root file system's base image ${base.key}`);
  },
};
