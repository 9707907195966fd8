import { rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkedDisk, listing } from '../../scripts/flash/cli.ts';
import { type Disk, blockDeviceName, describeDisk, listDisks, readDisk, refusals } from '../../scripts/flash/devices.ts';
import { type FakeDisk, busPaths, fakeSystem, removeFakeSystems } from './_fake-system.ts';

afterAll(removeFakeSystems);

const gib = (n: number) => n * 2 * 1024 * 1024;

const usbStick: FakeDisk = {
  name: 'sdb',
  busPath: busPaths.usb,
  dev: '8:16',
  sectors: gib(16),
  removable: false, // many USB sticks and readers say 0: the bus decides
  device: { vendor: 'SanDisk', model: 'Ultra Fit' },
  partitions: [
    { name: 'sdb1', dev: '8:17', sectors: gib(1) / 4, filesystem: { type: 'vfat', label: 'bootfs' } },
    { name: 'sdb2', dev: '8:18', sectors: gib(15), filesystem: { type: 'ext4', label: 'rootfs' } },
  ],
};
const sdSlot: FakeDisk = { name: 'mmcblk0', busPath: busPaths.mmc, dev: '179:0', sectors: gib(32), device: { type: 'SD', name: 'SC32G' } };
const cardReader: FakeDisk = { name: 'sdc', busPath: busPaths.sata.replace('ata1', 'ata3'), dev: '8:32', sectors: gib(8), removable: true, device: { vendor: 'Generic', model: 'SD/MMC Reader' } };
const nvmeSystem: FakeDisk = {
  name: 'nvme0n1',
  busPath: busPaths.nvme,
  dev: '259:0',
  sectors: gib(512),
  device: { model: 'Samsung SSD 980' },
  partitions: [
    { name: 'nvme0n1p1', dev: '259:1', sectors: gib(1) },
    { name: 'nvme0n1p2', dev: '259:2', sectors: gib(500) },
  ],
};
const sataDisk: FakeDisk = { name: 'sda', busPath: busPaths.sata, dev: '8:0', sectors: gib(1000), device: { vendor: 'ATA', model: 'WDC WD10EZEX' } };
const loopDevice: FakeDisk = { name: 'loop3', busPath: busPaths.loop, dev: '7:3', sectors: gib(2), backingFile: '/tmp/card.img' };
const unusedLoop: FakeDisk = { name: 'loop4', busPath: busPaths.loop, dev: '7:4', sectors: 0 };

async function diskIn(disks: FakeDisk[], name: string, mounts: Parameters<typeof fakeSystem>[1] = [], swaps: string[] = []): Promise<Disk> {
  return readDisk(name, await fakeSystem(disks, mounts, swaps));
}

const rootMount = { dev: '259:2', mountpoint: '/', source: '/dev/nvme0n1p2' };

describe('which disks pibond flash accepts', () => {
  it('a USB stick (removable=0, but on a USB bus)', async () => {
    const disk = await diskIn([usbStick], 'sdb');
    expect(disk).toMatchObject({ transport: 'usb', removable: false, bytes: 16 * 1024 ** 3, model: 'SanDisk Ultra Fit' });
    expect(refusals(disk, { allowLoop: false })).toEqual([]);
    expect(describeDisk(disk)).toEqual([
      '/dev/sdb  17.2 GB  SanDisk Ultra Fit  (usb)',
      '  /dev/sdb1  268.4 MB  vfat bootfs  not mounted',
      '  /dev/sdb2  16.1 GB  ext4 rootfs  not mounted',
    ]);
  });

  it('an SD card in an MMC slot', async () => {
    const disk = await diskIn([sdSlot], 'mmcblk0');
    expect(disk).toMatchObject({ transport: 'mmc', model: 'SD card SC32G' });
    expect(refusals(disk, { allowLoop: false })).toEqual([]);
  });

  it('a card reader that says removable=1, whatever its bus', async () => {
    const disk = await diskIn([cardReader], 'sdc');
    expect(disk).toMatchObject({ transport: 'sata', removable: true });
    expect(refusals(disk, { allowLoop: false })).toEqual([]);
  });

  it('a loop device only with --allow-loop', async () => {
    const disk = await diskIn([loopDevice], 'loop3');
    expect(disk.model).toBe('loop device backed by /tmp/card.img');
    expect(refusals(disk, { allowLoop: false })).toEqual(['/dev/loop3 is a loop device (loop device backed by /tmp/card.img): pibond flashes a loop device only with --allow-loop (for testing)']);
    expect(refusals(disk, { allowLoop: true })).toEqual([]);
  });
});

