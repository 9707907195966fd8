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
 *
 * Right after a switch across subnets the bond still holds the other router's lease until its
 * stack renews (networkd, NetworkManager: 0.7-2 s under emulation). That view is *held over*: the
 * active slave is probed as a backup would be (its own router, the address it had there), and the
 * view is not learnt. Taken for the truth, every round in it probed the new active slave at the
 * other router and failed (networkd, 10 flaps: failed rounds eth0 1, eth1 8; with this, 0 and 2):
 * `down` of them in a row would move the primary away from a healthy uplink. That is the likely
 * cause of a networkd run whose bond stayed on the backup from the 8th flap.
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
  if (slave === view.active && heldOver(view, learned, gateways)) {
    const known = learned.get(slave);
    if (known !== undefined) return { router: known.router, source: known.address, note: null };
    const router = gateways[slave] ?? null;
    return { router, source: '0.0.0.0', note: `the bond still holds the lease of ${view.gateway ?? 'another router'}: only ${router ?? 'its router'} is asked until ${slave}'s own lease is on` };
  }
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

/**
 * Whether the bond's gateway is another slave's router while the active slave's own router is
 * known to be a different one: the lease of the slave that was active before, still on the bond.
 * Each slave's router is the one learnt, else the definition's gateway; unknown, nothing is held
 * over (both routers may well be alike, the same-subnet layout).
 */
export function heldOver(view: BondView, learned: ReadonlyMap<string, Learned>, gateways: Readonly<Record<string, string>>): boolean {
  const { active, gateway } = view;
  if (active === null || gateway === null) return false;
  const routerOf = (slave: string) => learned.get(slave)?.router ?? gateways[slave];
  const own = routerOf(active);
  if (own === undefined || own === gateway) return false;
  const others = new Set([...learned.keys(), ...Object.keys(gateways)]);
  others.delete(active);
  return [...others].some((slave) => routerOf(slave) === gateway);
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
