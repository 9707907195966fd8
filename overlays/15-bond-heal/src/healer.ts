/**
 * What to do at each failover of the bond, and when the switch counts as healed.
 *
 * At the kernel's failover event the healer at once
 *   1. flushes the bond's neighbour entries that hold a MAC (IPv4 and IPv6, neighbourFlush): the
 *      gateway's entry still holds the old router's MAC, and the new router drops every frame sent
 *      to it (5.5 s of silence measured);
 *   2. sends a datagram to the gateway, so the kernel resolves it afresh on the new segment;
 *   3. counts the switch healed when the gateway's entry resolves (the monitor's neighbour line).
 * The new router learns the Pi's MAC from the bond itself: on failover the driver raises
 * NETDEV_NOTIFY_PEERS (num_grat_arp times), on which the kernel sends a gratuitous ARP
 * (net/ipv4/devinet.c) and an unsolicited NA per IPv6 address (net/ipv6/ndisc.c).
 *
 * With DHCP, when the gateway does not answer within `answerWithinMs` (the new router serves another
 * subnet), or the new slave's router is known to be another address, the healer asks the network
 * stack for a new lease (`requestRenew`: the stack's own row, see render.ts) and counts the switch
 * healed when the new default route's gateway resolves. The way back is the same switch reversed.
 *
 * Where the stack lets it (`reuseLeases`: ifupdown, whose dhclient takes a lease bound on the bond
 * as it finds it), a switch to a router seen before does not wait for that DHCP exchange: the
 * healer puts that router's remembered lease (address, lifetime left, gateway) on the bond at once,
 * in the same batch as the flush, takes the other router's off, and counts the switch healed when
 * the gateway answers with the MAC it had: the same router, the same network (RFC 4436, detecting
 * network attachment, does the same). A backup router never switched to yet has the lease
 * pibond-dhcp-prelease took through its slave at boot (`preleaseDirectory`; any MAC will do).
 * Once the bond has stayed (confirmAfterMs) the stack's client confirms the lease; if the gateway
 * answers with another MAC, or not at all, the lease goes again and a new one is asked for.
 *
 * Every effect is injected, so the decisions are tested with fakes (test/overlays/bond-heal.test.ts).
 */
import { sameSubnet } from '../../16-bond-uplink/src/sources.ts';
import { parseMonitorLine, resolved, type MonitorEvent } from './monitor-lines.ts';
import { parseLeaseFile } from './prelease.ts';

export interface HealConfig {
  bond: string;
  /** With DHCP a lease can be renewed; with static addressing only the neighbours can be healed. */
  dhcp: boolean;
  /** The router's address on each slave's side, where the definition says (bond.slaves[].gateway). */
  gateways: Record<string, string>;
  /** How long the gateway has to answer on the new segment before the lease is renewed. */
  answerWithinMs: number;
  /** After this long without an answer, the switch is recorded as not healed. */
  giveUpAfterMs: number;
  /**
   * The healer may change the bond's IPv4 addresses at a switch: put a router's remembered lease on
   * and take the other router's off (the ifupdown row). False where the stack owns them and drops
   * what others add (networkd, NetworkManager): there the stack's renewal does it all.
   */
  reuseLeases: boolean;
  /**
   * Where a backup slave's lease taken ahead of any switch is (`DIRECTORY/SLAVE.leases`,
   * pibond-dhcp-prelease.service with ifupdown): the first switch to that router puts it on.
   */
  preleaseDirectory?: string;
}

/** flush: the neighbours were enough; reuse: the router's remembered lease; renew: a new DHCP lease. */
export type HealAction = 'flush' | 'reuse' | 'renew';
export type HealOutcome = 'healed' | 'not_healed' | 'superseded';

/** One switch, as the status service reads it from /run/pibond-heal/heals.json. */
export interface HealRecord {
  bond: string;
  /** Wall clock of the failover event, ISO-8601. */
  time: string;
  /** The slave that became active. */
  to: string | null;
  action: HealAction;
  outcome: HealOutcome;
  /** The gateway that answered (or was waited for). */
  gateway: string | null;
  /** From the failover event to the gateway's answer on the new segment; null when it never answered. */
  heal_ms: number | null;
}

