/**
 * The stock images pibond lays its bond onto, as data: one rule per image family, read by
 * detectStock (detect.ts). A new release is a new row here. Each fact about the real images names
 * where it comes from; the recorded samples in test/fixtures/stock are checked against these rules.
 *
 * A rule matches on what the image says it is (os-release's ID and VERSION_CODENAME) plus at least
 * one marker (a file or an installed package) that makes it this family and not a look-alike of
 * its base: a plain Debian bookworm says ID=debian VERSION_CODENAME=bookworm too. Everything else
 * a rule records is what pibond then needs to know (the stack it renders, the boot partition's
 * mount point) or reports (labels, kernels, cloud-init), never a further condition: users relabel
 * partitions and swap kernels, and pibond's own look-alike test images carry Debian's kernel.
 */
import type { networkStacks } from '../definition/schema.ts';

export type NetworkStack = (typeof networkStacks)[number];

/** Kernel packages (a `*` stands for a version, as in linux-image-*-rpi-v8), and whether they boot QEMU's `virt` machine. */
export interface KernelFamily {
  readonly packages: readonly string[];
  readonly bootsVirt: boolean;
}

export interface StockRule {
  /** Stable: it goes into the build manifest (`stock.rule`). */
  readonly id: string;
  readonly name: string;
  readonly distribution: 'raspios' | 'ubuntu';
  /** os-release's VERSION_CODENAME. */
  readonly release: string;
  /** os-release's ID (any of these) and VERSION_CODENAME the image must have. */
  readonly osRelease: { readonly ids: readonly string[]; readonly codename: string };
  /** At least one of these must be present (a file in the root file system, or an installed package). */
  readonly markers: { readonly files: readonly string[]; readonly packages: readonly string[] };
  /** The network stack that runs on the image, which pibond must render the bond for. */
  readonly stack: NetworkStack;
  /** The stack's package: an image without it is refused (pibond's bond would have nothing to run it). */
  readonly stackPackage: string;
  /** Where the FAT boot partition is mounted (its fstab). */
  readonly bootMount: string;
  /** Whether the real image ships cloud-init (the image's own dpkg status decides what is reported). */
  readonly cloudInit: boolean;
  /** The real image's partition labels: reported when the image's differ, never required. */
  readonly labels: { readonly boot: string; readonly root: string };
  /** The real image's kernel. */
  readonly kernel: KernelFamily;
  /** What a user of this image should know about pibond on it, reported with every build. */
  readonly notes: readonly string[];
}

/** Raspberry Pi OS's arm64 kernels, bookworm on (pi-gen bookworm-arm64 and master, stage0/02-firmware/01-packages). */
const raspiosKernel: KernelFamily = {
  packages: [
    'linux-image-rpi-v8',
    'linux-image-rpi-2712',
    'linux-image-*-rpi-v8',
    'linux-image-*-rpi-2712',
    // Bullseye's kernel package, still there on a system upgraded from it.
    'raspberrypi-kernel',
  ],
  // Configured for the Pi's SoCs (bcm2711_defconfig, bcm2712_defconfig), not for virt's devices.
  bootsVirt: false,
};

/** Ubuntu's Raspberry Pi kernel (the preinstalled server image's linux-raspi metapackage). */
const ubuntuRaspiKernel: KernelFamily = {
  packages: ['linux-raspi', 'linux-image-raspi', 'linux-image-*-raspi'],
  bootsVirt: false,
};

/**
 * A Raspberry Pi OS rule: what bookworm and trixie share. pi-gen writes /etc/rpi-issue ("Raspberry
 * Pi reference <date>", scripts/common update_issue) and installs raspberrypi-sys-mods
 * (stage2/01-sys-tweaks/00-packages); Debian has neither. The 32-bit image says ID=raspbian
 * (Raspbian's base-files): matched too, so that it is refused by name for its architecture.
 */
