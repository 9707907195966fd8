/**
 * The kernel a test boot runs. A pibond-built image, and a stock image with a generic arm64 kernel,
 * boot their own. Raspberry Pi OS's and Ubuntu's Pi kernels are built for the Pi's own chips and
 * cannot boot QEMU's virt machine: such an image boots the builder's kernel instead, Debian's arm64
 * kernel, with an initrd that lays the modules the guest needs over the image's own /lib/modules
 * (scripts/builder/recipe/bin/boot-kernel.mjs and boot-kernel-init). The kernel and initrd are made
 * once per recipe and kept in the build cache volume.
 */
import type { Docker } from '../lib/docker.ts';
import { CommandFailed, runToExit } from '../lib/docker.ts';
import { UserError } from '../lib/errors.ts';
import type { BootImage } from './image.ts';
import { guestCmdline } from './machine.ts';

/** Which kernel booted, for the report. */
export type BootKernel = { from: 'image' } | { from: 'builder'; version: string; reason: string };

/** The builder's kernel and initrd, in the cache volume. */
export interface BuilderKernel {
  version: string;
  /** The kit's directory, relative to the cache volume's root. */
  dir: string;
  reason: string;
}

/** Where a container sees the cache volume. */
export const cacheMount = '/cache';

/**
 * The modules the builder's kernel needs, by name. `initrd`: what mounts the root (loaded by the
 * initrd). `guest`: what a pibond image needs besides, laid over the root's /lib/modules (the bond,
 * the NIC, the boot partition's FAT, the packet sockets DHCP clients use); a kernel that lacks one
 * fails the kit. `optional`: there when the kernel has them (entropy, systemd's automounts, the
 * default queueing discipline).
 */
export const builderKernelModules = {
  initrd: ['virtio_pci', 'virtio_blk', 'ext4'],
  guest: ['virtio_net', 'bonding', 'af_packet', 'vfat', 'nls_cp437', 'nls_ascii', 'nls_utf8'],
  optional: ['virtio_rng', 'autofs4', 'ipv6', 'sch_fq_codel', 'configfs', 'efivarfs', 'nls_iso8859_1'],
} as const;

/** Why `image` cannot boot its own kernel under QEMU's virt machine; undefined when it can. */
export function ownKernelUnfit(image: BootImage): string | undefined {
  const stock = image.manifest.stock;
  if (!stock || stock.kernelBootsVirt) return undefined;
  if (stock.kernels.length === 0) return `${stock.name} has no kernel package pibond knows, none that boots QEMU's virt machine`;
  return `${stock.name}'s kernel (${stock.kernels.join(', ')}) cannot boot QEMU's virt machine`;
}

/**
 * The builder's kernel for this boot: made in a one-shot container (mmdebstrap extracts Debian's
 * linux-image-arm64 and busybox-static from `mirror`, nothing runs emulated) unless the cache
 * volume has it already.
 */
export async function builderKernel(
  docker: Docker,
  opts: { builderImage: string; cacheVolume: string; mirror: string; reason: string; labels: Record<string, string>; signal?: AbortSignal; say: (message: string) => void },
): Promise<BuilderKernel> {
  const input = {
    kits: `${cacheMount}/boot-kernel`,
    aptCache: `${cacheMount}/apt`,
    mirror: opts.mirror,
    suite: 'bookworm',
    initrdModules: builderKernelModules.initrd,
    guestModules: builderKernelModules.guest,
    optionalModules: builderKernelModules.optional,
  };
  const cmd = ['node', '/usr/local/lib/pibond/boot-kernel.mjs', JSON.stringify(input)];
  const lines: string[] = [];
  const { statusCode, tail } = await runToExit(
    docker,
    {
      image: opts.builderImage,
      cmd,
      binds: [`${opts.cacheVolume}:${cacheMount}`],
      labels: opts.labels,
      sink: (line) => {
        lines.push(line);
        if (line.startsWith('boot-kernel:')) opts.say(line);
      },
    },
    { signal: opts.signal, removeWithinMs: 30_000 },
  );
  if (statusCode !== 0) {
    const failure = new CommandFailed(cmd, statusCode, tail);
    if (lines.some((line) => /Failed to fetch|Could not resolve|Temporary failure resolving/.test(line))) {
      throw new UserError(`the builder's kernel for this boot could not be fetched from ${opts.mirror}: ${failure.message}`);
    }
    throw new Error(`making the builder's kernel for this boot failed: ${failure.message}`);
  }
  const last = lines.filter((line) => line.startsWith('{')).at(-1);
  const made = last ? (JSON.parse(last) as { dir: string; version: string; made: boolean; seconds: number }) : undefined;
  if (!made) throw new Error(`boot-kernel.mjs printed no result: ${lines.slice(-5).join('; ')}`);
  if (made.made) opts.say(`The builder's kernel (Debian ${made.version}) made in ${made.seconds} s and kept in the cache volume ${opts.cacheVolume}`);
  return { version: made.version, dir: made.dir.slice(cacheMount.length + 1), reason: opts.reason };
}

/**
 * The image's command line for the builder's kernel: its root for the initrd (boot-kernel-init
 * mounts the second partition, vda2), and without Raspberry Pi OS's first-boot init
 * (raspberrypi-sys-mods' firstboot), which resizes the root and reboots: QEMU would start the same
 * command line again, and again.
 */
export function builderKernelCmdline(cmdline: string): string {
  const words = cmdline.split(/\s+/).filter((word) => !word.startsWith('init=/usr/lib/raspberrypi-sys-mods/'));
  return `${guestCmdline(words.join(' '))} pibond.root=/dev/vda2`;
}