export interface HealEffects {
  /** Monotonic milliseconds. */
  now(): number;
  wallClock(): Date;
  activeSlave(bond: string): string | null;
  /** The bond's IPv4 default gateway now, if any. */
  defaultGateway(bond: string): Promise<string | null>;
  flushNeighbours(bond: string): Promise<void>;
  /** The kernel's neighbour entries for `address` now, as `ip neigh show to` prints them (with "dev"). */
  neighbours(address: string): Promise<string[]>;
  /** Makes the kernel resolve `gateway` (any packet to it will do). */
  probe(gateway: string): void;
  /** Asks the network stack for a new DHCP lease on the bond. */
  requestRenew(bond: string): void;
  /** The bond's global IPv4 addresses now, as `ip -o -4 address show` prints them. */
  addresses(bond: string): Promise<string[]>;
  /** The text of a file, or null when it cannot be read (the lease taken ahead, config.preleaseDirectory). */
  readFile(path: string): string | null;
  /** Changes the bond's IPv4 addressing in one batch (readdressCommands), settling when it is done. */
  readdress(bond: string, change: Readdress): Promise<void>;
  record(heal: HealRecord): void;
  setTimer(ms: number, run: () => void): () => void;
  log(priority: 'warning' | 'notice' | 'info', message: string): void;
}

/**
 * A change of the bond's IPv4 addressing: the neighbours flushed (`flush`), `drop` taken off with
 * the default route through `dropGateway`, then `put` (if any) put on, its lifetime
 * `put.validSeconds`, with its default route.
 */
export interface Readdress {
  flush?: boolean;
  drop: BondAddress[];
  dropGateway: string | null;
  put?: Lease;
}

/** A global IPv4 address of the bond, followed from the monitor's lines. */
export interface BondAddress {
  address: string;
  prefix: number;
  broadcast: string | null;
  /** Monotonic ms when it expires (the kernel's valid_lft); Infinity for "forever". */
  expiresAt: number;
}

/**
 * A router's lease as the bond last held it, or as taken ahead through the backup slave
 * (prelease.ts): what a switch to that router puts on at once.
 */
export interface Lease extends BondAddress {
  gateway: string;
  /**
   * The gateway's MAC when it last answered: an answer with it again is the same router. Null for
   * a lease taken ahead: any answer will do.
   */
  mac: string | null;
  /** What is left of the lease when it is put on (readdress), in whole seconds. */
  validSeconds?: number;
}

/** What the healer knows of a slave's router from the last switch to it that healed. */
interface Router {
  gateway: string;
  lease: Lease | null;
}

/** A lease is put on again only with this much of it left: it must outlive the DHCP exchange that confirms it. */
export const reuseMinLeftMs = 60_000;
/** How long the bond stays on a reused lease's router before the stack's client confirms the lease with it. */
export const confirmAfterMs = 3000;

interface Switch {
  /** failover: the kernel's event; start: the check when this process starts (see start()). */
  kind: 'failover' | 'start';
  startedAt: number;
  time: Date;
  to: string | null;
  action: HealAction;
  /** The gateway whose answer ends the switch; null until a default route names one. */
  gateway: string | null;
  cancelTimers: (() => void)[];
  /** Neighbour lines count only once the flush is done: earlier ones may be the old router's. */
  flushed: boolean;
  /** The lease put on again (action reuse): the gateway must answer with its MAC. */
  reused: Lease | null;
}

/**
 * Renew at once, before any probe: the new slave's router is known (from the definition, or learnt
 * at an earlier switch) to be another address than the gateway, or there is no gateway at all.
 */
export function renewAtOnce(config: HealConfig, to: string | null, gateway: string | null, learned?: string): boolean {
  if (!config.dhcp) return false;
  if (gateway === null) return true;
  const expected = (to === null ? undefined : config.gateways[to]) ?? learned;
  return expected !== undefined && expected !== gateway;
}

/**
 * The `ip -batch` line that flushes the bond's neighbour entries holding a MAC, IPv4 and IPv6 (a
 * batch without -4 or -6 flushes both). An entry still resolving (INCOMPLETE) holds the packets
 * waiting for its answer, and the answer comes through the new slave: deleting it would drop them
 * and cost a TCP retransmission (a second) instead of a few milliseconds. PERMANENT and NOARP
 * entries are never flushed.
 */
