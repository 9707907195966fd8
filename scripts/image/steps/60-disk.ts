/** The SD-card image: MBR, FAT32 boot partition, ext4 root; assembled from files, no loop devices. */
import { UserError } from '../../lib/errors.ts';
import { type Step, paths, runTool, verifyTools } from '../context.ts';

/** The root filesystem alone is about 0.8 GiB; mke2fs would fail on a smaller partition after the slow steps. */
const minRootBytes = 1024 ** 3;

/** raspi-firmware's own command line, with root named by PARTUUID so it boots as mmcblk0p2 and vda2. */
export function kernelCommandLine(rootPartuuid: string): string {
  return `console=ttyS1,115200 console=tty0 root=PARTUUID=${rootPartuuid} rw fsck.repair=yes net.ifnames=0 cma=64M rootwait`;
}

export const disk: Step = {
  title: 'Assemble the disk image',
  async verify(ctx) {
    const rootBytes = ctx.layout.rootSectors * 512;
    if (rootBytes < minRootBytes) {
      throw new UserError(
        `disk.size leaves ${(rootBytes / 1024 ** 2).toFixed(0)} MiB for the root partition after disk.boot_size; the root filesystem needs at least 1 GiB. ` +
          `Make disk.size at least ${Math.ceil((ctx.def.disk.size - rootBytes + minRootBytes) / 1024 ** 2)}MiB.`,
      );
    }
    await verifyTools('assemble-disk.mjs');
  },
  async run(ctx) {
    const { layout } = ctx;
    await runTool(ctx, 'assemble-disk.mjs', [
      {
        root: paths.rootfs,
        image: paths.image(ctx.def.name),
        diskId: layout.diskId,
        bootStart: layout.bootStart,
        bootSectors: layout.bootSectors,
        rootStart: layout.rootStart,
        rootSectors: layout.rootSectors,
        totalSectors: layout.totalSectors,
        cmdline: kernelCommandLine(layout.rootPartuuid),
        sourceDateEpoch: ctx.options.sourceDateEpoch,
      },
    ]);
  },
};
