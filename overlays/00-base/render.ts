/**
 * The base system's generated files: host name, the admin's sudo rule, and the one path pibond's
 * services run Node by. On pibond's own Debian base also: file systems by PARTUUID, the locale, the
 * Pi firmware's defaults (so a kernel upgrade on the device rewrites cmdline.txt with the same root)
 * and growing the root file system at first boot. A stock image (base.image) keeps its own of those:
 * its fstab, its firmware's settings, its own first-boot resize (Raspberry Pi OS's initramfs,
 * Ubuntu's cloud-init). The admin account itself is made by the build's configure (or lay) step.
 */
import type { Definition } from '../../scripts/lib/definition.ts';
import { diskLayout } from '../../scripts/lib/layout.ts';
import type { OverlayFile, OverlayLink } from '../../scripts/lib/overlay.ts';

/**
 * Every pibond unit runs `/usr/lib/pibond/node`: a link to Debian's (or the stock image's own)
 * /usr/bin/node, or, on a stock image without a Node of 18 or later, the pinned runtime itself
 * (scripts/lib/node-runtime.ts), which the lay step puts here. pibond never writes /usr/bin/node,
 * which belongs to the image's package manager.
 */
export const nodePath = 'usr/lib/pibond/node';

export async function render(def: Definition): Promise<(OverlayFile | OverlayLink)[]> {
  const common = [
    ...hostNameFiles(def),
    // The admin has no password (key-only SSH), so sudo must not ask for one.
    { path: `etc/sudoers.d/pibond-admin`, content: `${def.admin.name} ALL=(ALL:ALL) NOPASSWD: ALL\n`, mode: 0o440 },
    { path: nodePath, target: '/usr/bin/node' },
  ];
  if (def.base.image !== undefined) return common;
  const layout = diskLayout(def);
  return [
    ...common,
    {
      path: 'etc/fstab',
      content:
        '# <file system>\t<mount point>\t<type>\t<options>\t<dump>\t<pass>\n' +
        `PARTUUID=${layout.rootPartuuid}\t/\text4\tdefaults,noatime\t0\t1\n` +
        `PARTUUID=${layout.bootPartuuid}\t/boot/firmware\tvfat\tdefaults,noatime\t0\t2\n`,
      mode: 0o644,
    },
    { path: 'etc/default/locale', content: `LANG=${def.locale}\n`, mode: 0o644 },
    {
      path: 'etc/default/raspi-firmware',
      content:
        '# Written by pibond: read by raspi-firmware when it regenerates /boot/firmware/cmdline.txt.\n' +
        `ROOTPART=PARTUUID=${layout.rootPartuuid}\n` +
        'CONSOLES="ttyS1,115200 tty0"\n',
      mode: 0o644,
    },
    { path: 'etc/systemd/system/sysinit.target.wants/pibond-grow-root.service', target: '/usr/lib/systemd/system/pibond-grow-root.service' },
  ];
}

/** The files that carry the host name; a card's settings (overlays/05-card) rewrite them at first boot. */
export function hostNameFiles(def: Definition): OverlayFile[] {
  return [
    { path: 'etc/hostname', content: `${def.hostname}\n`, mode: 0o644 },
    {
      path: 'etc/hosts',
      content: `127.0.0.1\tlocalhost\n127.0.1.1\t${def.hostname}\n::1\t\tlocalhost ip6-localhost ip6-loopback\nff02::1\t\tip6-allnodes\nff02::2\t\tip6-allrouters\n`,
      mode: 0o644,
    },
  ];
}
