/**
 * A test bed of real routers for a Pi with two NICs: a main (VDSL) and a backup (LTE) router, each
 * a network namespace with its own MACs, DHCP, NAT and port forwards to the Pi, and an "internet"
 * namespace behind both that owns the probe targets and the client that connects inbound. It all
 * runs in one container with its own network namespace and no network (NetworkMode none), so
 * nothing can leave the machine; testbed.mjs builds it in there, this module drives it.
 *
 * Each router's LAN is a bridge in the container's namespace with a tap (tap-main, tap-backup) on
 * it: QEMU attaches a NIC with `-netdev tap,id=n0,ifname=tap-main,script=no,downscript=no`, run in
 * this container (exec) or in one that joins its network namespace (NetworkMode container:ID).
 */
import { join } from 'node:path';
import { type Docker, type LineSink, type RunningContainer, execIn, startContainer } from '../../lib/docker.ts';

export type RouterName = 'main' | 'backup';
export type LayoutName = 'same-subnet' | 'different-subnets';

/** Debian packages the test bed needs in the builder image (testbed.mjs runs on the image's node). */
export const testbedPackages = ['iproute2', 'nftables', 'dnsmasq-base', 'nodejs', 'iputils-ping', 'iputils-arping', 'curl', 'tcpdump'] as const;

/** RFC 5737's ranges: addresses that are nobody's on the real internet, so a leak could not reach anyone. */
export const documentationRanges = ['192.0.2.0/24', '198.51.100.0/24', '203.0.113.0/24'] as const;

/**
 * The one table of the test bed. MACs are locally administered (02:...) so they can never be a real
 * vendor's; the two routers differ in every MAC, as two real routers do, which is what exposes a
 * Pi that keeps talking to the old router's MAC after a switch.
 */
const table = {
  internet: {
    namespace: 'pibond-inet',
    /**
     * Probe targets; each answers ping, and HTTP on whoamiPort with the caller's address as it
     * arrived. The last is the outbound pinger's (a test boot's own traffic, which the prober
     * records), the others the image's uplink probes' (uplinkTargets): apart, so that the uplink
     * probes sent through the inactive backup never count as the Pi's traffic through it.
     */
    targets: ['192.0.2.1', '192.0.2.2', '192.0.2.3'],
    /** Inbound connections (through the routers' port forwards) come from here. */
    client: '192.0.2.100',
    /**
     * The prober's outage recorder connects from here: its stream of connections must not use up
     * the share of connections the Pi's service allows each client, which the client's probes need.
     */
    watcher: '192.0.2.101',
    whoamiPort: 80,
  },
  routers: {
    main: {
      namespace: 'pibond-main',
      bridge: 'br-main',
      tap: 'tap-main',
      lan: { port: 'lan-main', mac: '02:00:00:00:01:01' },
      wan: { subnet: '198.51.100.0/24', address: '198.51.100.2', gateway: '198.51.100.1', mac: '02:00:00:00:01:02', peer: 'isp-main', peerMac: '02:00:00:00:01:03' },
    },
    backup: {
      namespace: 'pibond-backup',
      bridge: 'br-backup',
      tap: 'tap-backup',
      lan: { port: 'lan-backup', mac: '02:00:00:00:02:01' },
      wan: { subnet: '203.0.113.0/24', address: '203.0.113.2', gateway: '203.0.113.1', mac: '02:00:00:00:02:02', peer: 'isp-backup', peerMac: '02:00:00:00:02:03' },
    },
  },
  /** Each router forwards these WAN ports to the Pi: its status service and SSH. */
  forwards: [
    { service: 'status', wanPort: 8080, piPort: 8080 },
    { service: 'ssh', wanPort: 2222, piPort: 22 },
  ],
  /**
   * Each router's LAN, a /24: the router is .1, its DHCP pool is the single address .100, so the
   * Pi's address (and the port forwards' target) is known without a reservation for its MAC.
   */
  layouts: {
    // A user who mirrored the main router's LAN settings on the backup.
    'same-subnet': { main: '192.168.1', backup: '192.168.1' },
    // The backup left at an LTE router's own default.
    'different-subnets': { main: '192.168.1', backup: '192.168.8' },
  },
  leaseTime: '12h',
} as const;

export const layoutNames = Object.keys(table.layouts) as LayoutName[];
export const routerNames = Object.keys(table.routers) as RouterName[];

export interface Forward {
  service: 'status' | 'ssh';
  wanPort: number;
  piPort: number;
}

