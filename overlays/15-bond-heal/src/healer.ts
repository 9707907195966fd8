/**
 * What to do at each failover of the bond, and when the switch counts as healed.
 *
 * At the kernel's failover event the healer at once
 *   1. flushes the bond's neighbour entries that hold a MAC (IPv4 and IPv6, neighbourFlushes): the
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
 * Every effect is injected, so the decisions are tested with fakes (test/overlays/bond-heal.test.ts).
 */
import { parseMonitorLine, resolved, type MonitorEvent } from './monitor-lines.ts';

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
}

export type HealAction = 'flush' | 'renew';
export type HealOutcome = 'healed' | 'not_healed' | 'superseded';

/** One switch, as the status service reads it from /run/pibond-heal/heals.json. */
export interface HealRecord {
  bond: string;
  /** Wall clock of the failover event, ISO-8601. */
  time: string;
  /** The slave that became active. */
  to: string | null;
  /** flush: the neighbours were enough; renew: a new DHCP lease was needed. */
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
  record(heal: HealRecord): void;
  setTimer(ms: number, run: () => void): () => void;
  log(priority: 'warning' | 'notice' | 'info', message: string): void;
}

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
 * The `ip` arguments that flush the bond's neighbour entries holding a MAC (both families). An
 * entry still resolving (INCOMPLETE) holds the packets waiting for its answer, and the answer comes
 * through the new slave: deleting it would drop them and cost a TCP retransmission (a second)
 * instead of a few milliseconds. PERMANENT and NOARP entries are never flushed.
 */
export function neighbourFlushes(bond: string): string[][] {
  const holdingAMac = ['reachable', 'stale', 'delay', 'probe'].flatMap((state) => ['nud', state]);
  return ['-4', '-6'].map((family) => [family, 'neigh', 'flush', 'dev', bond, ...holdingAMac]);
}

export class Healer {
  private current: Switch | null = null;
  /** The bond's IPv4 default gateway, followed from the route lines: no command to run at a failover. */
  private gateway: string | null | undefined;
  /**
   * Each slave's router as last seen answering: after the first switch each way, a switch to a
   * router on another subnet renews at once instead of waiting answerWithinMs for an answer.
   */
  private readonly learned = new Map<string, string>();

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
      if (open?.flushed && this.isAnswerFrom(event, open.gateway)) this.finish(open, 'healed');
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
    const open: Switch = { kind, startedAt: started, time: effects.wallClock(), to: effects.activeSlave(config.bond), action: 'flush', gateway: null, cancelTimers: [], flushed: false };
    this.current = open;
    // Together: each is a command, and every millisecond here is outage.
    const known = this.gateway;
    const [gateway] = await Promise.all([known === undefined ? effects.defaultGateway(config.bond) : known, effects.flushNeighbours(config.bond)]);
    open.gateway = gateway;
    open.flushed = true;
    if (this.current !== open) return;
    const to = open.to;
    const what = kind === 'start' ? `at start, ${to ?? 'no slave'} active` : `failover to ${to ?? 'none'}`;
    effects.log('info', `${config.bond}: ${what}: neighbours flushed, waiting for ${gateway ?? 'a gateway'}`);

    if (renewAtOnce(config, to, gateway, to === null ? undefined : this.learned.get(to))) {
      this.renew(open);
    } else if (gateway !== null) {
      effects.probe(gateway);
      if (config.dhcp) {
        open.cancelTimers.push(effects.setTimer(config.answerWithinMs, () => void this.answeredOrRenew(open)));
      }
    }
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
    const stillWaiting = () => this.current === open && open.action === 'flush';
    if (!stillWaiting() || open.gateway === null) return;
    const gateway = open.gateway;
    const entries = (await this.effects.neighbours(gateway)).map(parseMonitorLine);
    if (!stillWaiting()) return;
    const answered = entries.some((e) => e?.kind === 'neighbour' && this.isAnswerFrom(e, gateway));
    if (answered) this.finish(open, 'healed');
    else this.renew(open);
  }

  /** A neighbour entry resolved on the bond for `gateway`: the router behind the bond answered. */
  private isAnswerFrom(entry: Extract<MonitorEvent, { kind: 'neighbour' }>, gateway: string | null): boolean {
    return entry.dev === this.config.bond && entry.address === gateway && resolved(entry);
  }

  private renew(open: Switch): void {
    open.action = 'renew';
    // The old gateway is on the other router's subnet: only the new lease's route names the one to wait for.
    open.gateway = null;
    this.effects.log('notice', `${this.config.bond}: the gateway did not answer on ${open.to ?? 'the new slave'}: asking for a new DHCP lease`);
    this.effects.requestRenew(this.config.bond);
  }

  private finish(open: Switch, outcome: HealOutcome): void {
    for (const cancel of open.cancelTimers) cancel();
    if (this.current === open) this.current = null;
    const healMs = outcome === 'healed' ? Math.round(this.effects.now() - open.startedAt) : null;
    if (outcome === 'healed' && open.to !== null && open.gateway !== null) this.learned.set(open.to, open.gateway);
    const heal: HealRecord = { bond: this.config.bond, time: open.time.toISOString(), to: open.to, action: open.action, outcome, gateway: open.gateway, heal_ms: healMs };
    if (open.kind === 'failover') this.effects.record(heal);
    const what = open.kind === 'start' ? `the check at start (${heal.to ?? 'no slave'} active)` : `switch to ${heal.to ?? 'none'}`;
    const message = `${heal.bond}: ${what} ${outcome === 'healed' ? `healed in ${healMs} ms` : outcome.replace('_', ' ')} (${heal.action}${heal.gateway === null ? '' : `, gateway ${heal.gateway}`})`;
    this.effects.log(outcome === 'healed' ? (open.kind === 'start' && open.action === 'flush' ? 'info' : 'notice') : 'warning', message);
  }
}
