/**
 * A fake /sys, mountinfo and /proc/swaps, shaped like the kernel's: each disk's directory under
 * devices/ at its bus path (which is how the rules tell USB from SATA), /sys/class/block and
 * /sys/dev/block links, partitions as subdirectories with a `partition` file, holders/ links.
 */
import { mkdir, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, relative } from 'node:path';
import type { SystemView } from '../../scripts/flash/devices.ts';

export interface FakePartition {
  name: string;
  dev: string;
  sectors: number;
  holders?: string[];
  filesystem?: { type: string; label?: string };
}

export interface FakeDisk {
  name: string;
  /** The device's directory under /sys/devices, without the trailing block/<name>. */
  busPath: string;
  dev: string;
  sectors: number;
  removable?: boolean;
  readOnly?: boolean;
  /** device/<file> values: model, vendor, name, type. */
  device?: Record<string, string>;
  /** For loop devices: loop/backing_file. */
  backingFile?: string;
  partitions?: FakePartition[];
  holders?: string[];
}

export interface FakeMount {
  dev: string;
  mountpoint: string;
  source: string;
  type?: string;
}

export const busPaths = {
  usb: 'pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0',
  mmc: 'platform/fe340000.mmc/mmc_host/mmc0/mmc0:aaaa',
  sata: 'pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0',
  nvme: 'pci0000:00/0000:00:1d.0/0000:3d:00.0/nvme/nvme0',
  loop: 'virtual',
  dm: 'virtual',
} as const;

const made: string[] = [];

/** Removes every fake tree made so far (afterAll). */
export async function removeFakeSystems(): Promise<void> {
  await Promise.all(made.splice(0).map((root) => rm(root, { recursive: true, force: true })));
}

export async function fakeSystem(disks: FakeDisk[], mounts: FakeMount[] = [], swaps: string[] = []): Promise<SystemView> {
  const root = await mkdtemp(join(tmpdir(), 'pibond-fake-sys-'));
  made.push(root);
  const sys = join(root, 'sys');
  const put = async (file: string, text: string) => {
    await mkdir(dirname(file), { recursive: true });
    await writeFile(file, `${text}\n`);
  };
  const link = async (from: string, to: string) => {
    await mkdir(dirname(from), { recursive: true });
    await symlink(relative(dirname(from), to), from);
  };

  for (const disk of disks) {
    const dir = join(sys, 'devices', disk.busPath, 'block', disk.name);
    await put(join(dir, 'size'), String(disk.sectors));
    await put(join(dir, 'removable'), disk.removable ? '1' : '0');
    await put(join(dir, 'ro'), disk.readOnly ? '1' : '0');
    await put(join(dir, 'dev'), disk.dev);
    for (const [key, value] of Object.entries(disk.device ?? {})) await put(join(dir, 'device', key), value);
    if (disk.backingFile) await put(join(dir, 'loop', 'backing_file'), disk.backingFile);
    await mkdir(join(dir, 'holders'), { recursive: true });
    for (const holder of disk.holders ?? []) await link(join(dir, 'holders', holder), join(sys, 'devices', 'virtual', 'block', holder));
    await link(join(sys, 'class', 'block', disk.name), dir);
    await link(join(sys, 'dev', 'block', disk.dev), dir);
    for (const partition of disk.partitions ?? []) {
      const partDir = join(dir, partition.name);
      await put(join(partDir, 'partition'), '1');
      await put(join(partDir, 'size'), String(partition.sectors));
      await put(join(partDir, 'dev'), partition.dev);
      await mkdir(join(partDir, 'holders'), { recursive: true });
      for (const holder of partition.holders ?? []) await link(join(partDir, 'holders', holder), join(sys, 'devices', 'virtual', 'block', holder));
      await link(join(sys, 'class', 'block', partition.name), partDir);
      await link(join(sys, 'dev', 'block', partition.dev), partDir);
      if (partition.filesystem) {
        const { type, label } = partition.filesystem;
        await put(join(root, 'udev', `b${partition.dev}`), [`E:ID_FS_TYPE=${type}`, label ? `E:ID_FS_LABEL=${label}` : ''].join('\n'));
      }
    }
  }

  const mountinfo = mounts.map((mount, index) => `${30 + index} 1 ${mount.dev} / ${mount.mountpoint.replace(/ /g, '\\040')} rw,relatime - ${mount.type ?? 'ext4'} ${mount.source} rw`);
  await put(join(root, 'mountinfo'), mountinfo.join('\n'));
  await put(join(root, 'swaps'), ['Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority', ...swaps.map((file) => `${file}\tpartition\t1048572\t0\t-2`)].join('\n'));
  await mkdir(join(root, 'udev'), { recursive: true });
  return { sys, mountinfo: join(root, 'mountinfo'), swaps: join(root, 'swaps'), udev: join(root, 'udev') };
}
