/**
 * A guest without QEMU: an active-backup bond in a few lines, behind the probes' interface, on a
 * clock that moves only when a probe says time passes. Like the real test bed, the service answers
 * only through the router of the active slave (the bond drops what arrives on its backup).
 */
import { NoChange, type Probes, type WatchOptions } from '../../scripts/boot/probes.ts';
import type { SshResult } from '../../scripts/boot/ssh.ts';
import type { Outage } from '../../scripts/boot/testbed/prober.ts';
import type { BondState, FailoverEvent, Status } from '../../scripts/boot/status-api.ts';

interface FakeSlave {
  name: string;
  up: boolean;
  present: boolean;
}

export interface FakeGuestOptions {
  bond?: string;
  primary: string;
  backup: string;
  /** How long the nth switch (from 1) takes, as the timed probe measures it. */
  switchMs?: (n: number) => number;
  /** The status says the boot goes on for this many answers (0 unless told), then that it finished; 'not reported': an older image's. */
  bootBusyFor?: number | 'not reported';
  /** A buggy service: switches it does not count (by switch number, from 1). */
  uncounted?: number[];
  /** What the outside sees at the nth switch (from 1) the outage probe makes; a quick heal unless told. */
  outage?: (n: number) => Outage;
  /** The guest's host name and the bond's addresses, as the status service reports them. */
  host?: { hostname: string; addresses: string[] };
  /** What a command run over SSH gives. */
  shell?: (command: string) => SshResult;
  /** pibond-heal's record of the nth switch (from 1), as its event carries it; a 40 ms flush unless told. */
  heal?: (n: number) => Pick<FailoverEvent, 'heal_ms' | 'heal_action' | 'heal_outcome'>;
  /** pibond-uplink's decisions so far, after n switches: the guest tracks uplinks when given. */
  uplinkDecisions?: (switches: number) => number;
}

export class FakeGuest implements Probes {
  /** Every probe call, in order: `setLink eth0 off`, `status via eth0`, ... */
  readonly calls: string[] = [];
  clock = 0;
  failovers = 0;
  readonly log: FailoverEvent[] = [];
  active: string;
  private readonly slaves: FakeSlave[];
  private switches = 0;
  private statuses = 0;
  private readonly bondName: string;

  constructor(private readonly opts: FakeGuestOptions) {
    this.bondName = opts.bond ?? 'bond0';
    this.active = opts.primary;
    this.slaves = [opts.primary, opts.backup].map((name) => ({ name, up: true, present: true }));
  }

  async bond(through: string): Promise<BondState> {
    return this.answer(through);
  }

  async status(through: string): Promise<Status> {
    this.calls.push(`status via ${through}`);
    const bond = this.answer(through);
    const busy = this.opts.bootBusyFor ?? 0;
    const boot = busy === 'not reported' ? {} : { boot_finished: ++this.statuses > busy };
    if (!this.opts.host) return { uptime_seconds: 40 + this.clock / 1000, ...boot, bonds: [bond] };
    return { hostname: this.opts.host.hostname, uptime_seconds: 40 + this.clock / 1000, ...boot, bonds: [{ ...bond, addresses: this.opts.host.addresses }] };
  }

  async events(through: string): Promise<FailoverEvent[]> {
    this.calls.push(`events via ${through}`);
    this.answer(through);
    return [...this.log];
  }

  async ready(through: string): Promise<{ bond: BondState; seconds: number }> {
    this.calls.push(`ready via ${through}`);
    this.clock += 31_240;
    return { bond: this.answer(through), seconds: 31.24 };
  }

  async pause(ms: number): Promise<void> {
    this.clock += ms;
  }

  async reachableOnly(through: string, active: string): Promise<string> {
    this.calls.push(`reachableOnly via ${through}`);
    const bond = this.answer(through);
    if (bond.active_slave !== active) throw new Error(`reports ${bond.active_slave} active, not ${active}`);
    return `${through} answers`;
  }

  async setLink(slave: string, up: boolean): Promise<void> {
    this.calls.push(`setLink ${slave} ${up ? 'on' : 'off'}`);
    this.slave(slave).up = up;
    this.reselect(up ? 'link_up' : 'link_down');
  }

  async timedSwitch(slave: string, up: boolean, active: string): Promise<{ ms: number; bond: BondState }> {
    await this.setLink(slave, up);
    const ms = this.opts.switchMs?.(this.switches) ?? 120;
    this.clock += ms;
    const bond = this.answer(active);
    if (bond.active_slave !== active) throw new Error(`the service did not report ${active} active`);
    return { ms, bond };
  }