function raspios(release: string, rest: Pick<StockRule, 'cloudInit' | 'notes'>): StockRule {
  return {
    id: `raspios-${release}`,
    name: `Raspberry Pi OS ${release}`,
    distribution: 'raspios',
    release,
    osRelease: { ids: ['debian', 'raspbian'], codename: release },
    markers: { files: ['/etc/rpi-issue'], packages: ['raspberrypi-sys-mods'] },
    // pi-gen stage2/02-net-tweaks/00-packages; dhcpcd went in pi-gen 8dd23cbc (2023-09-07).
    stack: 'networkmanager',
    stackPackage: 'network-manager',
    // pi-gen stage1/01-sys-tweaks/files/fstab: "BOOTDEV /boot/firmware vfat".
    bootMount: '/boot/firmware',
    // pi-gen export-image/prerun.sh: mkdosfs -n bootfs, mkfs.ext4 -L rootfs (MBR, p1 FAT32, p2 ext4).
    labels: { boot: 'bootfs', root: 'rootfs' },
    kernel: raspiosKernel,
    ...rest,
  };
}

/**
 * An Ubuntu Server for Raspberry Pi rule. ID=ubuntu says it is Ubuntu; the marker says it is built
 * for a Pi: its kernel, or the Pi's boot firmware (start*.elf, fixup*.dat) as Ubuntu packages it
 * (linux-firmware-raspi, formerly linux-firmware-raspi2) or as Debian does (raspi-firmware).
 */
function ubuntu(release: string, version: string): StockRule {
  return {
    id: `ubuntu-${release}`,
    name: `Ubuntu Server ${version} for Raspberry Pi`,
    distribution: 'ubuntu',
    release,
    osRelease: { ids: ['ubuntu'], codename: release },
    markers: { files: [], packages: ['linux-raspi', 'linux-image-raspi', 'linux-firmware-raspi', 'linux-firmware-raspi2', 'raspi-firmware'] },
    // cloud-init renders its network-config as netplan YAML (/etc/netplan/50-cloud-init.yaml) for
    // networkd: the server seed has no NetworkManager (raspberrypi/rpi-imager#1013).
    stack: 'netplan',
    stackPackage: 'netplan.io',
    // Ubuntu's boot-partition README (LP #2032128): the FAT "system-boot" is /boot/firmware, the
    // root "writable" (cmdline.txt root=LABEL=writable).
    bootMount: '/boot/firmware',
    labels: { boot: 'system-boot', root: 'writable' },
    // /etc/cloud/cloud.cfg.d/99-fake_cloud.cfg: datasource NoCloud, fs_label system-boot.
    cloudInit: true,
    kernel: ubuntuRaspiKernel,
    notes: [],
  };
}

export const stockRules: readonly StockRule[] = [
  // The 2024-11-19 release and its like: no cloud-init (pi-gen bookworm-arm64 has no stage2/04-cloud-init packages).
  raspios('bookworm', { cloudInit: false, notes: [] }),
  raspios('trixie', {
    // pi-gen stage2/04-cloud-init/00-packages: cloud-init, rpi-cloud-init-mods (ENABLE_CLOUD_INIT
    // defaults to 1, build.sh), with a NoCloud seed on the boot partition (meta-data, user-data,
    // network-config in /boot/firmware).
    cloudInit: true,
    notes: [
      // rpi-cloud-init-mods ships /usr/lib/netplan/00-network-manager-all.yaml (renderer:
      // NetworkManager; pi-gen 372e5636 put it there before the package did), and RPi's
      // network-manager is built with netplan integration (cockpit-project/bots#7432, NM GitLab #1717).
      'its NetworkManager keeps profiles it changes as netplan YAML (/etc/netplan/90-NM-*.yaml): edit the bond with pibond, not nmcli, which loses the bond\'s primary there',
    ],
  }),
  ubuntu('jammy', '22.04'),
  ubuntu('noble', '24.04'),
];

/**
 * Kernels no rule's real image ships, which an image may still carry: Debian's and Ubuntu's
 * generic arm64 kernels (pibond's look-alike test images have Debian's linux-image-arm64). They
 * boot QEMU's `virt` machine; whether they boot a Pi depends on the firmware and device trees.
 */
export const otherKernels: readonly KernelFamily[] = [
  { packages: ['linux-image-arm64', 'linux-image-*-arm64'], bootsVirt: true },
  { packages: ['linux-image-generic', 'linux-image-*-generic'], bootsVirt: true },
];
