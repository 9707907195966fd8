/**
 * Which block devices `pibond flash` may overwrite, and why it refuses the others. Everything is
 * read from sysfs, mountinfo and /proc/swaps under a root the caller gives (`SystemView`), so the
 * rules are tested against fake trees of a USB stick, an SD slot, an NVMe system disk...
 *
 * A card is a whole disk that is removable or sits on a USB or MMC bus (internal SD readers say
 * removable=0, so the bus counts too, as in rpi-imager). Refused, each with its reason: a
 * partition, the disk holding /, a disk with anything mounted or used as swap (on a partition or
 * through a device-mapper/RAID holder), a disk held by device-mapper at all, a read-only one, one
 * with no medium. A loop device is refused unless the caller allows it explicitly (--allow-loop,
 * for tests): the real-disk rules never change.
 */
import { readFile, readdir, realpath, stat } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { UserError } from '../lib/errors.ts';

/** Where the kernel's view of the disks is read from: the real one, or a fake tree in tests. */
export interface SystemView {
  sys: string;
  mountinfo: string;
  swaps: string;
  /** udev's database (file system types and labels of partitions), optional. */
  udev: string;
}

export const realSystem: SystemView = { sys: '/sys', mountinfo: '/proc/self/mountinfo', swaps: '/proc/swaps', udev: '/run/udev/data' };

export type Transport = 'usb' | 'mmc' | 'loop' | 'nvme' | 'sata' | 'virtio' | 'other';

export interface Partition {
  name: string;
  path: string;
  bytes: number;
  /** "vfat BOOTFS", from udev's database when it has it. */
  filesystem: string;
  mountpoints: string[];
}

export interface Disk {
  name: string;
  /** /dev/<name>. */
  path: string;
  /** Vendor and model, or the MMC card's name, or a loop device's backing file. */
  model: string;
  bytes: number;
  transport: Transport;
  removable: boolean;
  readOnly: boolean;
  /** The whole disk this is a partition of, when it is one. */
  partitionOf: string | undefined;
  partitions: Partition[];
  /** Every mount of the disk, a partition or a holder: "sdb1 on /media/pi/bootfs". */
  mounts: string[];
  /** Swap in use on it: "sdb2". */
  swaps: string[];
  /** Device-mapper, RAID... devices built on it: "dm-0". */
  holders: string[];
  /** It (or a partition, or a holder of one) is mounted at /. */
  holdsRoot: boolean;
}

export interface Rules {
  /** Accept file-backed loop devices (for tests: `pibond flash --allow-loop`). */
  allowLoop: boolean;
}

/**
 * The reasons `disk` must not be flashed; empty when it may be. Every reason is a sentence that
 * names the device and the rule.
 */
export function refusals(disk: Disk, rules: Rules): string[] {
  const reasons: string[] = [];
  if (disk.partitionOf !== undefined) {
    reasons.push(`${disk.path} is a partition of ${disk.partitionOf}, not a whole disk: give the disk itself (/dev/${disk.partitionOf})`);
    return reasons;
  }
  if (disk.holdsRoot) reasons.push(`${disk.path} holds / (the running system)`);
  if (disk.mounts.length > 0) reasons.push(`${disk.path} has mounted file systems (${listed(disk.mounts)}): unmount them first (udisksctl unmount -b DEVICE, or umount)`);
  if (disk.swaps.length > 0) reasons.push(`${disk.path} is in use as swap (${disk.swaps.join(', ')}): swapoff it first`);
  if (disk.holders.length > 0 && disk.mounts.length === 0) {
    reasons.push(`${disk.path} is in use by ${disk.holders.join(', ')} (device-mapper, LVM, LUKS or RAID): close those first`);
  }
  if (disk.readOnly) reasons.push(`${disk.path} is read-only (an SD card's lock switch, or a write-protected reader)`);
  if (disk.bytes === 0) reasons.push(`${disk.path} has no medium (size 0): insert a card`);
  if (disk.transport === 'loop') {
    if (!rules.allowLoop) reasons.push(`${disk.path} is a loop device (${disk.model}): pibond flashes a loop device only with --allow-loop (for testing)`);
  } else if (!disk.removable && disk.transport !== 'usb' && disk.transport !== 'mmc') {
    reasons.push(`${disk.path} is not a card: it is not removable and not on USB or an SD/MMC slot (a ${disk.transport} disk, ${disk.model}); pibond flashes only SD cards and USB drives`);
  }
  return reasons;
}

/** The kernel's name (sdb) of the block device at `path` (/dev/sdb, /dev/disk/by-id/...). */
export async function blockDeviceName(path: string, view: SystemView = realSystem): Promise<string> {
  const info = await stat(path, { bigint: true }).catch((err: NodeJS.ErrnoException) => {
    throw new UserError(`${path}: ${err.code === 'ENOENT' ? 'no such device' : err.message}; pibond flash --list shows the cards it can write`);
  });
  if (!info.isBlockDevice()) throw new UserError(`${path} is not a block device (a ${kindOf(info)}): give a card's device, such as /dev/sdb or /dev/mmcblk0; pibond flash --list shows them`);
  const { major, minor } = splitDev(info.rdev);
  const link = join(view.sys, 'dev', 'block', `${major}:${minor}`);
  return basename(await realpath(link).catch(() => {
    throw new UserError(`${path}: the kernel does not list block device ${major}:${minor} in ${view.sys}`);
  }));
}