describe('which disks pibond flash refuses, and why', () => {
  it('the NVMe system disk holding /', async () => {
    const reasons = refusals(await diskIn([nvmeSystem], 'nvme0n1', [rootMount, { dev: '259:1', mountpoint: '/boot/efi', source: '/dev/nvme0n1p1', type: 'vfat' }]), { allowLoop: true });
    expect(reasons).toEqual([
      '/dev/nvme0n1 holds / (the running system)',
      '/dev/nvme0n1 has mounted file systems (nvme0n1p1 on /boot/efi, nvme0n1p2 on /): unmount them first (udisksctl unmount -b DEVICE, or umount)',
      '/dev/nvme0n1 is not a card: it is not removable and not on USB or an SD/MMC slot (a nvme disk, Samsung SSD 980); pibond flashes only SD cards and USB drives',
    ]);
  });

  it('a SATA disk, even unmounted: not removable, not USB or MMC', async () => {
    expect(refusals(await diskIn([sataDisk], 'sda'), { allowLoop: true })).toEqual([
      '/dev/sda is not a card: it is not removable and not on USB or an SD/MMC slot (a sata disk, ATA WDC WD10EZEX); pibond flashes only SD cards and USB drives',
    ]);
  });

  it('a partition, even of a card', async () => {
    const disk = await diskIn([usbStick], 'sdb1');
    expect(disk.partitionOf).toBe('sdb');
    expect(refusals(disk, { allowLoop: false })).toEqual(['/dev/sdb1 is a partition of sdb, not a whole disk: give the disk itself (/dev/sdb)']);
  });

  it('a card with a mounted partition (a desktop automounted it)', async () => {
    const disk = await diskIn([usbStick], 'sdb', [{ dev: '8:17', mountpoint: '/media/pi/boot fs', source: '/dev/sdb1', type: 'vfat' }]);
    expect(disk.partitions[0]?.mountpoints).toEqual(['/media/pi/boot fs']);
    expect(refusals(disk, { allowLoop: false })).toEqual(['/dev/sdb has mounted file systems (sdb1 on /media/pi/boot fs): unmount them first (udisksctl unmount -b DEVICE, or umount)']);
  });

  it('a card whose partition is mounted through device-mapper (LUKS), and one merely held by it', async () => {
    const crypt: FakeDisk = { name: 'dm-0', busPath: busPaths.dm, dev: '254:0', sectors: gib(15) };
    const stick: FakeDisk = { ...usbStick, partitions: [usbStick.partitions![0]!, { ...usbStick.partitions![1]!, holders: ['dm-0'] }] };
    const mounted = await diskIn([stick, crypt], 'sdb', [{ dev: '254:0', mountpoint: '/media/secret', source: '/dev/mapper/secret' }]);
    expect(refusals(mounted, { allowLoop: false })).toEqual(['/dev/sdb has mounted file systems (dm-0 (on sdb2) on /media/secret): unmount them first (udisksctl unmount -b DEVICE, or umount)']);
    const held = await diskIn([stick, crypt], 'sdb');
    expect(refusals(held, { allowLoop: false })).toEqual(['/dev/sdb is in use by dm-0 (device-mapper, LVM, LUKS or RAID): close those first']);
  });

  it('a card with swap in use', async () => {
    const disk = await diskIn([usbStick], 'sdb', [], ['/dev/sdb2']);
    expect(refusals(disk, { allowLoop: false })).toEqual(['/dev/sdb is in use as swap (sdb2): swapoff it first']);
  });

  it('a read-only card (its lock switch)', async () => {
    const disk = await diskIn([{ ...sdSlot, readOnly: true }], 'mmcblk0');
    expect(refusals(disk, { allowLoop: false })).toEqual(['/dev/mmcblk0 is read-only (an SD card\'s lock switch, or a write-protected reader)']);
  });

  it('a reader with no card in it', async () => {
    const disk = await diskIn([{ ...cardReader, sectors: 0 }], 'sdc');
    expect(refusals(disk, { allowLoop: false })).toEqual(['/dev/sdc has no medium (size 0): insert a card']);
  });

  it('checkedDisk lists every reason in one error', async () => {
    const system = await fakeSystem([nvmeSystem], [rootMount]);
    await expect(checkedDisk('/nonexistent/sdz', { allowLoop: false }, system)).rejects.toThrow('/nonexistent/sdz: no such device; pibond flash --list shows the cards it can write');
  });

  it('a regular file is not a block device', async () => {
    const file = join(tmpdir(), `pibond-not-a-disk-${process.pid}.img`);
    await writeFile(file, 'x');
    try {
      await expect(blockDeviceName(file)).rejects.toThrow(`${file} is not a block device (a regular file): give a card's device, such as /dev/sdb or /dev/mmcblk0; pibond flash --list shows them`);
      await expect(blockDeviceName(tmpdir())).rejects.toThrow('is not a block device (a directory)');
    } finally {
      await rm(file, { force: true });
    }
  });
});

describe('pibond flash --list', () => {
  it('lists whole disks (not partitions, not unused loop devices) with their verdicts', async () => {
    const system = await fakeSystem([nvmeSystem, usbStick, sdSlot, unusedLoop, loopDevice], [rootMount]);
    expect((await listDisks(system)).map((disk) => disk.name)).toEqual(['loop3', 'mmcblk0', 'nvme0n1', 'sdb']);
    const text = await listing(system, false);
    expect(text).toContain('/dev/sdb  17.2 GB  SanDisk Ultra Fit  (usb)\n  /dev/sdb1');
    expect(text).toContain('/dev/mmcblk0  34.4 GB  SD card SC32G  (mmc)\n  no partitions\n  -> can be flashed');
    expect(text).toContain('  -> refused: /dev/nvme0n1 holds / (the running system)');
    expect(text).toContain('  -> refused: /dev/loop3 is a loop device');
    expect(text).toMatch(/2 disks can be flashed\.\n$/);
    expect(await listing(system, true)).toMatch(/3 disks can be flashed\.\n$/);
  });
});

describe('the real system (read only)', () => {
  it('refuses the disk holding / on this machine', async () => {
    const disks = await listDisks();
    // In a container / may be an overlay on no disk of its own: then no disk holds it.
    for (const root of disks.filter((disk) => disk.holdsRoot)) {
      expect(refusals(root, { allowLoop: true })).toContain(`${root.path} holds / (the running system)`);
    }
  });
});