  async outage(slave: string, up: boolean, to: string, windowMs: number): Promise<Outage> {
    await this.setLink(slave, up);
    this.calls.push(`outage until ${to}`);
    const outage = { bondMs: 100 + this.switches, ...(this.opts.outage?.(this.switches) ?? { inboundMs: 180, outboundMs: 160 }) };
    const healed = [outage.inboundMs, outage.outboundMs].every((ms) => ms !== null);
    this.clock += healed ? Math.max(outage.inboundMs ?? 0, outage.outboundMs ?? 0) : windowMs;
    return outage;
  }

  /** The fake plays QEMU's user-mode networks, as SessionProbes there: no test bed to fail routers in. */
  outageAfter(): Promise<Outage> {
    return Promise.reject(new Error('this boot is not on the test bed of real routers'));
  }

  testbed(): never {
    throw new Error('this boot is not on the test bed of real routers');
  }

  async watch(through: string, done: (bond: BondState) => boolean, opts: WatchOptions = {}): Promise<BondState> {
    this.calls.push(`watch via ${through}`);
    const bond = this.answer(through);
    opts.each?.(bond);
    if (done(bond)) return bond;
    this.clock += opts.timeoutMs ?? 10_000;
    throw new NoChange(bond, opts.timeoutMs ?? 10_000);
  }

  async unplug(slave: string): Promise<void> {
    this.calls.push(`unplug ${slave}`);
    this.clock += 5200;
    this.slave(slave).present = false;
    this.reselect('link_down');
  }

  async replug(slave: string): Promise<void> {
    this.calls.push(`replug ${slave}`);
    this.clock += 950;
    Object.assign(this.slave(slave), { present: true, up: true });
    this.reselect('link_up');
  }

  async sshRun(through: string, command: string): Promise<SshResult> {
    this.calls.push(`ssh ${command} via ${through}`);
    this.answer(through);
    if (!this.opts.shell) throw new Error('this fake guest has no shell (FakeGuestOptions.shell)');
    return this.opts.shell(command);
  }

  async sshBanner(through: string): Promise<string> {
    this.calls.push(`ssh via ${through}`);
    this.answer(through);
    return 'SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3';
  }

  now(): number {
    return this.clock;
  }

  private slave(name: string): FakeSlave {
    const slave = this.slaves.find((s) => s.name === name);
    if (!slave) throw new Error(`no slave ${name}`);
    return slave;
  }

  /** primary_reselect always: the primary whenever its link is up, else any slave that is up. */
  private reselect(cause: string): void {
    const usable = (s: FakeSlave) => s.present && s.up;
    const primary = this.slave(this.opts.primary);
    const next = usable(primary) ? primary.name : (this.slaves.find(usable)?.name ?? this.active);
    if (next === this.active) return;
    // pibond-heal's measure, as the status service attaches it: a flush on the fake's one network.
    this.switches++;
    const heal = this.opts.heal?.(this.switches) ?? { heal_ms: 40, heal_action: 'flush', heal_outcome: 'healed' };
    this.log.push({ time: `t+${this.clock}`, bond: this.bondName, from: this.active, to: next, cause, ...heal });
    this.active = next;
    if (!this.opts.uncounted?.includes(this.switches)) this.failovers++;
  }

  /** The bond's state, if the service can be reached through `through`'s router. */
  private answer(through: string): BondState {
    if (through !== this.active) throw new Error(`no answer through ${through}'s router`);
    return {
      name: this.bondName,
      active_slave: this.active,
      primary: this.opts.primary,
      failovers: this.failovers,
      slaves: this.slaves
        .filter((s) => s.present)
        .map((s) => ({ name: s.name, mii_status: s.up ? 'up' : 'down', state: s.name === this.active ? 'active' : 'backup', speed_mbps: s.name === this.opts.primary ? 1000 : 100 })),
      ...(this.opts.uplinkDecisions && { uplinks: this.uplinks(this.opts.uplinkDecisions(this.switches)) }),
    };
  }

  private uplinks(decisions: number): NonNullable<BondState['uplinks']> {
    const uplink = (slave: string) => ({ slave, state: 'up' as const, cause: null, router: { address: null, mac: null, rtt_ms: null }, targets: [], rounds: { ok: 1, failed: 0 } });
    return {
      preferred: this.opts.primary,
      reason: 'primary_healthy',
      uplinks: [uplink(this.opts.primary), uplink(this.opts.backup)],
      decision_counts: decisions === 0 ? {} : { primary_uplink_down: Math.ceil(decisions / 2), primary_back: Math.floor(decisions / 2) },
      probe_bytes: {},
    };
  }
}