/** One router as testbed.mjs builds it. */
export interface RouterPlan {
  name: RouterName;
  namespace: string;
  bridge: string;
  tap: string;
  lan: {
    /** The router's LAN veth end in the container's namespace, plugged into the bridge. */
    port: string;
    mac: string;
    address: string;
    prefix: number;
    netmask: string;
    pool: [string, string];
    /** The Pi's address: the pool's one address, and where the port forwards go. */
    pi: string;
    leaseTime: string;
  };
  wan: {
    subnet: string;
    address: string;
    gateway: string;
    mac: string;
    /** The ISP's end of the router's line, in the internet namespace. */
    peer: string;
    peerMac: string;
    prefix: number;
  };
  forwards: Forward[];
}

export interface TestbedPlan {
  layout: LayoutName;
  /** Who may open the taps without NET_ADMIN: QEMU run as the invoking user (uid, gid); else root only. */
  tapOwner?: { uid: number; gid: number };
  internet: { namespace: string; targets: string[]; client: string; watcher: string; whoamiPort: number };
  routers: RouterPlan[];
  documentationRanges: string[];
  /** Where the prober listens, inside the container (see testbed.mjs); no prober when not given. */
  proberSocket?: string;
}

/** The test bed for a layout, every address spelled out, as testbed.mjs takes it. */
export function testbedPlan(layout: LayoutName, opts: { statusPort?: number; tapOwner?: { uid: number; gid: number }; proberSocket?: string } = {}): TestbedPlan {
  const lans = table.layouts[layout];
  return {
    layout,
    tapOwner: opts.tapOwner,
    proberSocket: opts.proberSocket,
    internet: { ...table.internet, targets: [...table.internet.targets] },
    routers: routerNames.map((name) => {
      const r = table.routers[name];
      const lan = lans[name];
      return {
        name,
        namespace: r.namespace,
        bridge: r.bridge,
        tap: r.tap,
        lan: {
          ...r.lan,
          address: `${lan}.1`,
          prefix: 24,
          netmask: '255.255.255.0',
          pool: [`${lan}.100`, `${lan}.100`],
          pi: `${lan}.100`,
          leaseTime: table.leaseTime,
        },
        wan: { ...r.wan, prefix: 24 },
        forwards: table.forwards.map((f) => (f.service === 'status' && opts.statusPort ? { ...f, piPort: opts.statusPort } : { ...f })),
      };
    }),
    documentationRanges: [...documentationRanges],
  };
}

export interface LinkState {
  exists: boolean;
  up: boolean;
  carrier?: boolean;
  mac?: string;
  operstate?: string;
}

/** What `testbed.mjs status` prints. */
export interface TestbedStatus {
  layout: LayoutName;
  internet: { namespace: string; targets: string[]; client: string; whoamiPort: number };
  routers: Record<
    RouterName,
    {
      namespace: string;
      lan: LinkState & { address: string; prefix: number; bridge: string; tap: string };
      wan: LinkState & { address: string; gateway: string };
      wanFailed: boolean;
      hung: boolean;
      /** Of what crosses the WAN, the share dropped each way (testbed.mjs loss). */
      lossPercent: number;
      dhcp: { running: boolean; pool: [string, string]; leases: { mac: string; address: string; expires: number }[] };
      forwards: Forward[];
    }
  >;
  taps: Record<string, LinkState>;
}

/** Where the script and zx are mounted in the container (zx resolves from the script's parent). */
const inside = { root: '/opt/pibond-testbed', script: '/opt/pibond-testbed/testbed/testbed.mjs', proberDir: '/run/pibond-prober' };
/** The prober's socket in its host directory (proberDir). */
export const proberSocketName = 'prober.sock';
// The repo's own zx, so the container needs no npm; zx 8 has no dependencies of its own.
const zxDir = join(import.meta.dirname, '..', '..', '..', 'node_modules', 'zx');

/** Every test bed container carries it, its value the layout. */
export const testbedLabel = 'pibond.testbed';

export interface TestbedOptions {
  docker: Docker;
  /** An image with the builder's tools and testbedPackages. */
  image: string;
  layout: LayoutName;
  /** The Pi's status service port (the forward WAN:8080 goes there); 8080 when not given. */
  statusPort?: number;
  /** The uid and gid QEMU will run as, when not root: the taps are made theirs. */
  tapOwner?: { uid: number; gid: number };
  /** More mounts, e.g. the image and run directory QEMU needs when it runs in this container. */
  binds?: string[];
  /**
   * A host directory for the prober's socket (proberSocketName): the host's way to the internet
   * side. No prober when not given.
   */
  proberDir?: string;
  /** More labels for the container (e.g. the boot's owner, so a later run can sweep it away). */
  labels?: Record<string, string>;
  name?: string;
  sink?: LineSink;
}

