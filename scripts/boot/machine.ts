/**
 * The emulated machine: QEMU's `virt` board with the image as a virtio disk (behind a copy-on-write
 * overlay) and two virtio NICs, each on its own user-mode network. Each user-mode network is its
 * own little router at 10.0.2.2 handing out 10.0.2.15, so NIC 0 plays the main (VDSL) router and
 * NIC 1 the backup (LTE) router, and a host port forwarded through one of them reaches the guest
 * only while the bond sends and receives on that NIC.
 *
 * Each NIC sits on its own PCIe root port, the virt board's hot-plug slot: QMP device_del and
 * device_add can then pull a NIC out and plug it back in, the way a USB NIC leaves and comes back
 * (its netdev disappears). Ports and NICs are added in order, so the guest still enumerates and
 * names them eth0, eth1.
 */

export interface Forward {
  /** Port on the host's loopback. */
  hostPort: number;
  guestPort: number;
}

export interface Nic {
  /** The QMP name for set_link: nic0, nic1. */
  id: string;
  mac: string;
  speedMbps: number;
  forwards: Forward[];
}

export interface MachineSpec {
  kernel: string;
  initrd: string;
  append: string;
  /** The qcow2 overlay QEMU writes to; its backing file is the image. */
  disk: string;
  qmpSocket: string;
  nics: Nic[];
  cpus?: number;
  memoryMiB?: number;
}

/** The guest-side ports each router forwards: the status service and SSH. */
export function machineNics(statusPort: number, hostPorts: { status: number; ssh: number }[]): Nic[] {
  const speeds = [1000, 100];
  return hostPorts.map((ports, i) => ({
    id: `nic${i}`,
    mac: `52:54:00:00:00:${String(i + 1).padStart(2, '0')}`,
    // Ethernet to the main router, a slower link to the LTE one: the guest reports what we say.
    speedMbps: speeds[i] ?? 100,
    forwards: [
      { hostPort: ports.status, guestPort: statusPort },
      { hostPort: ports.ssh, guestPort: 22 },
    ],
  }));
}

/** qemu-system-aarch64's argv (without the program name). */
export function qemuArgs(spec: MachineSpec): string[] {
  const args = [
    '-M', 'virt',
    '-cpu', 'cortex-a72',
    '-smp', String(spec.cpus ?? 2),
    '-m', String(spec.memoryMiB ?? 1024),
    '-nographic',
    '-kernel', spec.kernel,
    '-initrd', spec.initrd,
    '-append', spec.append,
    '-drive', `if=none,id=disk0,file=${spec.disk},format=qcow2`,
    '-device', 'virtio-blk-pci,drive=disk0',
  ];
  spec.nics.forEach((nic, i) => {
    const forwards = nic.forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-:${f.guestPort}`).join('');
    args.push('-netdev', `user,id=net${i}${forwards}`);
    args.push('-device', `pcie-root-port,id=${nicPort(i)},bus=pcie.0,chassis=${i + 1}`);
    args.push('-device', deviceOption(nicDevice(nic, i)));
  });
  args.push('-qmp', `unix:${spec.qmpSocket},server=on,wait=off`);
  return args;
}

/** The root port NIC `index` is plugged into. */
function nicPort(index: number): string {
  return `rp${index + 1}`;
}

/**
 * NIC `index` as a device: `driver` plus its properties, for -device and for QMP device_add alike,
 * so a replugged NIC comes back exactly as it was (same id, MAC, network, port, speed).
 */
export function nicDevice(nic: Nic, index: number): { driver: string } & Record<string, string | number> {
  return {
    driver: 'virtio-net-pci',
    netdev: `net${index}`,
    id: nic.id,
    mac: nic.mac,
    speed: nic.speedMbps,
    duplex: 'full',
    bus: nicPort(index),
  };
}

/** A device as -device's value: `driver,key=value,...`. */
function deviceOption({ driver, ...properties }: { driver: string } & Record<string, string | number>): string {
  return [driver, ...Object.entries(properties).map(([key, value]) => `${key}=${value}`)].join(',');
}

/**
 * The image's own kernel command line, with its consoles (a Pi's UART and screen) replaced by the
 * virt board's UART, which is what QEMU's -nographic puts on our terminal.
 */
export function guestCmdline(cmdline: string): string {
  const words = cmdline.split(/\s+/).filter((word) => word !== '' && !word.startsWith('console='));
  return [...words, 'console=ttyAMA0'].join(' ');
}