export function neighbourFlush(bond: string): string {
  return ['neigh', 'flush', 'dev', bond, ...['reachable', 'stale', 'delay', 'probe'].flatMap((state) => ['nud', state])].join(' ');
}

/**
 * The `ip -batch` lines of a readdress: the neighbours flushed if asked, the old default route and
 * addresses go, then the lease goes on with its lifetime and default route.
 */
export function readdressCommands(bond: string, change: Readdress): string[] {
  const commands = change.flush === true ? [neighbourFlush(bond)] : [];
  // The route first: deleting the last address of its gateway's subnet would take it along.
  if (change.dropGateway !== null) commands.push(`route del default via ${change.dropGateway} dev ${bond}`);
  commands.push(...change.drop.map((a) => `address del ${a.address}/${a.prefix} dev ${bond}`));
  const put = change.put;
  if (put !== undefined) {
    const lifetime = put.validSeconds === undefined ? '' : ` valid_lft ${put.validSeconds} preferred_lft ${put.validSeconds}`;
    commands.push(`address replace ${put.address}/${put.prefix}${put.broadcast === null ? '' : ` broadcast ${put.broadcast}`}${lifetime} dev ${bond}`);
    commands.push(`route replace default via ${put.gateway} dev ${bond}`);
  }
  return commands;
}

export class Healer {
  private current: Switch | null = null;
  /** The bond's IPv4 default gateway, followed from the route lines: no command to run at a failover. */
  private gateway: string | null | undefined;
  /**
   * Each slave's router as last seen answering: after the first switch each way, a switch to a
   * router on another subnet renews at once instead of waiting answerWithinMs for an answer, or
   * puts that router's lease on again (reuseLeases).
   */
  private readonly learned = new Map<string, Router>();
  /** The bond's global IPv4 addresses (reuseLeases only), followed from the monitor's lines. */
  private readonly addresses = new Map<string, BondAddress>();
  /** The slave active since the last switch the healer saw. */
  private active: string | null = null;

  constructor(
    private readonly config: HealConfig,
    private readonly effects: HealEffects,
  ) {}

  /** One line of `ip -o monitor link neigh route`. */
  async line(text: string): Promise<void> {
    const event = parseMonitorLine(text);
    if (event !== null) await this.event(event);
  }

  /**
   * Once the monitor listens. The bond may have switched before this process started: at boot a
   * stack that enslaves its slaves as they appear (networkd, NetworkManager) may enslave the backup
   * first, get a lease from the backup's router, and only then see the primary take over; or the
   * switch came while this process was restarting. With a lease (a default route) the gateway is
   * checked as at a failover: resolved afresh on the active slave's side, and the lease renewed
   * when it does not answer. Without one the stack's DHCP is still asking, through whichever slave
   * is active, which is right. A start check is logged, not recorded as a heal: no switch was seen.
   */
  async start(): Promise<void> {
    if (this.config.reuseLeases) {
      for (const line of await this.effects.addresses(this.config.bond)) {
        const event = parseMonitorLine(line);
        if (event?.kind === 'address' && !this.addresses.has(event.address)) this.addressEvent(event);
      }
    }
    if (!this.config.dhcp || this.current !== null) return;
    const gateway = await this.effects.defaultGateway(this.config.bond);
    if (gateway === null || this.current !== null) return;
    await this.failover('start');
  }

  /**
   * A failover of the bond whose line was reached only after the bond had switched again (its next
   * failover's line waits in the queue, see line-queue.ts). That switch is over: healing it would
   * flush what the next switch's traffic resolves. The open switch, if any, is superseded, as at
   * any failover, and the next line heals once for both.
   */
  overtaken(): void {
    if (this.current !== null) this.finish(this.current, 'superseded');
    this.effects.log('info', `${this.config.bond}: a failover overtaken by the next before it was handled: one heal for both`);
  }

