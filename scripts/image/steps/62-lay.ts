/**
 * Laying pibond onto a stock image (base.image), in place of the configure, disk and boot-chain
 * steps of a Debian build: the overlays' tree, the admin account, the time zone, per-device files
 * removed, cloud-init kept off the network, and a Node runtime where the image has none, all
 * written into the image's root file system with debugfs (lay-stock.mjs); the card-settings slot
 * onto its boot partition. The image's boot chain, fstab and everything else stay its own.
 */
import { readFile } from 'node:fs/promises';
import { CommandFailed, putArchive } from '../../lib/docker.ts';
import { UserError } from '../../lib/errors.ts';
import type { CardSlot } from '../../lib/manifest.ts';
import { defaultRuntimeCacheDir, ensureNodeRuntime } from '../../lib/node-runtime.ts';
import { packTar } from '../../lib/tar.ts';
import { type Step, paths, requireContainer, runTool, verifyTools } from '../context.ts';
import { checkAdminName } from './50-configure.ts';

/** Where lay-stock.mjs copies the image's dpkg status, for the outputs step's package list. */
export const stockDpkgRoot = `${paths.work}/stock-dpkg`;

/** lay-stock.mjs's report. */
export interface LayReport {
  card: CardSlot;
  sizes: { rootfsBytes: number; kernelModulesBytes: number; bootBytes: number };
}

export const lay: Step = {
  title: 'Lay pibond onto the stock image',
  async verify(ctx) {
    checkAdminName(ctx.def.admin.name);
    await verifyTools('lay-stock.mjs');
  },
  async run(ctx) {
    const { container } = requireContainer(ctx);
    const stock = ctx.stock;
    if (!stock) throw new Error('the stock image was not recognised (a step ran out of order)');
    let nodeRuntime: string | undefined;
    if (stock.image.nodejs === undefined) {
      const runtime = await ensureNodeRuntime({ cacheDir: defaultRuntimeCacheDir(), say: ctx.progress.say });
      ctx.progress.say(`Laying the Node ${runtime.version} runtime (${(runtime.bytes / 1024 ** 2).toFixed(0)} MiB): ${stock.image.name} has no Node of its own`);
      // Into the container through the engine's API (a remote engine too); packTar adds node-runtime/.
      const archive = await packTar([{ type: 'file', path: 'node-runtime/node', content: await readFile(runtime.node), mode: 0o755 }], ctx.options.sourceDateEpoch);
      await putArchive(container, archive, paths.work);
      nodeRuntime = `${paths.work}/node-runtime/node`;
    }
    let lines: string[];
    const noRoom: string[] = [];
    try {
      lines = await runTool(
        ctx,
        'lay-stock.mjs',
        [
          {
            image: paths.image(ctx.def.name),
            tree: paths.rootfs,
            rootOffset: stock.rootOffset,
            bootOffset: stock.bootOffset,
            adminUser: ctx.def.admin.name,
            authorizedKeys: ctx.def.admin.authorized_keys,
            timezone: ctx.def.timezone,
            sourceDateEpoch: ctx.options.sourceDateEpoch,
            cloudInit: stock.image.cloudInit,
            nodeRuntime,
            dpkgRoot: stockDpkgRoot,
          },
        ],
        (line) => {
          if (line.startsWith('lay-stock: no room: ')) noRoom.push(line.slice('lay-stock: no room: '.length));
        },
      );
    } catch (err) {
      if (err instanceof CommandFailed && noRoom.length > 0) throw new UserError(`base.image ${ctx.def.base.image}: ${noRoom.join(' ')}`);
      throw err;
    }
    const report = parseLayReport(lines);
    ctx.card = report.card;
    ctx.stockSizes = report.sizes;
  },
};

export function parseLayReport(lines: readonly string[]): LayReport {
  const last = lines.findLast((line) => line.startsWith('{'));
  const report = last === undefined ? undefined : (JSON.parse(last) as Partial<LayReport>);
  if (!report?.card || !report.sizes) throw new Error(`lay-stock.mjs reported no card slot; its output ended:\n  ${lines.slice(-5).join('\n  ')}`);
  return { card: report.card, sizes: report.sizes };
}
