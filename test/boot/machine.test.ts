import { describe, expect, it } from 'vitest';
import { guestCmdline, machineNics, nicDevice, qemuArgs, slaveNics } from '../../scripts/boot/machine.ts';
import { testbedNics } from '../../scripts/boot/session.ts';

const defaultBond = { slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth0' };
const routers = [
  { nic: 'nic0', status: 40001, ssh: 40002 },
  { nic: 'nic1', status: 40003, ssh: 40004 },
];

describe('qemuArgs', () => {
  const nics = machineNics(8080, slaveNics(defaultBond), routers);
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
    const [, backup] = machineNics(8080, slaveNics(defaultBond), routers);
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

describe('slaveNics', () => {
  it('plays the default bond as before: eth0 on nic0, the primary, at 1000 Mb/s; eth1 on nic1, the backup, at 100', () => {
    expect(slaveNics(defaultBond)).toEqual([
      { slave: 'eth0', role: 'primary', id: 'nic0', mac: '52:54:00:00:00:01', speedMbps: 1000 },
      { slave: 'eth1', role: 'backup', id: 'nic1', mac: '52:54:00:00:00:02', speedMbps: 100 },
    ]);
  });

  it('takes the primary from bond.primary, even when it is the second slave', () => {
    expect(slaveNics({ ...defaultBond, primary: 'eth1' })).toEqual([
      { slave: 'eth0', role: 'backup', id: 'nic0', mac: '52:54:00:00:00:01', speedMbps: 100 },
      { slave: 'eth1', role: 'primary', id: 'nic1', mac: '52:54:00:00:00:02', speedMbps: 1000 },
    ]);
  });

  it('puts an unpinned ethN Nth, whatever order the definition lists them in, since the kernel names NICs in the order it finds them', () => {
    const nics = slaveNics({ slaves: [{ name: 'eth1' }, { name: 'eth0' }], primary: 'eth1' });
    expect(nics.map((n) => [n.id, n.slave, n.role])).toEqual([
      ['nic0', 'eth0', 'backup'],
      ['nic1', 'eth1', 'primary'],
    ]);
  });

  it("gives a pinned slave's NIC the pinned MAC, so the guest's .link names it, and keeps generated MACs clear of it", () => {
    const nics = slaveNics({
      slaves: [
        { name: 'lan0', mac: '52:54:00:00:00:01' },
        { name: 'lan1', mac: 'DC:A6:32:12:34:56' },
      ],
      primary: 'lan1',
    });
    expect(nics).toEqual([
      { slave: 'lan0', role: 'backup', id: 'nic0', mac: '52:54:00:00:00:01', speedMbps: 100 },
      { slave: 'lan1', role: 'primary', id: 'nic1', mac: 'dc:a6:32:12:34:56', speedMbps: 1000 },
    ]);
    const mixed = slaveNics({ slaves: [{ name: 'eth0' }, { name: 'wan', mac: '52:54:00:00:00:01' }], primary: 'wan' });
    expect(mixed.map((n) => [n.id, n.slave, n.mac])).toEqual([
      ['nic0', 'eth0', '52:54:00:00:00:02'],
      ['nic1', 'wan', '52:54:00:00:00:01'],
    ]);
  });
});

describe('machineNics', () => {
  it("forwards the status service and SSH through the router on each slave's NIC", () => {
    const nics = machineNics(8080, slaveNics({ ...defaultBond, primary: 'eth1' }), routers);
    expect(nics[1]).toEqual({
      slave: 'eth1',
      role: 'primary',
      id: 'nic1',
      mac: '52:54:00:00:00:02',
      speedMbps: 1000,
      forwards: [
        { hostPort: 40003, guestPort: 8080 },
        { hostPort: 40004, guestPort: 22 },
      ],
    });
  });

  it('refuses a slave the test bed has no router for', () => {
    const three = slaveNics({ slaves: [{ name: 'eth0' }, { name: 'eth1' }, { name: 'eth2' }], primary: 'eth0' });
    expect(() => machineNics(8080, three, routers)).toThrow('the test bed has 2 routers, none for nic2 (slave eth2)');
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

describe('NICs on the test bed', () => {
  const bed = {
    router: (name: 'main' | 'backup') => ({
      name,
      tap: `tap-${name}`,
      wan: { address: name === 'main' ? '198.51.100.2' : '203.0.113.2' },
      forwards: [
        { service: 'status' as const, wanPort: 8080, piPort: 8080 },
        { service: 'ssh' as const, wanPort: 2222, piPort: 22 },
      ],
    }),
  } as unknown as Parameters<typeof testbedNics>[0];

  it("puts the primary's NIC on the main router's tap, the backup's on the backup router's, keeping the netdev ids", () => {
    // eth1 is the primary: nic1 goes on tap-main.
    const { nics, routers } = testbedNics(bed, { socketPath: '/tmp/x/prober.sock' }, slaveNics({ ...defaultBond, primary: 'eth1' }));
    const args = qemuArgs({ kernel: 'k', initrd: 'i', append: 'a', disk: 'd', qmpSocket: 'q', nics });
    expect(args.filter((_, i) => args[i - 1] === '-netdev')).toEqual([
      'tap,id=net0,ifname=tap-backup,script=no,downscript=no',
      'tap,id=net1,ifname=tap-main,script=no,downscript=no',
    ]);
    expect(routers).toEqual([
      { nic: 'nic0', status: { socketPath: '/tmp/x/prober.sock', host: '203.0.113.2', port: 8080 }, ssh: { socketPath: '/tmp/x/prober.sock', host: '203.0.113.2', port: 2222 }, router: { name: 'backup', wan: '203.0.113.2' } },
      { nic: 'nic1', status: { socketPath: '/tmp/x/prober.sock', host: '198.51.100.2', port: 8080 }, ssh: { socketPath: '/tmp/x/prober.sock', host: '198.51.100.2', port: 2222 }, router: { name: 'main', wan: '198.51.100.2' } },
    ]);
    expect(nicDevice(nics[1] as (typeof nics)[number], 1)).toMatchObject({ netdev: 'net1', id: 'nic1' });
  });
});
