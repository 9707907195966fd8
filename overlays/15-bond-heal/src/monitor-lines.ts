/**
 * The lines `ip -o monitor link neigh route address` prints, as the events the healer acts on.
 * Everything else it prints (other links, other events, local and broadcast routes, IPv6 and
 * non-global addresses) is `null`.
 *
 * Formats (iproute2 ip/ipaddress.c, ipneigh.c, iproute.c; `-o` puts a link on one line, and some
 * versions prefix each line with its object, `[LINK]`, `[NEIGH]`, `[ROUTE]`, or with a timestamp):
 *   3: bond0: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> mtu 1500 ... event BONDING FAILOVER \    link/ether ...
 *   192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 REACHABLE
 *   Deleted 192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 STALE
 *   default via 192.168.8.1 dev bond0
 *   3: bond0    inet 192.168.8.100/24 brd 192.168.8.255 scope global bond0\       valid_lft 43152sec preferred_lft 43152sec
 * `ip -o -4 address show` prints addresses in the same format.
 */
import { isIP } from 'node:net';

export type MonitorEvent =
  /** The kernel's NETDEV_BONDING_FAILOVER: the bond has a new active slave. */
  | { kind: 'failover'; bond: string }
  /** A neighbour entry changed; `lladdr` is the MAC it now resolves to, null while unresolved. */
  | { kind: 'neighbour'; address: string; dev: string; lladdr: string | null; state: string; deleted: boolean }
  /** An IPv4 default route appeared or went. */
  | { kind: 'default-route'; via: string; dev: string; deleted: boolean }
  /** A global IPv4 address appeared, changed or went; `validSeconds` null for "forever". */
  | { kind: 'address'; dev: string; address: string; prefix: number; broadcast: string | null; validSeconds: number | null; deleted: boolean };

const prefix = /^(?:\[[A-Z]+\]\s*|Timestamp:[^\n]*?\s+\d+us\s+)*/;
const failover = /^\d+:\s+([^\s:@]+)(?:@\S+)?:\s.*\bevent BONDING FAILOVER\b/;
const neighbour = /^(Deleted\s+)?(\S+)\s+dev\s+(\S+)(?:\s+lladdr\s+(\S+))?(?:\s+\S+)*?\s+([A-Z]+(?:,[A-Z]+)*)\s*$/;
const defaultRoute = /^(Deleted\s+)?default\s+via\s+(\S+)\s+dev\s+(\S+)/;
const address = /^(Deleted\s+)?\d+:\s+(\S+)\s+inet\s+([\d.]+)\/(\d+)(?:\s+brd\s+([\d.]+))?.*?\sscope\s+global\b/;
const validLifetime = /\bvalid_lft\s+(\d+)sec\b/;

export function parseMonitorLine(raw: string): MonitorEvent | null {
  const line = raw.replace(prefix, '').trim();
  const link = failover.exec(line);
  if (link?.[1] !== undefined) return { kind: 'failover', bond: link[1] };

  const route = defaultRoute.exec(line);
  if (route?.[2] !== undefined && route[3] !== undefined && isIP(route[2]) === 4) {
    return { kind: 'default-route', via: route[2], dev: route[3], deleted: route[1] !== undefined };
  }

  const addr = address.exec(line);
  if (addr?.[2] !== undefined && addr[3] !== undefined && addr[4] !== undefined && isIP(addr[3]) === 4) {
    const valid = validLifetime.exec(line)?.[1];
    return {
      kind: 'address',
      dev: addr[2],
      address: addr[3],
      prefix: Number(addr[4]),
      broadcast: addr[5] ?? null,
      validSeconds: valid === undefined ? null : Number(valid),
      deleted: addr[1] !== undefined,
    };
  }

  const neigh = neighbour.exec(line);
  if (neigh?.[2] !== undefined && neigh[3] !== undefined && neigh[5] !== undefined && isIP(neigh[2]) !== 0) {
    return { kind: 'neighbour', address: neigh[2], dev: neigh[3], lladdr: neigh[4] ?? null, state: neigh[5], deleted: neigh[1] !== undefined };
  }
  return null;
}

/** A neighbour entry that names a MAC learnt from the wire: the gateway has answered. */
export function resolved(event: Extract<MonitorEvent, { kind: 'neighbour' }>): boolean {
  if (event.deleted || event.lladdr === null) return false;
  return !event.state.split(',').some((state) => state === 'FAILED' || state === 'INCOMPLETE' || state === 'NOARP');
}
