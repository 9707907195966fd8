/**
 * Where each uplink is probed from: the router to ask and the source address to ask with.
 *
 * The active slave's uplink is the bond's own: the bond's address and default gateway. An inactive
 * slave has no address of its own, and its router answers only a source on its own LAN, so:
 *   - its router is the one seen behind it when it was last active (learnt), else the definition's
 *     bond.slaves[].gateway, else the bond's gateway (both routers alike, the same-subnet layout);
 *   - its source is the bond's address when that router is on the bond's subnet, else the address
 *     the bond had when this slave was last active (its lease from that router).
 * Before a backup on another subnet has ever been active, neither is known: it is probed at the
 * router only (ARP from 0.0.0.0), and its uplink stays unknown, which the policy treats as usable.
 */

export interface BondAddress {
  address: string;
  prefix: number;
}

/** What the bond looks like now: read each round (sysfs, os.networkInterfaces, /proc/net/route). */
export interface BondView {
  active: string | null;
  address: BondAddress | null;
  gateway: string | null;
}

/** What a slave's side looked like when it was last active. */
export interface Learned extends BondAddress {
  router: string;
}

export interface ProbePlan {
  router: string | null;
  /** 0.0.0.0 when only the router can be asked (no address on its subnet is known). */
  source: string;
  /** Why the targets are not probed this round; null when they are. */
  note: string | null;
}

export function planProbe(slave: string, view: BondView, learned: ReadonlyMap<string, Learned>, gateways: Readonly<Record<string, string>>): ProbePlan {
  if (slave === view.active) {
    if (view.address === null) return { router: view.gateway, source: '0.0.0.0', note: 'the bond has no IPv4 address yet' };
    if (view.gateway === null) return { router: null, source: view.address.address, note: 'the bond has no default gateway' };
    return { router: view.gateway, source: view.address.address, note: null };
  }
  const known = learned.get(slave);
  const router = known?.router ?? gateways[slave] ?? view.gateway;
  if (router === null) return { router: null, source: '0.0.0.0', note: 'no router is known on this side yet' };
  if (view.address !== null && sameSubnet(view.address.address, router, view.address.prefix)) {
    return { router, source: view.address.address, note: null };
  }
  if (known !== undefined && sameSubnet(known.address, router, known.prefix)) return { router, source: known.address, note: null };
  return {
    router,
    source: '0.0.0.0',
    note: `no address on the subnet of ${router} is known yet: it is learnt the first time ${slave} is active; until then only the router is asked`,
  };
}

/** After each round: the active slave's side as it is now, for when it is the backup again. */
export function learn(learned: Map<string, Learned>, view: BondView): void {
  if (view.active === null || view.address === null || view.gateway === null) return;
  if (!sameSubnet(view.address.address, view.gateway, view.address.prefix)) return;
  learned.set(view.active, { ...view.address, router: view.gateway });
}

export function sameSubnet(a: string, b: string, prefix: number): boolean {
  const mask = prefix === 0 ? 0 : (~0 << (32 - prefix)) >>> 0;
  return ((toNumber(a) & mask) >>> 0) === ((toNumber(b) & mask) >>> 0);
}

function toNumber(ip: string): number {
  return ip.split('.').reduce((n, octet) => (n * 256 + Number(octet)) >>> 0, 0);
}

/** The default gateway of `dev` from /proc/net/route (hex, little-endian), without running ip. */
export function defaultGatewayFrom(procNetRoute: string, dev: string): string | null {
  for (const line of procNetRoute.split('\n').slice(1)) {
    const [iface, destination, gateway, , , , metric, mask] = line.trim().split(/\s+/);
    if (iface !== dev || destination !== '00000000' || mask !== '00000000' || gateway === undefined || metric === undefined) continue;
    const n = parseInt(gateway, 16);
    if (!Number.isFinite(n) || n === 0) continue;
    return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
  }
  return null;
}