  async event(event: MonitorEvent): Promise<void> {
    if (event.kind === 'failover') {
      if (event.bond === this.config.bond) await this.failover();
    } else if (event.kind === 'neighbour') {
      const open = this.current;
      if (open?.flushed && this.isAnswerFrom(event, open.gateway)) this.answered(open, event.lladdr);
      else if (open === null && this.gateway != null && this.isAnswerFrom(event, this.gateway)) this.learnBetweenSwitches(this.gateway, event.lladdr);
    } else if (event.kind === 'address') {
      if (event.dev === this.config.bond && this.config.reuseLeases) this.addressEvent(event);
    } else if (event.dev === this.config.bond && event.deleted) {
      if (this.gateway === event.via) this.gateway = null;
    } else if (event.dev === this.config.bond) {
      this.gateway = event.via;
      // A new default route: after a renewal, the new router's address; resolve it at once.
      const open = this.current;
      if (open?.action === 'renew' && open.gateway !== event.via) {
        open.gateway = event.via;
        this.effects.probe(event.via);
      }
    }
  }

  private async failover(kind: Switch['kind'] = 'failover'): Promise<void> {
    const { effects, config } = this;
    const started = effects.now();
    if (this.current !== null) this.finish(this.current, 'superseded');
    const open: Switch = { kind, startedAt: started, time: effects.wallClock(), to: effects.activeSlave(config.bond), action: 'flush', gateway: null, cancelTimers: [], flushed: false, reused: null };
    this.current = open;
    this.leaving(open.to);
    this.cancelConfirm();
    const to = open.to;
    const router = to === null ? undefined : (this.learned.get(to) ?? this.preleased(to));
    const known = this.gateway;
    const lease = known === undefined ? null : this.reusable(router, known);
    if (lease !== null) {
      // The flush and the lease in one batch: every millisecond here is outage.
      await this.reuse(open, lease);
    } else {
      // Together: each is a command.
      const [gateway] = await Promise.all([known === undefined ? effects.defaultGateway(config.bond) : known, effects.flushNeighbours(config.bond)]);
      open.gateway = gateway;
      open.flushed = true;
      if (this.current !== open) return;
      const what = kind === 'start' ? `at start, ${to ?? 'no slave'} active` : `failover to ${to ?? 'none'}`;
      effects.log('info', `${config.bond}: ${what}: neighbours flushed, waiting for ${gateway ?? 'a gateway'}`);
      if (renewAtOnce(config, to, gateway, router?.gateway)) {
        await this.renew(open);
      } else if (gateway !== null) {
        effects.probe(gateway);
        if (config.dhcp) {
          open.cancelTimers.push(effects.setTimer(config.answerWithinMs, () => void this.answeredOrRenew(open)));
        }
      }
    }
    if (this.current !== open) return;
    open.cancelTimers.push(effects.setTimer(config.giveUpAfterMs, () => {
      if (this.current === open) this.finish(open, 'not_healed');
    }));
  }

  /**
   * answerWithinMs passed and no line said the gateway answered. On a busy machine (a first boot
   * under emulation: seen) that line may still be unread in the monitor's pipe, and a renewal costs
   * the bond its address for a whole DHCP exchange: the kernel's own table is asked first.
   */
  private async answeredOrRenew(open: Switch): Promise<void> {
    const action = open.action;
    const stillWaiting = () => this.current === open && open.action === action && action !== 'renew';
    if (!stillWaiting() || open.gateway === null) return;
    const gateway = open.gateway;
    const entries = (await this.effects.neighbours(gateway)).map(parseMonitorLine);
    if (!stillWaiting()) return;
    const answer = entries.find((e) => e?.kind === 'neighbour' && this.isAnswerFrom(e, gateway));
    if (answer?.kind === 'neighbour') this.answered(open, answer.lladdr);
    else if (action === 'reuse') await this.unreuse(open, 'did not answer');
    else await this.renew(open);
  }

  /** The gateway answered, from `mac`: healed, unless a reused lease's gateway answered from another router. */
  private answered(open: Switch, mac: string | null): void {
    if (open.reused === null || open.reused.mac === null || mac === open.reused.mac) this.finish(open, 'healed', mac);
    else void this.unreuse(open, `answered from ${mac ?? 'no MAC'}, not ${open.reused.mac}`);
  }