/** Every whole disk, with what the rules need. Unused loop devices, RAM disks and optical drives are left out. */
export async function listDisks(view: SystemView = realSystem): Promise<Disk[]> {
  const names = (await readdir(join(view.sys, 'class', 'block')).catch(() => [] as string[])).sort(byNaturalName);
  const disks: Disk[] = [];
  for (const name of names) {
    if (/^(ram|zram|sr|fd)\d|^mmcblk\d+(boot\d+|rpmb)$/.test(name)) continue;
    if (await exists(join(view.sys, 'class', 'block', name, 'partition'))) continue;
    const disk = await readDisk(name, view);
    if (disk.transport === 'loop' && disk.bytes === 0) continue;
    disks.push(disk);
  }
  return disks;
}

/** The disk (or partition) `name`, as sysfs and the mount table describe it. */
export async function readDisk(name: string, view: SystemView = realSystem): Promise<Disk> {
  const dir = join(view.sys, 'class', 'block', name);
  const devicePath = await realpath(dir).catch(() => {
    throw new UserError(`/dev/${name}: the kernel lists no block device ${name}`);
  });
  const [mounts, swaps] = await Promise.all([readMounts(view), readSwaps(view)]);

  if (await exists(join(dir, 'partition'))) {
    const parent = basename(join(devicePath, '..'));
    const disk = await readDisk(parent, view);
    return { ...disk, name, path: `/dev/${name}`, partitionOf: parent, bytes: await sectors(join(dir, 'size')) };
  }

  const transport = transportOf(name, devicePath);
  const partitionNames = [];
  for (const entry of (await readdir(dir).catch(() => [] as string[])).sort(byNaturalName)) {
    if (entry.startsWith(name) && (await exists(join(dir, entry, 'partition')))) partitionNames.push(entry);
  }
  // The disk itself, its partitions, and whatever is built on them (dm-crypt, LVM, RAID), deep.
  const holders = new Set<string>();
  const users = new Map<string, string>();
  const walk = async (device: string, sysDir: string, via: string) => {
    users.set(device, via);
    for (const holder of await readdir(join(sysDir, 'holders')).catch(() => [] as string[])) {
      if (holders.has(holder)) continue;
      holders.add(holder);
      await walk(holder, join(view.sys, 'class', 'block', holder), via);
    }
  };
  await walk(name, dir, name);
  for (const partition of partitionNames) await walk(partition, join(dir, partition), partition);

  const devNumbers = new Map<string, string>();
  for (const device of users.keys()) {
    const number = (await readText(join(view.sys, 'class', 'block', device, 'dev'))) || (await readText(join(dir, device, 'dev')));
    if (number) devNumbers.set(number, device);
  }
  const mountsOf = (device: string) =>
    mounts.filter((mount) => devNumbers.get(mount.dev) === device || mount.source === `/dev/${device}` || mount.sourceName === device).map((mount) => mount.mountpoint);
  const diskMounts: string[] = [];
  let holdsRoot = false;
  for (const [device, via] of users) {
    for (const mountpoint of mountsOf(device)) {
      diskMounts.push(`${device === via ? device : `${device} (on ${via})`} on ${mountpoint}`);
      if (mountpoint === '/') holdsRoot = true;
    }
  }

  const partitions: Partition[] = [];
  for (const partition of partitionNames) {
    const number = await readText(join(dir, partition, 'dev'));
    partitions.push({
      name: partition,
      path: `/dev/${partition}`,
      bytes: await sectors(join(dir, partition, 'size')),
      filesystem: await filesystemOf(number, view),
      mountpoints: mountsOf(partition),
    });
  }

  return {
    name,
    path: `/dev/${name}`,
    model: await modelOf(dir, transport),
    bytes: await sectors(join(dir, 'size')),
    transport,
    removable: (await readText(join(dir, 'removable'))) === '1',
    readOnly: (await readText(join(dir, 'ro'))) === '1',
    partitionOf: undefined,
    partitions,
    mounts: diskMounts,
    swaps: swaps.filter((device) => users.has(device)),
    holders: [...holders],
    holdsRoot,
  };
}

/** The whole disk's lines for the confirmation and --list: model, size, transport, partitions. */
export function describeDisk(disk: Disk): string[] {
  const flags = [disk.transport, disk.removable ? 'removable' : undefined, disk.readOnly ? 'read-only' : undefined].filter(Boolean).join(', ');
  const lines = [`${disk.path}  ${formatBytes(disk.bytes)}  ${disk.model}  (${flags})`];
  if (disk.partitions.length === 0) lines.push('  no partitions');
  for (const partition of disk.partitions) {
    const mounted = partition.mountpoints.length > 0 ? `mounted on ${partition.mountpoints.join(', ')}` : 'not mounted';
    lines.push(`  ${partition.path}  ${formatBytes(partition.bytes)}  ${partition.filesystem || 'unknown contents'}  ${mounted}`);
  }
  return lines;
}

