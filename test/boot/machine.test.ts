import { describe, expect, it } from 'vitest';
import { guestCmdline, machineNics, nicDevice, qemuArgs } from '../../scripts/boot/machine.ts';

describe('qemuArgs', () => {
  const nics = machineNics(8080, [
    { status: 40001, ssh: 40002 },
    { status: 40003, ssh: 40004 },
  ]);
  const args = qemuArgs({
    kernel: '/run/pibond/boot/vmlinuz-6.1.0-50-arm64',
    initrd: '/run/pibond/boot/initrd.img-6.1.0-50-arm64',
    append: 'root=PARTUUID=0123abcd-02 rw console=ttyAMA0',
    disk: '/run/pibond/overlay.qcow2',
    qmpSocket: '/run/pibond/qmp.sock',
    nics,
  });
  const after = (flag: string) => args.filter((_, i) => args[i - 1] === flag);

  it('is the virt board with a Cortex-A72, two CPUs, 1 GiB and the console on stdio', () => {
    expect(args.slice(0, 9)).toEqual(['-M', 'virt', '-cpu', 'cortex-a72', '-smp', '2', '-m', '1024', '-nographic']);
  });

  it('boots the kernel, initrd and command line it is given', () => {
    expect(after('-kernel')).toEqual(['/run/pibond/boot/vmlinuz-6.1.0-50-arm64']);
    expect(after('-initrd')).toEqual(['/run/pibond/boot/initrd.img-6.1.0-50-arm64']);
    expect(after('-append')).toEqual(['root=PARTUUID=0123abcd-02 rw console=ttyAMA0']);
  });

  it('uses the qcow2 overlay as a virtio disk, never the image itself', () => {
    expect(after('-drive')).toEqual(['if=none,id=disk0,file=/run/pibond/overlay.qcow2,format=qcow2']);
    expect(after('-device')).toContain('virtio-blk-pci,drive=disk0');
  });

  it('attaches two virtio NICs, each on its own user-mode network with its own forwards', () => {
    expect(after('-netdev')).toEqual([
      'user,id=net0,hostfwd=tcp:127.0.0.1:40001-:8080,hostfwd=tcp:127.0.0.1:40002-:22',
      'user,id=net1,hostfwd=tcp:127.0.0.1:40003-:8080,hostfwd=tcp:127.0.0.1:40004-:22',
    ]);
    expect(after('-device').filter((d) => d.startsWith('virtio-net-pci'))).toEqual([
      'virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01,speed=1000,duplex=full,bus=rp1',
      'virtio-net-pci,netdev=net1,id=nic1,mac=52:54:00:00:00:02,speed=100,duplex=full,bus=rp2',
    ]);
  });

  it('puts each NIC on its own PCIe root port, declared before it, so it can be unplugged and plugged back', () => {
    const devices = after('-device');
    expect(devices.filter((d) => d.startsWith('pcie-root-port'))).toEqual([
      'pcie-root-port,id=rp1,bus=pcie.0,chassis=1',
      'pcie-root-port,id=rp2,bus=pcie.0,chassis=2',
    ]);
    expect(devices.indexOf('pcie-root-port,id=rp1,bus=pcie.0,chassis=1')).toBeLessThan(devices.findIndex((d) => d.includes('bus=rp1')));
  });

  it('opens a QMP server socket that does not wait for a client', () => {
    expect(after('-qmp')).toEqual(['unix:/run/pibond/qmp.sock,server=on,wait=off']);
  });

  it('passes every value as one argument: nothing for a shell to split', () => {
    const withSpaces = qemuArgs({ ...{ kernel: 'k', initrd: 'i', disk: 'd', qmpSocket: 'q', nics: [] }, append: 'a b  c' });
    expect(withSpaces[withSpaces.indexOf('-append') + 1]).toBe('a b  c');
  });
});

describe('nicDevice', () => {
  it('is the NIC as QMP device_add takes it: the same properties as on the command line, numbers as numbers', () => {
    const [, backup] = machineNics(8080, [
      { status: 40001, ssh: 40002 },
      { status: 40003, ssh: 40004 },
    ]);
    expect(nicDevice(backup!, 1)).toEqual({
      driver: 'virtio-net-pci',
      netdev: 'net1',
      id: 'nic1',
      mac: '52:54:00:00:00:02',
      speed: 100,
      duplex: 'full',
      bus: 'rp2',
    });
  });
});

describe('guestCmdline', () => {
  it("replaces the Pi's consoles with the virt board's UART and keeps everything else in order", () => {
    const pi = 'console=ttyS1,115200 console=tty0 root=PARTUUID=0123abcd-02 rw fsck.repair=yes net.ifnames=0 cma=64M rootwait';
    expect(guestCmdline(pi)).toBe('root=PARTUUID=0123abcd-02 rw fsck.repair=yes net.ifnames=0 cma=64M rootwait console=ttyAMA0');
  });

  it('copes with a trailing newline, repeated blanks and no console at all', () => {
    expect(guestCmdline('  root=/dev/mmcblk0p2   rw\n')).toBe('root=/dev/mmcblk0p2 rw console=ttyAMA0');
  });

  it('leaves look-alikes alone', () => {
    expect(guestCmdline('root=x consoleblank=0 console=serial0,115200')).toBe('root=x consoleblank=0 console=ttyAMA0');
  });
});
