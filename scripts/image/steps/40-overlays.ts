/**
 * The overlays: every overlays/NN-name tree (and its rendered templates) merged in order, packed
 * into a byte-reproducible tar and streamed into the container's root filesystem.
 */
import { putArchive } from '../../lib/docker.ts';
import { collectOverlays } from '../../lib/overlay.ts';
import { packTar } from '../../lib/tar.ts';
import { type Step, paths, requireContainer } from '../context.ts';

export const overlays: Step = {
  title: 'Lay in the overlays',
  async run(ctx) {
    const { container } = requireContainer(ctx);
    const entries = await collectOverlays(ctx.options.overlaysDirs, ctx.def);
    const archive = await packTar(entries, ctx.options.sourceDateEpoch);
    ctx.progress.sink(`overlay tar: ${entries.length} entries, ${archive.length} bytes`, 'stdout');
    await putArchive(container, archive, paths.rootfs);
  },
};
