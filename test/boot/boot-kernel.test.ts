/**
 * The builder's boot kernel: which modules its initrd loads, in which order, from modules.dep
 * (scripts/builder/recipe/bin/lib/modules.mjs). Making it and booting with it are the stock
 * images' end-to-end test (test/e2e/stock.e2e.ts), on the Raspberry Pi OS-like image.
 */
import { describe, expect, it } from 'vitest';
import { builderKernelCmdline } from '../../scripts/boot/boot-kernel.ts';
import { loadOrder, moduleName, parseAliases, parseBuiltin, parseModulesDep, parseSoftdeps } from '../../scripts/builder/recipe/bin/lib/modules.mjs';

// As Debian's 6.1 arm64 kernel lists them (trimmed).
const modulesDep = `kernel/fs/ext4/ext4.ko: kernel/lib/crc16.ko kernel/fs/mbcache.ko kernel/fs/jbd2/jbd2.ko
kernel/fs/mbcache.ko:
kernel/fs/jbd2/jbd2.ko:
kernel/lib/crc16.ko:
kernel/drivers/block/virtio_blk.ko:
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/net/bonding/bonding.ko: kernel/net/tls/tls.ko
kernel/net/tls/tls.ko:
kernel/fs/nls/nls_iso8859-1.ko:
kernel/crypto/crc32c_generic.ko:
`;
const builtin = 'kernel/drivers/virtio/virtio.ko\nkernel/drivers/virtio/virtio_ring.ko\nkernel/net/packet/af_packet.ko\n';

describe('the builder kernel\'s modules', () => {
  const modules = parseModulesDep(modulesDep);
  const inKernel = parseBuiltin(builtin);

  it('names modules as modprobe does: the file name without .ko or a compression suffix, "-" read as "_"', () => {
    expect(moduleName('kernel/fs/nls/nls_iso8859-1.ko')).toBe('nls_iso8859_1');
    expect(moduleName('kernel/drivers/net/bonding/bonding.ko.xz')).toBe('bonding');
    expect(modules.get('ext4')).toEqual({ path: 'kernel/fs/ext4/ext4.ko', deps: ['crc16', 'mbcache', 'jbd2'] });
    expect(inKernel.has('af_packet')).toBe(true);
  });

  it('loads each module after what it needs, each once, and skips what is built in', () => {
    const order = loadOrder(['virtio_pci', 'virtio_blk', 'ext4', 'virtio_net', 'bonding', 'af_packet', 'nls_iso8859-1'], modules, inKernel);
    expect(order).toEqual([
      'kernel/drivers/virtio/virtio_pci_modern_dev.ko',
      'kernel/drivers/virtio/virtio_pci_legacy_dev.ko',
      'kernel/drivers/virtio/virtio_pci.ko',
      'kernel/drivers/block/virtio_blk.ko',
      'kernel/lib/crc16.ko',
      'kernel/fs/mbcache.ko',
      'kernel/fs/jbd2/jbd2.ko',
      'kernel/fs/ext4/ext4.ko',
      'kernel/net/core/failover.ko',
      'kernel/drivers/net/net_failover.ko',
      'kernel/drivers/net/virtio_net.ko',
      'kernel/net/tls/tls.ko',
      'kernel/drivers/net/bonding/bonding.ko',
      'kernel/fs/nls/nls_iso8859-1.ko',
    ]);
    for (const [i, path] of order.entries()) {
      for (const dep of modules.get(moduleName(path))?.deps ?? []) expect(order.indexOf(modules.get(dep)?.path ?? ''), `${dep} before ${path}`).toBeLessThan(i);
    }
  });

  it('loads a soft "pre:" dependency first, through its alias (ext4 asks for crc32c by name to mount a file system with checksums), and skips one the kernel lacks', () => {
    const soft = {
      softdeps: parseSoftdeps('# Soft dependencies extracted from modules themselves.\nsoftdep ext4 pre: crypto-crc32c\nsoftdep jbd2 pre: crypto-crc32c\nsoftdep bonding pre: nothing-here post: tls\n'),
      aliases: parseAliases('alias crypto-crc32c crc32c_generic\nalias crc32c crc32c_generic\n'),
    };
    expect(soft.softdeps.get('ext4')).toEqual(['crypto-crc32c']);
    expect(loadOrder(['ext4', 'bonding'], modules, inKernel, soft)).toEqual([
      'kernel/crypto/crc32c_generic.ko',
      'kernel/lib/crc16.ko',
      'kernel/fs/mbcache.ko',
      'kernel/fs/jbd2/jbd2.ko',
      'kernel/fs/ext4/ext4.ko',
      'kernel/net/tls/tls.ko',
      'kernel/drivers/net/bonding/bonding.ko',
    ]);
  });

  it('names a module the kernel has in neither form, and what needed it', () => {
    expect(() => loadOrder(['bonding', 'virtio_gpu'], modules, inKernel)).toThrow('no kernel module virtio_gpu, and it is not built in');
    const broken = parseModulesDep('kernel/a.ko: kernel/b.ko\n');
    expect(() => loadOrder(['a'], broken, inKernel)).toThrow('no kernel module b (needed by a), and it is not built in');
  });
});

describe('builderKernelCmdline', () => {
  it("keeps the image's command line, gives the initrd its root, the console QEMU's, and leaves out Raspberry Pi OS's first-boot init (it resizes and reboots)", () => {
    const piOs = 'console=serial0,115200 console=tty1 root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot';
    expect(builderKernelCmdline(piOs)).toBe('root=PARTUUID=4e639091-02 rootfstype=ext4 fsck.repair=yes rootwait quiet console=ttyAMA0 pibond.root=/dev/vda2');
    expect(builderKernelCmdline('root=/dev/mmcblk0p2 init=/bin/sh')).toBe('root=/dev/mmcblk0p2 init=/bin/sh console=ttyAMA0 pibond.root=/dev/vda2');
  });
});
