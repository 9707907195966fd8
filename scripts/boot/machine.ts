/**
 * The emulated machine: QEMU's `virt` board with the image as a virtio disk (behind a copy-on-write
 * overlay) and two virtio NICs, each on its own user-mode network. Each user-mode network is its
 * own little router at 10.0.2.2 handing out 10.0.2.15: the primary slave's NIC is on the main (VDSL)
 * router's network, the backup's on the backup (LTE) router's, and a host port forwarded through one
 * of them reaches the guest only while the bond sends and receives on that NIC. On the test bed of
 * real routers, each NIC is a tap on a router's LAN bridge instead (Nic.tap).
 *
 * Each NIC sits on its own PCIe root port, the virt board's hot-plug slot: QMP device_del and
 * device_add can then pull a NIC out and plug it back in, the way a USB NIC leaves and comes back
 * (its netdev disappears). Ports and NICs are added in order, so the guest still enumerates and
 * names them eth0, eth1 (see slaveNics for which slave gets which NIC).
 */

export interface Forward {
  /** Port on the host's loopback. */
  hostPort: number;
  guestPort: number;
  /** The guest's static address, when it has one; else QEMU's DHCP address. */
  guestAddress?: string;
}

/** A slave as the definition lists it: its name and, when pinned, the permanent MAC of its NIC. */
export interface SlaveDefinition {
  name: string;
  mac?: string;
}

/** Which QEMU NIC plays which slave of the bond. */
export interface SlaveNic {
  slave: string;
  /** The primary's NIC is on the main router's network, every other slave's on the backup router's. */
  role: 'primary' | 'backup';
  /** QMP's name for it (set_link, device_del): nic0, nic1, in the order the guest finds them. */
  id: string;
  mac: string;
  speedMbps: number;
}

export interface Nic extends SlaveNic {
  /** On a user-mode network: the host ports forwarded to the guest through it. */
  forwards: Forward[];
  /** On the test bed: the tap (on a router's LAN bridge) the NIC is plugged into, instead of a user-mode network. */
  tap?: string;
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

/** The MACs QEMU's NICs get unless the definition pins one: 52:54:00:00:00:01, :02, ... */
const generatedMac = (n: number) => `52:54:00:00:00:${n.toString(16).padStart(2, '0')}`;

/**
 * The bond's slaves as NICs, in the order QEMU adds them. A slave pinned to a MAC gets a NIC with
 * that MAC, so the guest's .link file names it; it may sit anywhere. An unpinned slave keeps the
 * kernel's name, ethN for the Nth NIC found, so ethN is put Nth. The primary is `bond.primary`,
 * wherever it is listed.
 */
export function slaveNics(bond: { slaves: SlaveDefinition[]; primary: string }): SlaveNic[] {
  const order: (SlaveDefinition | undefined)[] = bond.slaves.map(() => undefined);
  const elsewhere: SlaveDefinition[] = [];
  for (const slave of bond.slaves) {
    const n = slave.mac === undefined ? kernelIndex(slave.name) : undefined;
    if (n !== undefined && n < order.length && !order[n]) order[n] = slave;
    else elsewhere.push(slave);
  }
  for (const slave of elsewhere) order[order.indexOf(undefined)] = slave;

  const taken = new Set(bond.slaves.flatMap((s) => (s.mac ? [s.mac.toLowerCase()] : [])));
  let next = 1;
  const freeMac = () => {
    while (taken.has(generatedMac(next))) next++;
    taken.add(generatedMac(next));
    return generatedMac(next);
  };
  return order.map((slave, i) => {
    if (!slave) throw new Error('unreachable: every slave has a place');
    const role = slave.name === bond.primary ? 'primary' : 'backup';
    return {
      slave: slave.name,
      role,
      id: `nic${i}`,
      mac: slave.mac?.toLowerCase() ?? freeMac(),
      // Ethernet to the main router, a slower link to the LTE one: the guest reports what we say.
      speedMbps: role === 'primary' ? 1000 : 100,
    };
  });
}

/** 1 for eth1: the place a NIC must have for the kernel to give it that name. */
function kernelIndex(name: string): number | undefined {
  const match = /^eth(\d+)$/.exec(name);
  return match ? Number(match[1]) : undefined;
}

/**
 * The NICs with their routers' forwards (each router forwards the status service and SSH): the
 * router whose `nic` is a NIC's id carries that NIC's traffic.
 */
export function machineNics(statusPort: number, slaves: SlaveNic[], routers: { nic: string; status: number; ssh: number }[], guestAddress?: string): Nic[] {
  return slaves.map((slave) => {
    const ports = routers.find((router) => router.nic === slave.id);
    if (!ports) throw new Error(`the test bed has ${routers.length} routers, none for ${slave.id} (slave ${slave.slave})`);
    return {
      ...slave,
      forwards: [
        { hostPort: ports.status, guestPort: statusPort, guestAddress },
        { hostPort: ports.ssh, guestPort: 22, guestAddress },
      ],
    };
  });
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
    // No guest address: the one QEMU's DHCP server hands out (10.0.2.15).
    const forwards = nic.forwards.map((f) => `,hostfwd=tcp:127.0.0.1:${f.hostPort}-${f.guestAddress ?? ''}:${f.guestPort}`).join('');
    // The netdev's id is the same either way: nicDevice (and a replug through QMP) refers to it.
    args.push('-netdev', nic.tap ? `tap,id=net${i},ifname=${nic.tap},script=no,downscript=no` : `user,id=net${i}${forwards}`);
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
