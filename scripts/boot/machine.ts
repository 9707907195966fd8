/**
 * The emulated machine: QEMU's `virt` board with the image as a virtio disk (behind a copy-on-write
 * overlay) and two virtio NICs, each on its own user-mode network. Each user-mode network is its
 * own little router at 10.0.2.2 handing out 10.0.2.15, so NIC 0 plays the main (VDSL) router and
 * NIC 1 the backup (LTE) router, and a host port forwarded through one of them reaches the guest
 * only while the bond sends and receives on that NIC.
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
    args.push('-device', `virtio-net-pci,netdev=net${i},id=${nic.id},mac=${nic.mac},speed=${nic.speedMbps},duplex=full`);
  });
  args.push('-qmp', `unix:${spec.qmpSocket},server=on,wait=off`);
  return args;
}

/**
 * The image's own kernel command line, with its consoles (a Pi's UART and screen) replaced by the
 * virt board's UART, which is what QEMU's -nographic puts on our terminal.
 */
export function guestCmdline(cmdline: string): string {
  const words = cmdline.split(/\s+/).filter((word) => word !== '' && !word.startsWith('console='));
  return [...words, 'console=ttyAMA0'].join(' ');
}
