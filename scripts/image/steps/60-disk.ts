/** The SD-card image: MBR, FAT32 boot partition, ext4 root; assembled from files, no loop devices. */
import { execIn } from '../../lib/docker.ts';
import { type Step, paths, requireContainer } from '../context.ts';

/** raspi-firmware's own command line, with root named by PARTUUID so it boots as mmcblk0p2 and vda2. */
export function kernelCommandLine(rootPartuuid: string): string {
  return `console=ttyS1,115200 console=tty0 root=PARTUUID=${rootPartuuid} rw fsck.repair=yes net.ifnames=0 cma=64M rootwait`;
}

export const disk: Step = {
  title: 'Assemble the disk image',
  async run(ctx) {
    const { docker, container } = requireContainer(ctx);
    const { layout } = ctx;
    await execIn(docker, container, [`${paths.tools}/assemble-disk`, paths.rootfs, paths.image(ctx.def.name)], {
      sink: ctx.progress.sink,
      env: {
        DISK_ID: layout.diskId,
        BOOT_START: String(layout.bootStart),
        BOOT_SECTORS: String(layout.bootSectors),
        ROOT_START: String(layout.rootStart),
        ROOT_SECTORS: String(layout.rootSectors),
        TOTAL_SECTORS: String(layout.totalSectors),
        CMDLINE: kernelCommandLine(layout.rootPartuuid),
        SOURCE_DATE_EPOCH: String(ctx.options.sourceDateEpoch),
      },
    });
  },
};