/** The test bed, up in its container. */
export class Testbed {
  private constructor(
    private readonly docker: Docker,
    readonly running: RunningContainer,
    readonly plan: TestbedPlan,
    private readonly sink: LineSink,
  ) {}

  /** Starts the container and brings the layout up; on failure nothing is left behind. */
  static async start(opts: TestbedOptions): Promise<Testbed> {
    const sink = opts.sink ?? (() => {});
    const running = await startContainer(opts.docker, {
      image: opts.image,
      cmd: ['sleep', 'infinity'],
      name: opts.name ?? `pibond-testbed-${process.pid}-${Date.now().toString(36)}`,
      labels: { ...opts.labels, [testbedLabel]: opts.layout },
      binds: [
        `${import.meta.dirname}:${inside.root}/testbed:ro`,
        `${zxDir}:${inside.root}/node_modules/zx:ro`,
        ...(opts.proberDir ? [`${opts.proberDir}:${inside.proberDir}`] : []),
        ...(opts.binds ?? []),
      ],
      // Its own network namespace with nothing in it but loopback: no way out of the machine.
      networkMode: 'none',
      // NET_ADMIN for links, routes and nftables; SYS_ADMIN because creating a network namespace
      // (and `ip netns`'s mounts) needs it; the tun device for the taps QEMU opens.
      capAdd: ['NET_ADMIN', 'SYS_ADMIN'],
      devices: ['/dev/net/tun'],
      init: true,
      sink,
    });
    const proberSocket = opts.proberDir ? `${inside.proberDir}/${proberSocketName}` : undefined;
    const testbed = new Testbed(opts.docker, running, testbedPlan(opts.layout, { statusPort: opts.statusPort, tapOwner: opts.tapOwner, proberSocket }), sink);
    try {
      await testbed.script(['up', opts.layout], { TESTBED_PLAN: JSON.stringify(testbed.plan) });
    } catch (err) {
      await running.remove();
      throw err;
    }
    return testbed;
  }

  router(name: RouterName): RouterPlan {
    const found = this.plan.routers.find((r) => r.name === name);
    if (!found) throw new Error(`no router ${name}`);
    return found;
  }

  /** Cuts the router's line at the ISP's end; the router's LAN (link, DHCP, ARP) stays up. */
  failWan(router: RouterName): Promise<string> {
    return this.script(['fail-wan', router]);
  }

  restoreWan(router: RouterName): Promise<string> {
    return this.script(['restore-wan', router]);
  }

  /** The router's LAN link stays up, but it neither answers nor sends anything, not even ARP. */
  hang(router: RouterName): Promise<string> {
    return this.script(['hang', router]);
  }

  unhang(router: RouterName): Promise<string> {
    return this.script(['unhang', router]);
  }

  /** Drops `percent` of what crosses the router's WAN, each way (0 ends it); the LAN is untouched. */
  loss(router: RouterName, percent: number): Promise<string> {
    return this.script(['loss', router, String(percent)]);
  }

  async status(): Promise<TestbedStatus> {
    return JSON.parse(await this.script(['status'])) as TestbedStatus;
  }

  /** Runs a command in the container (e.g. `ip netns exec pibond-inet curl ...`); returns its stdout. */
  async exec(cmd: string[], env?: Record<string, string>): Promise<string> {
    const stdout: string[] = [];
    await execIn(this.docker, this.running.container, cmd, {
      env,
      sink: (line, stream) => {
        if (stream === 'stdout') stdout.push(line);
        this.sink(line, stream);
      },
    });
    return stdout.join('\n');
  }

  /** Takes the test bed down and removes its container; safe to call more than once. */
  stop(): Promise<void> {
    return this.running.remove();
  }

  private script(args: string[], env?: Record<string, string>): Promise<string> {
    return this.exec(['node', inside.script, ...args], env);
  }
}

/** Where a test boot's pinger sends the Pi's outbound traffic, which the prober records. */
export function pingTarget(plan: Pick<TestbedPlan, 'internet'>): string {
  const target = plan.internet.targets.at(-1);
  if (target === undefined) throw new Error('the test bed plan has no targets');
  return target;
}

/** Where the image's uplink probes go on a test boot: every target but the pinger's. */
export function uplinkTargets(plan: Pick<TestbedPlan, 'internet'>): string[] {
  return plan.internet.targets.slice(0, -1);
}
