/**
 * What goes into every image's root filesystem, and what its initrd must hold.
 */
import type { Definition } from '../lib/definition.ts';
import { isSnapshotMirror } from '../lib/definition/schema.ts';

/** The archive areas the image takes packages from (the Pi's firmware blobs are in non-free-firmware). */
export const components = ['main', 'non-free-firmware'] as const;

/** The appliance's own needs, on top of Debian's minbase; the network stack's come on top (stackPackages). */
export const basePackages = [
  'systemd-sysv', 'udev', 'kmod', 'iproute2', 'netbase',
  'linux-image-arm64', 'raspi-firmware', 'nodejs', 'openssh-server', 'sudo', 'fdisk', 'tzdata',
  'ca-certificates', 'iputils-ping',
] as const;

/**
 * Each network stack's packages. systemd-networkd is part of bookworm's systemd; it learns name
 * servers from DHCP only through systemd-resolved, which netplan's networkd renderer needs too.
 * NetworkManager runs its own DHCP client and writes /etc/resolv.conf itself.
 */
export const stackPackages: Record<Definition['network']['stack'], readonly string[]> = {
  ifupdown: ['ifupdown', 'ifenslave', 'isc-dhcp-client'],
  networkd: ['systemd-resolved'],
  networkmanager: ['network-manager'],
  netplan: ['netplan.io', 'systemd-resolved'],
};

/**
 * Modules the initrd must hold to mount root: on a Pi, the SD card (sdhci-iproc on the Pi 4's
 * emmc2, bcm2835 sdhost on the Pi 3, the Pi 4's GPIO expander and GPIO regulator that power and
 * switch the card's I/O voltage); under QEMU's virt machine, virtio; and ext4 with its checksum.
 */
export const initrdModules = [
  'mmc_block', 'sdhci', 'sdhci-pltfm', 'sdhci-iproc', 'bcm2835', 'gpio-raspberrypi-exp', 'gpio-regulator',
  'ext4', 'crc32c_generic', 'virtio_blk', 'virtio_pci',
] as const;

/**
 * Modules the appliance loads from its root file system, checked (with all they depend on) on every
 * build, because the build leaves many of the kernel's modules out (bootstrap-rootfs): the bond;
 * the Pi's own NICs (genet: Pi 4, smsc95xx: Pi 3B, lan78xx: Pi 3B+) and what a backup link plugs
 * in by USB (adapters: r8152, ax88179_178a, asix; LTE sticks and phones: cdc_ether, cdc_ncm,
 * rndis_host); QEMU's virtio_net; the Pi's USB (dwc2, xhci-pci), Wi-Fi (brcmfmac), HDMI (vc4, v3d),
 * sound (snd-bcm2835); USB storage and webcams.
 */
export const applianceModules = [
  'bonding', 'genet', 'smsc95xx', 'lan78xx', 'r8152', 'ax88179_178a', 'asix', 'cdc_ether', 'cdc_ncm', 'rndis_host',
  'virtio_net', 'dwc2', 'xhci-pci', 'brcmfmac', 'vc4', 'v3d', 'snd-bcm2835', 'usb-storage', 'uas', 'uvcvideo',
] as const;

export function packageList(def: Definition): string[] {
  const wanted = new Set<string>([...basePackages, ...stackPackages[def.network.stack], ...def.packages]);
  if (def.locale !== 'C.UTF-8') wanted.add('locales');
  return [...wanted].sort();
}

/**
 * The mirror as mmdebstrap's MIRROR argument. A snapshot's Release files are past their
 * Valid-Until, which apt refuses unless told: the source then goes as a whole sources.list line
 * with check-valid-until=no (it stays in the image's sources.list, so the device's apt can still
 * read that snapshot).
 */
export function mirrorArgument(def: Pick<Definition, 'mirror' | 'base'>): string {
  if (!isSnapshotMirror(def.mirror)) return def.mirror;
  return `deb [check-valid-until=no] ${def.mirror} ${def.base.suite} ${components.join(' ')}`;
}