/** "a, b, c and 4 more". */
function listed(items: string[], most = 3): string {
  return items.length <= most ? items.join(', ') : `${items.slice(0, most).join(', ')} and ${items.length - most} more`;
}

export function formatBytes(bytes: number): string {
  if (bytes >= 1e9) return `${(bytes / 1e9).toFixed(1)} GB`;
  if (bytes >= 1e6) return `${(bytes / 1e6).toFixed(1)} MB`;
  return `${bytes} bytes`;
}

/** Where the disk sits, from its device path in sysfs (as lsblk's TRAN column works it out). */
function transportOf(name: string, devicePath: string): Transport {
  if (/^loop\d+$/.test(name)) return 'loop';
  if (/\/usb\d+\//.test(devicePath)) return 'usb';
  if (/^mmcblk\d+$/.test(name) || /\/mmc_host\//.test(devicePath)) return 'mmc';
  if (/^nvme/.test(name) || /\/nvme\//.test(devicePath)) return 'nvme';
  if (/\/ata\d+\//.test(devicePath)) return 'sata';
  if (/\/virtio\d+\//.test(devicePath)) return 'virtio';
  return 'other';
}

async function modelOf(dir: string, transport: Transport): Promise<string> {
  if (transport === 'loop') {
    const backing = await readText(join(dir, 'loop', 'backing_file'));
    return backing ? `loop device backed by ${backing}` : 'loop device';
  }
  if (transport === 'mmc') {
    const [type, name] = await Promise.all([readText(join(dir, 'device', 'type')), readText(join(dir, 'device', 'name'))]);
    return [type || 'SD', 'card', name].filter(Boolean).join(' ');
  }
  const [vendor, model] = await Promise.all([readText(join(dir, 'device', 'vendor')), readText(join(dir, 'device', 'model'))]);
  return [vendor, model].filter(Boolean).join(' ') || 'unknown model';
}

interface Mount {
  dev: string;
  mountpoint: string;
  source: string;
  /** The kernel name the source resolves to (/dev/mapper/x -> dm-0), when it does. */
  sourceName: string | undefined;
}

async function readMounts(view: SystemView): Promise<Mount[]> {
  const text = await readFile(view.mountinfo, 'utf8').catch(() => '');
  const mounts: Mount[] = [];
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional fields] - type source super-options
    const [before, after] = line.split(' - ');
    if (before === undefined || after === undefined) continue;
    const fields = before.split(' ');
    const source = unescapeMount(after.split(' ')[1] ?? '');
    const sourceName = source.startsWith('/dev/') ? await realpath(source).then(basename, () => undefined) : undefined;
    mounts.push({ dev: fields[2] ?? '', mountpoint: unescapeMount(fields[4] ?? ''), source, sourceName });
  }
  return mounts;
}

/** Kernel names of the block devices used as swap. */
async function readSwaps(view: SystemView): Promise<string[]> {
  const text = await readFile(view.swaps, 'utf8').catch(() => '');
  const names: string[] = [];
  for (const line of text.split('\n').slice(1)) {
    const file = line.split(/\s+/)[0];
    if (!file) continue;
    names.push(basename(unescapeMount(file)));
    const resolved = await realpath(unescapeMount(file)).then(basename, () => undefined);
    if (resolved) names.push(resolved);
  }
  return names;
}

async function filesystemOf(devNumber: string, view: SystemView): Promise<string> {
  const text = await readFile(join(view.udev, `b${devNumber}`), 'utf8').catch(() => '');
  const value = (key: string) => new RegExp(`^E:${key}=(.*)$`, 'm').exec(text)?.[1] ?? '';
  return [value('ID_FS_TYPE'), value('ID_FS_LABEL')].filter(Boolean).join(' ');
}

function unescapeMount(text: string): string {
  return text.replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(parseInt(octal, 8)));
}

/** Linux's dev_t: major in bits 8-19 and 32-43, minor in bits 0-7 and 20-31. */
function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = Number(((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn));
  const minor = Number((rdev & 0xffn) | ((rdev >> 12n) & ~0xffn));
  return { major, minor };
}

function kindOf(info: { isFile(): boolean; isDirectory(): boolean; isCharacterDevice(): boolean }): string {
  if (info.isFile()) return 'regular file';
  if (info.isDirectory()) return 'directory';
  if (info.isCharacterDevice()) return 'character device';
  return 'special file';
}

async function sectors(file: string): Promise<number> {
  return Number(await readText(file)) * 512 || 0;
}

async function readText(file: string): Promise<string> {
  return (await readFile(file, 'utf8').catch(() => '')).trim();
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

function byNaturalName(a: string, b: string): number {
  return a.localeCompare(b, 'en', { numeric: true });
}
