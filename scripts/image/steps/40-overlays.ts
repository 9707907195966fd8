/**
 * The overlays: every overlays/NN-name tree (and its rendered templates) merged in order, packed
 * into a byte-reproducible tar, streamed into the container and unpacked onto its root filesystem.
 */
import { stat } from 'node:fs/promises';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { execIn, putArchive } from '../../lib/docker.ts';
import { UserError } from '../../lib/errors.ts';
import { collectOverlays, listOverlays } from '../../lib/overlay.ts';
import { packTar } from '../../lib/tar.ts';
import { type Step, paths, requireContainer } from '../context.ts';

export const overlays: Step = {
  title: 'Lay in the overlays',
  async verify(ctx) {
    for (const dir of ctx.options.overlaysDirs) {
      const info = await stat(dir).catch(() => undefined);
      if (!info?.isDirectory()) {
        throw new UserError(`--overlays ${dir}: ${info ? 'is not a directory' : 'no such directory'}; it must be a folder of NN-name overlay trees, like DIR/50-my-app/rootfs/etc/...`);
      }
      for (const overlay of await listOverlays(dir)) await verifyRender(overlay);
    }
    // Everything else an overlay can get wrong (a socket in rootfs/, a rendered path or mode) shows
    // here too: merging is cheap, and run() merges again from the same trees.
    await collectOverlays(ctx.options.overlaysDirs, ctx.def);
  },
  async run(ctx) {
    const { docker, container } = requireContainer(ctx);
    const entries = await collectOverlays(ctx.options.overlaysDirs, ctx.def);
    const archive = await packTar(entries, ctx.options.sourceDateEpoch);
    ctx.progress.sink(`overlay tar: ${entries.length} entries, ${archive.length} bytes`, 'stdout');
    // The root filesystem is an overlay mount made inside the container, which the engine's archive
    // API does not see (it would write beneath the mount): the tar goes in as a file, and tar
    // inside the container lays it in.
    const tarFile = 'overlays.tar';
    await putArchive(container, await packTar([{ type: 'file', path: tarFile, content: archive, mode: 0o644 }], ctx.options.sourceDateEpoch), paths.work);
    await execIn(docker, container, ['tar', '-x', '-p', '--numeric-owner', '-f', `${paths.work}/${tarFile}`, '-C', paths.rootfs], { sink: ctx.progress.sink });
    await execIn(docker, container, ['rm', `${paths.work}/${tarFile}`], { sink: ctx.progress.sink });
  },
};

/** An overlay's render.ts loads and exports render() (what it renders is checked by merging). */
async function verifyRender(overlay: string): Promise<void> {
  const script = join(overlay, 'render.ts');
  if (!(await stat(script).catch(() => undefined))) return;
  let module: { render?: unknown };
  try {
    module = (await import(pathToFileURL(script).href)) as { render?: unknown };
  } catch (err) {
    throw new UserError(`${script} does not load: ${(err as Error).message}`);
  }
  if (typeof module.render !== 'function') throw new UserError(`${script} must export async function render(def: Definition); it exports ${Object.keys(module).join(', ') || 'nothing'}`);
}