  /**
   * The lease to put on again at a switch to `router`: known, with a minute left, and another
   * network than the bond's now (on the same one the flush heals it, keeping the address).
   */
  private reusable(router: Router | undefined, gateway: string | null): Lease | null {
    const lease = router?.lease ?? null;
    if (!this.config.dhcp || !this.config.reuseLeases || lease === null || lease.gateway === gateway) return null;
    const leftMs = lease.expiresAt - this.effects.now();
    if (leftMs < reuseMinLeftMs) return null;
    return { ...lease, validSeconds: Number.isFinite(leftMs) ? Math.floor(leftMs / 1000) : undefined };
  }

  /**
   * Flushes the neighbours and puts `lease` on instead of the bond's addresses, in one batch, and
   * resolves its gateway. The stack's confirmation of the lease waits until the bond has stayed
   * (confirmAfterMs after the heal): a cable that flaps would otherwise restart the DHCP client at
   * every switch, and under emulation that restart slowed the next switch's heal by up to a second.
   */
  private async reuse(open: Switch, lease: Lease): Promise<void> {
    open.action = 'reuse';
    open.reused = lease;
    open.gateway = lease.gateway;
    await this.readdress({ flush: true, drop: this.others(lease.address), dropGateway: this.gateway ?? null, put: lease });
    open.flushed = true;
    if (this.current !== open) return;
    this.effects.probe(lease.gateway);
    this.effects.log('info', `${this.config.bond}: failover to ${open.to ?? 'none'}, a router seen before: its lease ${lease.address}/${lease.prefix} (gateway ${lease.gateway}) put on again until DHCP confirms it`);
    open.cancelTimers.push(this.effects.setTimer(this.config.answerWithinMs, () => void this.answeredOrRenew(open)));
  }

  /** After a reused lease healed: the stack's client asks that router for it once the bond has stayed. */
  private confirmLater(): void {
    this.cancelConfirm();
    this.cancelConfirm = this.effects.setTimer(confirmAfterMs, () => {
      this.cancelConfirm = () => {};
      this.effects.requestRenew(this.config.bond);
    });
  }

  private cancelConfirm: () => void = () => {};

  /**
   * The reused lease's router is not the one behind the bond now: its lease goes, and the switch
   * waits for the stack's new one.
   */
  private async unreuse(open: Switch, why: string): Promise<void> {
    const lease = open.reused;
    if (lease === null || this.current !== open) return;
    open.reused = null;
    open.action = 'renew';
    open.gateway = null;
    this.effects.log('notice', `${this.config.bond}: the gateway ${lease.gateway} ${why}: another network behind ${open.to ?? 'the new slave'}, asking for a new DHCP lease`);
    const put = this.addresses.get(lease.address);
    await this.readdress({ drop: put === undefined ? [lease] : [put], dropGateway: lease.gateway });
    if (this.current === open) this.effects.requestRenew(this.config.bond);
  }

  /** Changes the bond's addresses, and follows the change at once (the monitor's lines about it come later). */
  private async readdress(change: Readdress): Promise<void> {
    for (const gone of change.drop) this.addresses.delete(gone.address);
    const { put } = change;
    if (put !== undefined) this.addresses.set(put.address, { address: put.address, prefix: put.prefix, broadcast: put.broadcast, expiresAt: put.expiresAt });
    this.gateway = put?.gateway ?? (this.gateway === change.dropGateway ? null : this.gateway);
    await this.effects.readdress(this.config.bond, change);
  }

  /**
   * The gateway answered with no switch open: the lease the stack got at boot (after this process
   * started, so the check at start saw none) or renewed since. The active slave's router is learnt
   * as at a healed switch, so that the first switch back to it reuses its lease too.
   */
  private learnBetweenSwitches(gateway: string, mac: string | null): void {
    const active = this.effects.activeSlave(this.config.bond);
    const lease = this.leaseOf(gateway, mac);
    if (active === null || lease === null) return;
    this.active ??= active;
    this.learned.set(active, { gateway, lease });
  }

  /**
   * The lease pibond-dhcp-prelease took through `slave` before any switch to it, if any: read at
   * the first switch to that slave only (a small file; the switches after it use what they learnt).
   */
  private preleased(slave: string): Router | undefined {
    const directory = this.config.preleaseDirectory;
    if (directory === undefined) return undefined;
    const text = this.effects.readFile(`${directory}/${slave}.leases`);
    const taken = text === null ? null : parseLeaseFile(text);
    if (taken === null) return undefined;
    const expiresAt = this.effects.now() + (taken.expires - this.effects.wallClock().getTime());
    const { address, prefix, broadcast, gateway } = taken;
    return { gateway, lease: { address, prefix, broadcast, gateway, mac: null, expiresAt } };
  }

