/**
 * The base system's generated files: host name, file systems by PARTUUID, the admin's sudo rule,
 * locale, and the Pi firmware's defaults (so a kernel upgrade on the device rewrites cmdline.txt
 * with the same root). The admin account itself is created by the build's configure step.
 */
import type { Definition } from '../../scripts/lib/definition.ts';
import { diskLayout } from '../../scripts/lib/layout.ts';
import type { OverlayFile } from '../../scripts/lib/overlay.ts';

export async function render(def: Definition): Promise<OverlayFile[]> {
  const layout = diskLayout(def);
  return [
    ...hostNameFiles(def),
    {
      path: 'etc/fstab',
      content:
        '# <file system>\t<mount point>\t<type>\t<options>\t<dump>\t<pass>\n' +
        `PARTUUID=${layout.rootPartuuid}\t/\text4\tdefaults,noatime\t0\t1\n` +
        `PARTUUID=${layout.bootPartuuid}\t/boot/firmware\tvfat\tdefaults,noatime\t0\t2\n`,
      mode: 0o644,
    },
    // The admin has no password (key-only SSH), so sudo must not ask for one.
    { path: `etc/sudoers.d/pibond-admin`, content: `${def.admin.name} ALL=(ALL:ALL) NOPASSWD: ALL\n`, mode: 0o440 },
    { path: 'etc/default/locale', content: `LANG=${def.locale}\n`, mode: 0o644 },
    {
      path: 'etc/default/raspi-firmware',
      content:
        '# Written by pibond: read by raspi-firmware when it regenerates /boot/firmware/cmdline.txt.\n' +
        `ROOTPART=PARTUUID=${layout.rootPartuuid}\n` +
        'CONSOLES="ttyS1,115200 tty0"\n',
      mode: 0o644,
    },
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
