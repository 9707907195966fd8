import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bootFilesFrom, inspectImage, manifestPathFor, readPartitionTable } from '../../scripts/boot/image.ts';
import { ownKernelUnfit } from '../../scripts/boot/boot-kernel.ts';
import { UserError } from '../../scripts/lib/errors.ts';

interface FakePartition {
  type: number;
  start: number;
  sectors: number;
  bootable?: boolean;
}

/** A small disk file: an MBR with the given partitions and disk id, and nothing else. */
function fakeDisk(partitions: FakePartition[], diskId = 0x0123abcd, totalSectors = 64): Buffer {
  const disk = Buffer.alloc(totalSectors * 512);
  disk.writeUInt32LE(diskId, 440);
  partitions.forEach((p, i) => {
    const entry = 446 + i * 16;
    disk[entry] = p.bootable ? 0x80 : 0;
    disk[entry + 4] = p.type;
    disk.writeUInt32LE(p.start, entry + 8);
    disk.writeUInt32LE(p.sectors, entry + 12);
  });
  disk[510] = 0x55;
  disk[511] = 0xaa;
  return disk;
}

const pibondLayout = [
  { type: 0x0c, start: 8, sectors: 16, bootable: true },
  { type: 0x83, start: 24, sectors: 40 },
];

function manifest(overrides: Record<string, unknown> = {}) {
  return {
    name: 'tiny',
    diskId: '0123abcd',
    definition: {
      value: {
        mirror: 'http://deb.debian.org/debian',
        admin: { name: 'pi' },
        bond: { name: 'bond0', slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth0', miimon: 100 },
        status_service: { listen: '0.0.0.0', port: 8080 },
      },
    },
    ...overrides,
  };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pibond-image-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** `manifestValue` null: no manifest file. */
async function image(disk: Buffer, manifestValue: unknown = manifest()): Promise<string> {
  const path = join(dir, 'tiny.img');
  await writeFile(path, disk);
  if (manifestValue !== null) await writeFile(join(dir, 'tiny.manifest.json'), typeof manifestValue === 'string' ? manifestValue : JSON.stringify(manifestValue));
  return path;
}

async function failure(path: string): Promise<UserError> {
  const err = await inspectImage(path).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(UserError);
  return err as UserError;
}

describe('inspectImage', () => {
  it('reads a pibond image: its name, manifest and where the boot partition starts', async () => {
    const path = await image(fakeDisk(pibondLayout));
    const found = await inspectImage(path);
    expect(found.name).toBe('tiny');
    expect(found.bootPartitionOffset).toBe(8 * 512);
    expect(found.manifest.definition.value.status_service.port).toBe(8080);
    expect(found.manifestPath).toBe(join(dir, 'tiny.manifest.json'));
  });

  it('says so when there is no image at all, pointing at pibond build', async () => {
    expect((await failure(join(dir, 'missing.img'))).message).toMatch(/no image at .*missing\.img; build one with `pibond build/);
  });

  it('turns away the compressed copy and names the one to boot', async () => {
    const path = join(dir, 'tiny.img.zst');
    await writeFile(path, 'zstd');
    expect((await failure(path)).message).toMatch(/is compressed; boot the uncompressed image next to it \(tiny\.img\)/);
  });

  it('turns away a file without a partition table', async () => {
    const path = await image(Buffer.alloc(4096, 0x41));
    expect((await failure(path)).message).toMatch(/is not a pibond image: it has no MBR partition table/);
  });

  it('turns away a file shorter than one sector', async () => {
    const path = await image(Buffer.from('hello'));
    expect((await failure(path)).message).toMatch(/no MBR partition table/);
  });

  it('turns away a disk whose partitions are not FAT boot + Linux root', async () => {
    const path = await image(fakeDisk([{ type: 0x83, start: 8, sectors: 56 }]));
    expect((await failure(path)).message).toMatch(/not a pibond image: it does not have a FAT32 boot partition followed by a Linux root partition/);
  });

  it('turns away a truncated image', async () => {
    const path = await image(fakeDisk(pibondLayout).subarray(0, 4 * 512));
    expect((await failure(path)).message).toMatch(/boot partition lies beyond the end of the file/);
  });

  it('turns away an image without its manifest', async () => {
    const path = await image(fakeDisk(pibondLayout), null);
    expect((await failure(path)).message).toMatch(/not a pibond image: its manifest tiny\.manifest\.json is not next to it/);
  });

  it('turns away a manifest that is not JSON, or lacks what a boot needs', async () => {
    expect((await failure(await image(fakeDisk(pibondLayout), '{'))).message).toMatch(/manifest tiny\.manifest\.json is not JSON/);
    const noPort = manifest();
    delete (noPort.definition.value as Partial<typeof noPort.definition.value>).status_service;
    expect((await failure(await image(fakeDisk(pibondLayout), noPort))).message).toMatch(/lacks what a boot needs \(definition\.value\.status_service\)/);
  });

  it('turns away an image and a manifest of different builds', async () => {
    const path = await image(fakeDisk(pibondLayout, 0xdeadbeef));
    expect((await failure(path)).message).toMatch(/its disk id is deadbeef, but tiny\.manifest\.json describes disk 0123abcd/);
  });

  it("takes an image laid onto a stock image whose kernel cannot boot QEMU's virt machine, and says why it gets the builder's kernel", async () => {
    const stock = { name: 'Raspberry Pi OS bookworm', kernels: ['linux-image-rpi-v8'], kernelBootsVirt: false };
    const pi = await inspectImage(await image(fakeDisk(pibondLayout), manifest({ stock })));
    expect(ownKernelUnfit(pi)).toBe("Raspberry Pi OS bookworm's kernel (linux-image-rpi-v8) cannot boot QEMU's virt machine");
    expect(ownKernelUnfit(await inspectImage(await image(fakeDisk(pibondLayout), manifest({ stock: { ...stock, kernels: [] } }))))).toBe(
      "Raspberry Pi OS bookworm has no kernel package pibond knows, none that boots QEMU's virt machine",
    );
    const lookalike = { ...stock, kernels: ['linux-image-arm64'], kernelBootsVirt: true };
    expect(ownKernelUnfit(await inspectImage(await image(fakeDisk(pibondLayout), manifest({ stock: lookalike }))))).toBeUndefined();
    expect(ownKernelUnfit(await inspectImage(await image(fakeDisk(pibondLayout), manifest())))).toBeUndefined();
  });
});

describe('readPartitionTable', () => {
  it('lists the used slots with their types and sectors', () => {
    expect(readPartitionTable(fakeDisk(pibondLayout))).toEqual([
      { index: 1, type: 0x0c, bootable: true, startSector: 8, sectors: 16 },
      { index: 2, type: 0x83, bootable: false, startSector: 24, sectors: 40 },
    ]);
  });
});

describe('manifestPathFor', () => {
  it('puts the manifest next to the image, named after it', () => {
    expect(manifestPathFor('/x/out/pibond-bookworm-arm64.img')).toBe('/x/out/pibond-bookworm-arm64.manifest.json');
  });
});

describe('bootFilesFrom', () => {
  it('reads the kernel and the initramfs the Pi firmware would load', () => {
    const config = '# generated\narm_64bit=1\nkernel=vmlinuz-6.1.0-50-arm64\n\ninitramfs initrd.img-6.1.0-50-arm64 followkernel\n';
    expect(bootFilesFrom(config)).toEqual({ kernel: 'vmlinuz-6.1.0-50-arm64', initrd: 'initrd.img-6.1.0-50-arm64' });
  });

  it('ignores commented-out lines', () => {
    const config = '#kernel=old\nkernel=new\n# initramfs old followkernel\ninitramfs new.img followkernel\n';
    expect(bootFilesFrom(config)).toEqual({ kernel: 'new', initrd: 'new.img' });
  });

  it('says what is missing', () => {
    expect(() => bootFilesFrom('initramfs i followkernel\n')).toThrow(/names no kernel/);
    expect(() => bootFilesFrom('kernel=k\n')).toThrow(/names no initramfs/);
  });

  it('refuses names that are not plain file names', () => {
    expect(() => bootFilesFrom('kernel=../../etc/passwd\ninitramfs i\n')).toThrow(/not a plain file name/);
  });
});