  /** The bond's addresses other than `address`. */
  private others(address: string | null): BondAddress[] {
    return [...this.addresses.values()].filter((a) => a.address !== address);
  }

  /** The bond leaves the slave it had: that slave's router keeps the lease as it is now, lifetime included. */
  private leaving(to: string | null): void {
    const left = this.active;
    this.active = to;
    const router = left === null ? undefined : this.learned.get(left);
    if (router?.lease == null || left === to) return;
    const now = this.addresses.get(router.lease.address);
    if (now !== undefined && this.gateway === router.gateway) router.lease = { ...router.lease, ...now };
  }

  private addressEvent(event: Extract<MonitorEvent, { kind: 'address' }>): void {
    if (event.deleted) {
      this.addresses.delete(event.address);
      return;
    }
    const expiresAt = event.validSeconds === null ? Number.POSITIVE_INFINITY : this.effects.now() + event.validSeconds * 1000;
    this.addresses.set(event.address, { address: event.address, prefix: event.prefix, broadcast: event.broadcast, expiresAt });
  }

  /** A neighbour entry resolved on the bond for `gateway`: the router behind the bond answered. */
  private isAnswerFrom(entry: Extract<MonitorEvent, { kind: 'neighbour' }>, gateway: string | null): boolean {
    return entry.dev === this.config.bond && entry.address === gateway && resolved(entry);
  }

  private async renew(open: Switch): Promise<void> {
    open.action = 'renew';
    // The old gateway is on the other router's subnet: only the new lease's route names the one to wait for.
    const old = open.gateway;
    open.gateway = null;
    this.effects.log('notice', `${this.config.bond}: the gateway did not answer on ${open.to ?? 'the new slave'}: asking for a new DHCP lease`);
    // Where the healer changes the addresses, the old router's lease goes now: the stack's client starts afresh.
    if (this.config.reuseLeases) await this.readdress({ drop: this.others(null), dropGateway: this.gateway ?? old });
    if (this.current !== open) return;
    this.effects.requestRenew(this.config.bond);
  }

  /** What the bond holds now, as the lease of the router at `gateway` that answered from `mac`. */
  private leaseOf(gateway: string, mac: string | null): Lease | null {
    if (!this.config.reuseLeases || mac === null) return null;
    const onItsSubnet = [...this.addresses.values()].find((a) => sameSubnet(a.address, gateway, a.prefix));
    return onItsSubnet === undefined ? null : { ...onItsSubnet, gateway, mac };
  }

  private finish(open: Switch, outcome: HealOutcome, mac: string | null = null): void {
    for (const cancel of open.cancelTimers) cancel();
    if (this.current === open) this.current = null;
    const healMs = outcome === 'healed' ? Math.round(this.effects.now() - open.startedAt) : null;
    if (outcome === 'healed' && open.to !== null && open.gateway !== null) {
      const reused = open.reused === null ? null : { ...open.reused, mac: open.reused.mac ?? mac };
      this.learned.set(open.to, { gateway: open.gateway, lease: reused ?? this.leaseOf(open.gateway, mac) });
    }
    if (outcome === 'healed' && open.reused !== null) this.confirmLater();
    const heal: HealRecord = { bond: this.config.bond, time: open.time.toISOString(), to: open.to, action: open.action, outcome, gateway: open.gateway, heal_ms: healMs };
    if (open.kind === 'failover') this.effects.record(heal);
    const what = open.kind === 'start' ? `the check at start (${heal.to ?? 'no slave'} active)` : `switch to ${heal.to ?? 'none'}`;
    const message = `${heal.bond}: ${what} ${outcome === 'healed' ? `healed in ${healMs} ms` : outcome.replace('_', ' ')} (${heal.action}${heal.gateway === null ? '' : `, gateway ${heal.gateway}`})`;
    this.effects.log(outcome === 'healed' ? (open.kind === 'start' && open.action === 'flush' ? 'info' : 'notice') : 'warning', message);
  }
}
