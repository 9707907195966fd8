/**
 * The healing unit: the `ip monitor` lines it understands, what it does at a failover (with fake
 * effects and a fake clock), its units' confinement, and what render() writes for a definition.
 */
import { execFileSync } from 'node:child_process';
import { lstatSync, readFileSync, readlinkSync, writeFileSync } from 'node:fs';
import { chmod, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { bundlePath, configPath, exitHook, exitHookPath, preleaseDirectory, preleasePath, preleaseScript, preleaseUnitPath, render, renewPath, runtimeDirectory } from '../../overlays/15-bond-heal/render.ts';
import { checkConfig } from '../../overlays/15-bond-heal/src/config.ts';
import { confirmAfterMs, Healer, neighbourFlush, readdressCommands, renewAtOnce, reuseMinLeftMs, type HealConfig, type HealEffects, type HealRecord } from '../../overlays/15-bond-heal/src/healer.ts';
import { IpShell } from '../../overlays/15-bond-heal/src/ip-shell.ts';
import { LineQueue } from '../../overlays/15-bond-heal/src/line-queue.ts';
import { parseMonitorLine } from '../../overlays/15-bond-heal/src/monitor-lines.ts';
import { parseLeaseFile } from '../../overlays/15-bond-heal/src/prelease.ts';
import { definitionSchema, parseDefinition } from '../../scripts/lib/definition.ts';
import type { OverlayFile, OverlayLink } from '../../scripts/lib/overlay.ts';

/** The rendered file at `path` (not a link). */
const fileAt = (files: (OverlayFile | OverlayLink)[], path: string) => files.find((f): f is OverlayFile => f.path === path && 'content' in f);
const rootfs = join(import.meta.dirname, '../../overlays/15-bond-heal/rootfs');
const unitText = (name: string) => readFileSync(join(rootfs, 'usr/lib/systemd/system', name), 'utf8');
const directives = (name: string) => unitText(name).split('\n').filter((line) => /^[A-Za-z]+=/.test(line));

describe('parseMonitorLine', () => {
  it.each([
    ['3: bond0: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default event BONDING FAILOVER \\    link/ether 52:54:00:00:00:01 brd ff:ff:ff:ff:ff:ff', { kind: 'failover', bond: 'bond0' }],
    ['[LINK]3: bond0: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default event BONDING FAILOVER \\    link/ether 52:54:00:00:00:01', { kind: 'failover', bond: 'bond0' }],
    ['192.168.1.1 dev bond0 lladdr 02:00:00:00:02:01 REACHABLE', { kind: 'neighbour', address: '192.168.1.1', dev: 'bond0', lladdr: '02:00:00:00:02:01', state: 'REACHABLE', deleted: false }],
    ['[NEIGH]192.168.1.1 dev bond0 lladdr 02:00:00:00:02:01 STALE', { kind: 'neighbour', address: '192.168.1.1', dev: 'bond0', lladdr: '02:00:00:00:02:01', state: 'STALE', deleted: false }],
    ['Deleted 192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 STALE', { kind: 'neighbour', address: '192.168.1.1', dev: 'bond0', lladdr: '02:00:00:00:01:01', state: 'STALE', deleted: true }],
    ['192.168.1.1 dev bond0  INCOMPLETE', { kind: 'neighbour', address: '192.168.1.1', dev: 'bond0', lladdr: null, state: 'INCOMPLETE', deleted: false }],
    ['fe80::1 dev bond0 lladdr 02:00:00:00:02:01 router REACHABLE', { kind: 'neighbour', address: 'fe80::1', dev: 'bond0', lladdr: '02:00:00:00:02:01', state: 'REACHABLE', deleted: false }],
    ['default via 192.168.8.1 dev bond0 ', { kind: 'default-route', via: '192.168.8.1', dev: 'bond0', deleted: false }],
    ['Deleted default via 192.168.1.1 dev bond0 ', { kind: 'default-route', via: '192.168.1.1', dev: 'bond0', deleted: true }],
    ['3: bond0    inet 192.168.8.100/24 brd 192.168.8.255 scope global bond0\\       valid_lft 43152sec preferred_lft 43152sec', { kind: 'address', dev: 'bond0', address: '192.168.8.100', prefix: 24, broadcast: '192.168.8.255', validSeconds: 43152, deleted: false }],
    ['[ADDR]Deleted 3: bond0    inet 192.168.1.100/24 scope global dynamic bond0\\       valid_lft forever preferred_lft forever', { kind: 'address', dev: 'bond0', address: '192.168.1.100', prefix: 24, broadcast: null, validSeconds: null, deleted: true }],
  ])('%s', (line, event) => {
    expect(parseMonitorLine(line)).toEqual(event);
  });

  it.each([
    '2: eth0: <NO-CARRIER,BROADCAST,MULTICAST,SLAVE,UP> mtu 1500 qdisc pfifo_fast master bond0 state DOWN group default \\    link/ether 52:54:00:00:00:01',
    '3: bond0: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default event NOTIFY PEERS \\    link/ether 52:54:00:00:00:01',
    'local 192.168.1.100 dev bond0 table local proto kernel scope host src 192.168.1.100 ',
    'default via fe80::1 dev bond0 proto ra metric 1024 pref medium',
    '1: lo    inet 127.0.0.1/8 scope host lo\\       valid_lft forever preferred_lft forever',
    '3: bond0    inet6 2001:db8::10/64 scope global \\       valid_lft forever preferred_lft forever',
    '',
  ])('ignores %s', (line) => {
    expect(parseMonitorLine(line)).toBeNull();
  });
});

/** Fake effects: a clock the test moves, timers it fires, and a log of what the healer did. */
class FakeHost implements HealEffects {
  time = 1000;
  active: string | null = 'eth1';
  gateway: string | null = '192.168.1.1';
  readonly done: string[] = [];
  readonly heals: HealRecord[] = [];
  private timers: { at: number; run: () => void; cancelled: boolean }[] = [];

  now = () => this.time;
  wallClock = () => new Date(Date.UTC(2026, 10, 25, 14, 0, 0) + this.time);
  activeSlave = () => this.active;
  defaultGateway = async () => this.gateway;
  flushNeighbours = async (bond: string) => void this.done.push(`flush ${bond}`);
  /** The kernel's neighbour table, as `ip neigh show to` prints it. */
  table: string[] = [];
  neighbours = async (address: string) => this.table.filter((line) => line.startsWith(`${address} `));
  probe = (gateway: string) => void this.done.push(`probe ${gateway}`);
  requestRenew = (bond: string) => void this.done.push(`renew ${bond}`);
  /** The bond's addresses, as `ip -o -4 address show` prints them. */
  addressLines: string[] = [];
  addresses = async () => this.addressLines;
  /** Files the healer may read (a lease taken ahead). */
  files: Record<string, string> = {};
  readFile = (path: string) => this.files[path] ?? null;
  readdress = async (bond: string, change: Parameters<HealEffects['readdress']>[1]) => void this.done.push(`readdress ${readdressCommands(bond, change).join('; ')}`);
  record = (heal: HealRecord) => void this.heals.push(heal);
  setTimer = (ms: number, run: () => void) => {
    const timer = { at: this.time + ms, run, cancelled: false };
    this.timers.push(timer);
    return () => void (timer.cancelled = true);
  };
  log = () => {};

  /** Moves the clock, fires the timers due, and lets what they started finish. */
  async advance(ms: number): Promise<void> {
    this.time += ms;
    for (const timer of this.timers.filter((t) => !t.cancelled && t.at <= this.time)) {
      timer.cancelled = true;
      timer.run();
    }
    await new Promise((resolve) => setImmediate(resolve));
  }
}

const failover = '3: bond0: <BROADCAST,MULTICAST,MASTER,UP,LOWER_UP> mtu 1500 qdisc noqueue state UP group default event BONDING FAILOVER \\    link/ether 52:54:00:00:00:01';
const dhcp: HealConfig = { bond: 'bond0', dhcp: true, gateways: {}, answerWithinMs: 300, giveUpAfterMs: 30_000, reuseLeases: false };

describe('Healer', () => {
  it('same subnet: flushes, resolves the gateway afresh, and records the time until it answered', async () => {
    const host = new FakeHost();
    const healer = new Healer(dhcp, host);
    await healer.line(failover);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.1']);
    await host.advance(12);
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:02:01 REACHABLE');
    await host.advance(1000);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.1']);
    expect(host.heals).toEqual([{ bond: 'bond0', time: '2026-11-25T14:00:01.000Z', to: 'eth1', action: 'flush', outcome: 'healed', gateway: '192.168.1.1', heal_ms: 12 }]);
  });

  it('different subnets: no answer at the old gateway within answerWithinMs asks for a lease, and waits for the new route\'s gateway', async () => {
    const host = new FakeHost();
    const healer = new Healer(dhcp, host);
    await healer.line(failover);
    await host.advance(299);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.1']);
    await host.advance(1);
    expect(host.done.at(-1)).toBe('renew bond0');
    // The old router's entry failing, or a stray route elsewhere, heals nothing.
    await healer.line('192.168.1.1 dev bond0  FAILED');
    await healer.line('default via 10.0.0.1 dev eth9 ');
    expect(host.heals).toEqual([]);
    await host.advance(400);
    await healer.line('default via 192.168.8.1 dev bond0 proto dhcp src 192.168.8.100 metric 100 ');
    expect(host.done.at(-1)).toBe('probe 192.168.8.1');
    await host.advance(5);
    await healer.line('192.168.8.1 dev bond0 lladdr 02:00:00:00:02:01 REACHABLE');
    expect(host.heals).toEqual([expect.objectContaining({ action: 'renew', outcome: 'healed', gateway: '192.168.8.1', heal_ms: 705 })]);
  });

  it('asks the kernel before renewing: a gateway that answered while the monitor\'s line was still unread is healed, not renewed', async () => {
    const host = new FakeHost();
    const healer = new Healer(dhcp, host);
    await healer.line(failover);
    host.table = ['192.168.1.1 dev bond0 lladdr 02:00:00:00:02:01 REACHABLE', '192.168.1.1 dev eth9 lladdr 02:00:00:00:09:01 REACHABLE'];
    await host.advance(300);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.1']);
    expect(host.heals).toEqual([expect.objectContaining({ action: 'flush', outcome: 'healed', gateway: '192.168.1.1', heal_ms: 300 })]);
    // The line read late changes nothing.
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:02:01 REACHABLE');
    expect(host.heals).toHaveLength(1);
  });

  it('renews when the kernel\'s entry is unresolved or on another link', async () => {
    for (const table of [['192.168.1.1 dev bond0  INCOMPLETE'], ['192.168.1.1 dev bond0  FAILED'], ['192.168.1.1 dev eth9 lladdr 02:00:00:00:09:01 REACHABLE'], []]) {
      const host = new FakeHost();
      const healer = new Healer(dhcp, host);
      await healer.line(failover);
      host.table = table;
      await host.advance(300);
      expect(host.done.at(-1), table.join()).toBe('renew bond0');
    }
  });

  it('renews at once when the new slave\'s router is known to be another address, or there is no gateway', async () => {
    const host = new FakeHost();
    const healer = new Healer({ ...dhcp, gateways: { eth0: '192.168.1.1', eth1: '192.168.8.1' } }, host);
    await healer.line(failover);
    expect(host.done).toEqual(['flush bond0', 'renew bond0']);
    expect(renewAtOnce(dhcp, 'eth1', null)).toBe(true);
    expect(renewAtOnce({ ...dhcp, gateways: { eth1: '192.168.1.1' } }, 'eth1', '192.168.1.1')).toBe(false);
    expect(renewAtOnce({ ...dhcp, dhcp: false }, 'eth1', null)).toBe(false);
  });

  it('learns each slave\'s router: the next switch to a router on another subnet renews at once', async () => {
    const host = new FakeHost();
    const healer = new Healer(dhcp, host);
    await healer.line(failover);
    await host.advance(300);
    await healer.line('Deleted default via 192.168.1.1 dev bond0 ');
    await healer.line('default via 192.168.8.1 dev bond0 ');
    await healer.line('192.168.8.1 dev bond0 lladdr 02:00:00:00:02:01 REACHABLE');
    // Back to eth0: its router was never seen, so it is probed; it answers, and is learnt too.
    host.active = 'eth0';
    host.gateway = null;
    await healer.line(failover);
    expect(host.done.at(-1)).toBe('probe 192.168.8.1');
    await host.advance(300);
    await healer.line('default via 192.168.1.1 dev bond0 ');
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 REACHABLE');
    host.active = 'eth1';
    host.done.length = 0;
    await healer.line(failover);
    expect(host.done).toEqual(['flush bond0', 'renew bond0']);
    expect(host.heals.map((h) => [h.to, h.action, h.gateway])).toEqual([['eth1', 'renew', '192.168.8.1'], ['eth0', 'renew', '192.168.1.1']]);
  });

  it('follows the default route from the monitor\'s lines: no command asks for it at a switch', async () => {
    const host = new FakeHost();
    let asked = 0;
    host.defaultGateway = async () => (asked++, '192.168.1.1');
    const healer = new Healer(dhcp, host);
    await healer.line('default via 192.168.1.7 dev bond0 proto dhcp ');
    await healer.line(failover);
    expect(asked).toBe(0);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.7']);
  });

  it('at start with a lease: a gateway that does not answer on the active slave\'s side is renewed (the boot race: backup first)', async () => {
    // networkd enslaved eth1 first and got its lease from the backup's router; then eth0, the
    // primary, took over before pibond-heal listened. On the test bed the Pi stayed unreachable.
    const host = new FakeHost();
    host.active = 'eth0';
    host.gateway = '192.168.8.1';
    const healer = new Healer(dhcp, host);
    await healer.start();
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.8.1']);
    await host.advance(300);
    expect(host.done.at(-1)).toBe('renew bond0');
    await healer.line('default via 192.168.1.1 dev bond0 proto dhcp ');
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 REACHABLE');
    // Not a switch: nothing for the status service's failover events.
    expect(host.heals).toEqual([]);
  });

  it('at start: nothing without a lease (the stack is still asking) or with static addressing; a gateway that answers is left alone', async () => {
    const host = new FakeHost();
    host.gateway = null;
    await new Healer(dhcp, host).start();
    host.gateway = '192.168.1.1';
    await new Healer({ ...dhcp, dhcp: false }, host).start();
    expect(host.done).toEqual([]);
    const healer = new Healer(dhcp, host);
    await healer.start();
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 REACHABLE');
    await host.advance(30_000);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.1']);
    expect(host.heals).toEqual([]);
  });

  it('static addressing: never renews; a gateway that never answers is recorded as not healed', async () => {
    const host = new FakeHost();
    const healer = new Healer({ ...dhcp, dhcp: false }, host);
    await healer.line(failover);
    await host.advance(30_000);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.1']);
    expect(host.heals).toEqual([expect.objectContaining({ action: 'flush', outcome: 'not_healed', heal_ms: null })]);
  });

  it('a failover during a heal closes it as superseded; other bonds\' failovers and neighbours are not its business', async () => {
    const host = new FakeHost();
    const healer = new Healer(dhcp, host);
    await healer.line(failover.replace('bond0', 'bond1'));
    expect(host.done).toEqual([]);
    await healer.line(failover);
    host.active = 'eth0';
    await healer.line(failover);
    await healer.line('192.168.1.1 dev eth5 lladdr 02:00:00:00:09:09 REACHABLE');
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 REACHABLE');
    expect(host.heals.map((h) => [h.to, h.outcome])).toEqual([['eth1', 'superseded'], ['eth0', 'healed']]);
  });
});

describe('Healer, reusing leases (ifupdown)', () => {
  const reuse: HealConfig = { ...dhcp, reuseLeases: true };
  const address = (ip: string, seconds: number | 'forever', deleted = false) =>
    `${deleted ? 'Deleted ' : ''}3: bond0    inet ${ip}/24 brd ${ip.replace(/\.\d+$/, '.255')} scope global bond0\\       valid_lft ${seconds === 'forever' ? 'forever' : `${seconds}sec`} preferred_lft ${seconds === 'forever' ? 'forever' : `${seconds}sec`}`;
  const mainLan = { gateway: '192.168.1.1', mac: '02:00:00:00:01:01', address: '192.168.1.100' };
  const backupLan = { gateway: '192.168.8.1', mac: '02:00:00:00:02:01', address: '192.168.8.100' };

  /** Boot on eth0's router, then one switch each way the slow way (DHCP): both routers' leases are known after. */
  async function learnt(host: FakeHost, healer: Healer): Promise<void> {
    host.active = 'eth0';
    host.addressLines = [address(mainLan.address, 3600)];
    await healer.line(`default via ${mainLan.gateway} dev bond0 `);
    await healer.start();
    await healer.line(`${mainLan.gateway} dev bond0 lladdr ${mainLan.mac} REACHABLE`);
    for (const [to, from, lan] of [['eth1', mainLan, backupLan], ['eth0', backupLan, mainLan]] as const) {
      host.active = to;
      await healer.line(failover);
      await host.advance(300);
      await healer.line(address(from.address, 3000, true));
      await healer.line(`Deleted default via ${from.gateway} dev bond0 `);
      await healer.line(address(lan.address, 3600));
      await healer.line(`default via ${lan.gateway} dev bond0 `);
      await healer.line(`${lan.gateway} dev bond0 lladdr ${lan.mac} REACHABLE`);
    }
    // The second switch went back to the router seen at start: with reuseLeases its lease was put on
    // again, and DHCP confirms it once the bond has stayed.
    await host.advance(confirmAfterMs);
    host.done.length = 0;
    host.heals.length = 0;
  }

  it('the slow way first: a renewal takes the old router\'s address and default route off the bond itself', async () => {
    const host = new FakeHost();
    const healer = new Healer(reuse, host);
    await learnt(host, healer);
    // What learnt() did on its first switch, again with a fresh healer that knows no lease.
    const fresh = new Healer(reuse, host);
    host.addressLines = [address(mainLan.address, 3600)];
    await fresh.start();
    await fresh.line(`${mainLan.gateway} dev bond0 lladdr ${mainLan.mac} REACHABLE`);
    host.done.length = 0;
    host.active = 'eth1';
    await fresh.line(failover);
    await host.advance(300);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.1', 'readdress route del default via 192.168.1.1 dev bond0; address del 192.168.1.100/24 dev bond0', 'renew bond0']);
  });

  it('a switch back to a router seen before puts its lease on at once, heals when the gateway answers with the MAC it had, and has DHCP confirm it once the bond stays', async () => {
    const host = new FakeHost();
    const healer = new Healer(reuse, host);
    await learnt(host, healer);
    host.active = 'eth1';
    await host.advance(600_000);
    await healer.line(failover);
    // One batch: the flush, the old router's lease off, this one's on (learnt 603.3 s ago with 3600 s to run).
    expect(host.done).toEqual([
      'readdress neigh flush dev bond0 nud reachable nud stale nud delay nud probe; route del default via 192.168.1.1 dev bond0; address del 192.168.1.100/24 dev bond0; address replace 192.168.8.100/24 broadcast 192.168.8.255 valid_lft 2996 preferred_lft 2996 dev bond0; route replace default via 192.168.8.1 dev bond0',
      'probe 192.168.8.1',
    ]);
    await host.advance(40);
    await healer.line(`${backupLan.gateway} dev bond0 lladdr ${backupLan.mac} REACHABLE`);
    expect(host.heals).toEqual([expect.objectContaining({ to: 'eth1', action: 'reuse', outcome: 'healed', gateway: '192.168.8.1', heal_ms: 40 })]);
    await host.advance(confirmAfterMs - 1);
    expect(host.done.at(-1)).toBe('probe 192.168.8.1');
    await host.advance(1);
    expect(host.done.at(-1)).toBe('renew bond0');
    // And back: the main router's lease, its lifetime as the kernel last showed it.
    host.active = 'eth0';
    host.done.length = 0;
    await healer.line(failover);
    expect(host.done[0]).toBe('readdress neigh flush dev bond0 nud reachable nud stale nud delay nud probe; route del default via 192.168.8.1 dev bond0; address del 192.168.8.100/24 dev bond0; address replace 192.168.1.100/24 broadcast 192.168.1.255 valid_lft 2993 preferred_lft 2993 dev bond0; route replace default via 192.168.1.1 dev bond0');
    await healer.line('default via 192.168.1.1 dev bond0 ');
    await healer.line(`${mainLan.gateway} dev bond0 lladdr ${mainLan.mac} REACHABLE`);
    expect(host.heals.map((h) => [h.to, h.action, h.outcome])).toEqual([['eth1', 'reuse', 'healed'], ['eth0', 'reuse', 'healed']]);
  });

  it('a cable that flaps: no DHCP confirmation until the bond stays on one router', async () => {
    const host = new FakeHost();
    const healer = new Healer(reuse, host);
    await learnt(host, healer);
    for (const [to, lan] of [['eth1', backupLan], ['eth0', mainLan], ['eth1', backupLan]] as const) {
      host.active = to;
      await healer.line(failover);
      await healer.line(`default via ${lan.gateway} dev bond0 `);
      await healer.line(`${lan.gateway} dev bond0 lladdr ${lan.mac} REACHABLE`);
      await host.advance(confirmAfterMs - 1);
    }
    expect(host.done.filter((what) => what.startsWith('renew'))).toEqual([]);
    await host.advance(1);
    expect(host.done.filter((what) => what.startsWith('renew'))).toEqual(['renew bond0']);
    expect(host.heals.map((h) => [h.to, h.action])).toEqual([['eth1', 'reuse'], ['eth0', 'reuse'], ['eth1', 'reuse']]);
  });

  it('another router at the remembered gateway (another MAC), or none answering, takes the lease off again and waits for DHCP', async () => {
    for (const answer of ['02:00:00:00:09:09', null]) {
      const host = new FakeHost();
      const healer = new Healer(reuse, host);
      await learnt(host, healer);
      host.active = 'eth1';
      await healer.line(failover);
      await healer.line(address(backupLan.address, 2999));
      await healer.line(`default via ${backupLan.gateway} dev bond0 `);
      host.done.length = 0;
      if (answer === null) await host.advance(300);
      else await healer.line(`${backupLan.gateway} dev bond0 lladdr ${answer} REACHABLE`);
      expect(host.done).toEqual(['readdress route del default via 192.168.8.1 dev bond0; address del 192.168.8.100/24 dev bond0', 'renew bond0']);
      expect(host.heals).toEqual([]);
      // The new lease's route names the gateway to wait for.
      await healer.line(address('10.8.0.20', 600));
      await healer.line('default via 10.8.0.1 dev bond0 ');
      await healer.line('10.8.0.1 dev bond0 lladdr 02:00:00:00:09:09 REACHABLE');
      expect(host.heals).toEqual([expect.objectContaining({ to: 'eth1', action: 'renew', outcome: 'healed', gateway: '10.8.0.1' })]);
    }
  });

  it('a lease with less than a minute left is not put on again; nor anything where the stack owns the addresses', async () => {
    const host = new FakeHost();
    const healer = new Healer(reuse, host);
    await learnt(host, healer);
    await host.advance(3600_000 - reuseMinLeftMs + 1);
    host.active = 'eth1';
    await healer.line(failover);
    expect(host.done).toEqual(['flush bond0', 'readdress route del default via 192.168.1.1 dev bond0; address del 192.168.1.100/24 dev bond0', 'renew bond0']);

    const stackOwned = new FakeHost();
    const other = new Healer(dhcp, stackOwned);
    await learnt(stackOwned, other);
    stackOwned.active = 'eth1';
    await other.line(failover);
    expect(stackOwned.done).toEqual(['flush bond0', 'renew bond0']);
  });
});

/** dhclient's lease file as pibond-dhcp-prelease leaves it (taken from a real run against dnsmasq). */
const preleaseFile = `default-duid "\\000\\001\\000\\0012\\2462oRT\\000\\0224V";
lease {
  interface "eth1";
  fixed-address 192.168.8.100;
  option subnet-mask 255.255.255.0;
  option routers 192.168.8.1;
  option dhcp-lease-time 43200;
  option dhcp-message-type 5;
  option dhcp-server-identifier 192.168.8.1;
  option broadcast-address 192.168.8.255;
  renew 6 2026/11/25 20:00:01;
  rebind 6 2026/11/26 00:34:23;
  expire 6 2026/11/26 02:00:01;
}
`;

describe('parseLeaseFile', () => {
  it('reads the newest complete lease: address, prefix, broadcast, the first router, expiry (UTC)', () => {
    expect(parseLeaseFile(preleaseFile)).toEqual({ address: '192.168.8.100', prefix: 24, broadcast: '192.168.8.255', gateway: '192.168.8.1', expires: Date.UTC(2026, 10, 26, 2, 0, 1) });
    const older = preleaseFile.replace('default-duid', 'lease {\n  fixed-address 10.0.0.9;\n  option subnet-mask 255.0.0.0;\n  option routers 10.0.0.1 10.0.0.2;\n  expire 1 2026/11/23 10:00:00;\n}\ndefault-duid');
    expect(parseLeaseFile(older)?.address).toBe('192.168.8.100');
    expect(parseLeaseFile(preleaseFile.replace(/lease \{[^}]*\}/, older.slice(older.indexOf('lease {'), older.indexOf('}') + 1)))).toMatchObject({ address: '10.0.0.9', prefix: 8, broadcast: null, gateway: '10.0.0.1' });
  });

  it.each([
    ['no lease (the router never answered)', 'default-duid "\\000\\001";\n'],
    ['no routers', preleaseFile.replace('  option routers 192.168.8.1;\n', '')],
    ['a mask that is not one', preleaseFile.replace('255.255.255.0', '255.0.255.0')],
    ['half a lease (written while read)', preleaseFile.slice(0, preleaseFile.indexOf('expire'))],
  ])('none: %s', (_, text) => {
    expect(parseLeaseFile(text)).toBeNull();
  });
});

describe('Healer, a lease taken ahead through the backup slave (ifupdown)', () => {
  const config: HealConfig = { ...dhcp, reuseLeases: true, preleaseDirectory: '/run/pibond-dhcp-prelease' };
  /** The bond switches to `slave`, and `gateway` answers from `mac`. */
  async function switchTo(host: FakeHost, healer: Healer, slave: string, gateway: string, mac: string): Promise<void> {
    host.active = slave;
    await healer.line(failover);
    await healer.line(`${gateway} dev bond0 lladdr ${mac} REACHABLE`);
  }

  it('the first switch to the backup router puts its lease on at once; any MAC answering heals it, and is learnt', async () => {
    const host = new FakeHost();
    host.active = 'eth0';
    host.files['/run/pibond-dhcp-prelease/eth1.leases'] = preleaseFile;
    // The fake wall clock is 2026-11-25T14:00:01 at time 1000: the lease has 12 h left.
    const healer = new Healer(config, host);
    host.addressLines = ['3: bond0    inet 192.168.1.100/24 brd 192.168.1.255 scope global bond0\\       valid_lft 43000sec preferred_lft 43000sec'];
    await healer.line('default via 192.168.1.1 dev bond0 ');
    await healer.start();
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 REACHABLE');
    host.done.length = 0;
    host.active = 'eth1';
    await healer.line(failover);
    expect(host.done).toEqual([
      'readdress neigh flush dev bond0 nud reachable nud stale nud delay nud probe; route del default via 192.168.1.1 dev bond0; address del 192.168.1.100/24 dev bond0; address replace 192.168.8.100/24 broadcast 192.168.8.255 valid_lft 43200 preferred_lft 43200 dev bond0; route replace default via 192.168.8.1 dev bond0',
      'probe 192.168.8.1',
    ]);
    await healer.line('192.168.8.1 dev bond0 lladdr 02:00:00:00:02:01 REACHABLE');
    expect(host.heals).toEqual([expect.objectContaining({ to: 'eth1', action: 'reuse', outcome: 'healed', gateway: '192.168.8.1' })]);
    // Learnt with the MAC that answered: the next time another MAC is another router.
    await switchTo(host, healer, 'eth0', '192.168.1.1', '02:00:00:00:01:01');
    host.done.length = 0;
    await switchTo(host, healer, 'eth1', '192.168.8.1', '02:00:00:00:09:09');
    expect(host.done.at(-2)).toBe('readdress route del default via 192.168.8.1 dev bond0; address del 192.168.8.100/24 dev bond0');
  });

  it('a lease the stack got after the check at start is learnt when its gateway answers: the first switch back to it reuses it', async () => {
    const host = new FakeHost();
    host.active = 'eth0';
    host.gateway = null;
    host.files['/run/pibond-dhcp-prelease/eth1.leases'] = preleaseFile;
    const healer = new Healer(config, host);
    await healer.start();
    // ifup's dhclient binds after pibond-heal started.
    await healer.line('3: bond0    inet 192.168.1.100/24 brd 192.168.1.255 scope global bond0\\       valid_lft 43000sec preferred_lft 43000sec');
    await healer.line('default via 192.168.1.1 dev bond0 ');
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 REACHABLE');
    await switchTo(host, healer, 'eth1', '192.168.8.1', '02:00:00:00:02:01');
    host.active = 'eth0';
    host.done.length = 0;
    await healer.line(failover);
    expect(host.done[0]).toMatch(/^readdress neigh flush .* address replace 192\.168\.1\.100\/24 broadcast 192\.168\.1\.255 valid_lft 4\d+ preferred_lft 4\d+ dev bond0; route replace default via 192\.168\.1\.1 dev bond0$/);
    await healer.line('192.168.1.1 dev bond0 lladdr 02:00:00:00:01:01 REACHABLE');
    expect(host.heals.map((h) => [h.to, h.action])).toEqual([['eth1', 'reuse'], ['eth0', 'reuse']]);
  });

  it('no lease taken (no file, or the router gave none): the first switch waits for the old gateway, then DHCP, as before', async () => {
    const host = new FakeHost();
    host.files['/run/pibond-dhcp-prelease/eth1.leases'] = 'default-duid "\\000\\001";\n';
    const healer = new Healer(config, host);
    await healer.line(failover);
    expect(host.done).toEqual(['flush bond0', 'probe 192.168.1.1']);
  });
});

describe('LineQueue', () => {
  it('heals only the newest of the failovers waiting together: one flush after the last switch, not one per switch', async () => {
    const host = new FakeHost();
    let release = () => {};
    const firstFlushHangs = new Promise<void>((resolve) => (release = resolve));
    host.flushNeighbours = async (bond) => {
      host.done.push(`flush ${bond}`);
      if (host.done.length === 1) await firstFlushHangs;
    };
    const errors: unknown[] = [];
    const queue = new LineQueue(new Healer(dhcp, host), 'bond0', (err) => errors.push(err));
    queue.push(failover);
    await new Promise((resolve) => setImmediate(resolve));
    // Three more switches while the first one's flush runs; another bond's failover is not the bond's.
    host.active = 'eth0';
    queue.push(failover);
    queue.push(failover.replace('bond0', 'bond1'));
    host.active = 'eth1';
    queue.push(failover);
    queue.push('192.168.1.1 dev bond0 lladdr 02:00:00:00:02:01 REACHABLE');
    release();
    await queue.idle();
    expect(host.done.filter((what) => what.startsWith('flush'))).toEqual(['flush bond0', 'flush bond0']);
    expect(host.heals.map((h) => [h.to, h.outcome])).toEqual([['eth1', 'superseded'], ['eth1', 'healed']]);
    expect(errors).toEqual([]);
  });
});

/** A scratch network namespace (root only): the kernel's own neighbour table, as on the Pi. */
describe.skipIf(process.getuid?.() !== 0)('neighbourFlush on a real kernel', () => {
  const ns = `pibond-flush-${process.pid}`;
  const ip = (...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
  beforeEach(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    ip('link', 'add', 'bond0', 'type', 'veth', 'peer', 'name', 'peer0');
    ip('link', 'set', 'bond0', 'up');
    ip('addr', 'add', '192.0.2.10/24', 'dev', 'bond0');
    ip('-6', 'addr', 'add', '2001:db8::10/64', 'dev', 'bond0', 'nodad');
  });
  afterEach(() => execFileSync('ip', ['netns', 'del', ns]));

  it('removes every entry holding a MAC, both families in one line, keeps those still resolving (their waiting packets) and the permanent ones', () => {
    ip('neigh', 'add', '192.0.2.1', 'dev', 'bond0', 'lladdr', '02:00:00:00:01:01', 'nud', 'reachable');
    ip('neigh', 'add', '192.0.2.2', 'dev', 'bond0', 'lladdr', '02:00:00:00:01:02', 'nud', 'stale');
    ip('neigh', 'add', '192.0.2.3', 'dev', 'bond0', 'lladdr', '02:00:00:00:01:03', 'nud', 'delay');
    ip('neigh', 'add', '192.0.2.4', 'dev', 'bond0', 'nud', 'incomplete');
    ip('neigh', 'add', '192.0.2.5', 'dev', 'bond0', 'lladdr', '02:00:00:00:01:05', 'nud', 'permanent');
    ip('-6', 'neigh', 'add', '2001:db8::1', 'dev', 'bond0', 'lladdr', '02:00:00:00:01:01', 'nud', 'reachable');
    ip('-6', 'neigh', 'add', '2001:db8::4', 'dev', 'bond0', 'nud', 'incomplete');
    execFileSync('ip', ['-n', ns, '-force', '-batch', '-'], { input: `${neighbourFlush('bond0')}\n` });
    const left = ip('neigh', 'show', 'dev', 'bond0').split('\n').map((line) => line.trim()).filter(Boolean).sort();
    expect(left).toEqual(['192.0.2.4 INCOMPLETE', '192.0.2.5 lladdr 02:00:00:00:01:05 PERMANENT', '2001:db8::4 INCOMPLETE']);
  });

  it('IpShell: one ip for every batch, each settling once the kernel has done it; a failed command is told, the rest still run', async () => {
    const complaints: string[] = [];
    const shell = new IpShell((line) => complaints.push(line), ['-n', ns]);
    try {
      ip('neigh', 'add', '192.0.2.1', 'dev', 'bond0', 'lladdr', '02:00:00:00:01:01', 'nud', 'reachable');
      await shell.run([neighbourFlush('bond0')]);
      expect(ip('neigh', 'show', 'dev', 'bond0').trim()).toBe('');
      await shell.run(['route del default via 192.0.2.99 dev bond0', 'address add 192.0.2.11/24 dev bond0']);
      expect(ip('-o', '-4', 'addr', 'show', 'dev', 'bond0')).toContain('192.0.2.11/24');
      // The complaint comes on stderr, another pipe: it may be read after the batch's end on stdout.
      await expect.poll(() => complaints.join('\n'), { timeout: 2000 }).toMatch(/No such process|Cannot find/);
      expect(shell.ip.exitCode).toBeNull();
    } finally {
      shell.ip.kill();
    }
  });

  it('readdressCommands: one batch takes the old router\'s address and default route off and puts the remembered lease on', () => {
    ip('link', 'set', 'peer0', 'up');
    ip('route', 'add', 'default', 'via', '192.0.2.1', 'dev', 'bond0');
    ip('neigh', 'add', '192.0.2.1', 'dev', 'bond0', 'lladdr', '02:00:00:00:01:01', 'nud', 'reachable');
    const old = { address: '192.0.2.10', prefix: 24, broadcast: null, expiresAt: Number.POSITIVE_INFINITY };
    const lease = { address: '198.51.100.20', prefix: 24, broadcast: '198.51.100.255', expiresAt: 0, gateway: '198.51.100.1', mac: '02:00:00:00:02:01', validSeconds: 2999 };
    const commands = readdressCommands('bond0', { flush: true, drop: [old], dropGateway: '192.0.2.1', put: lease });
    execFileSync('ip', ['-n', ns, '-force', '-batch', '-'], { input: `${commands.join('\n')}\n` });
    expect(ip('-o', '-4', 'addr', 'show', 'dev', 'bond0')).toMatch(/^\d+: bond0\s+inet 198\.51\.100\.20\/24 brd 198\.51\.100\.255 scope global dynamic bond0\\\s+valid_lft 299\dsec/);
    expect(ip('-4', 'route', 'show', 'default').trim()).toBe('default via 198.51.100.1 dev bond0');
    expect(ip('-4', 'neigh', 'show', 'dev', 'bond0').trim()).toBe('');
    // The IPv6 address is not the healer's business.
    expect(ip('-6', 'addr', 'show', 'dev', 'bond0', 'scope', 'global')).toContain('2001:db8::10/64');
  });
});

/** ifupdown's exit hook, sourced as dhclient-script would, in a scratch network namespace (root only). */
describe.skipIf(process.getuid?.() !== 0)('the dhclient exit hook on a real kernel', () => {
  const ns = `pibond-hook-${process.pid}`;
  const ip = (...args: string[]) => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
  const hook = exitHook(definitionSchema.parse({ name: 'x', base: {} }));
  const lease = { new_ip_address: '192.168.8.100', new_subnet_mask: '255.255.255.0', new_broadcast_address: '192.168.8.255', new_dhcp_lease_time: '43200', new_routers: '192.168.8.1' };
  const source = (env: Record<string, string>) => execFileSync('ip', ['netns', 'exec', ns, 'sh', '-c', `${hook}\necho sourced`], { env: { PATH: process.env.PATH ?? '', ...env }, encoding: 'utf8' });
  beforeEach(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    ip('link', 'add', 'bond0', 'type', 'veth', 'peer', 'name', 'peer0');
    ip('link', 'set', 'bond0', 'up');
    ip('link', 'set', 'peer0', 'up');
    // What pibond-heal put on ahead of the lease (its lifetime what was left), and what another router had.
    ip('addr', 'add', '192.168.8.100/24', 'broadcast', '192.168.8.255', 'valid_lft', '120', 'preferred_lft', '120', 'dev', 'bond0');
    ip('addr', 'add', '192.168.1.100/24', 'dev', 'bond0');
    ip('route', 'add', 'default', 'via', '192.168.8.1', 'dev', 'bond0');
    ip('route', 'add', 'default', 'via', '192.168.1.1', 'dev', 'bond0', 'metric', '5');
  });
  afterEach(() => execFileSync('ip', ['netns', 'del', ns]));

  const addresses = () => ip('-o', '-4', 'addr', 'show', 'dev', 'bond0').split('\n').filter(Boolean).map((line) => /inet (\S+).*valid_lft (\S+)/.exec(line)?.slice(1).join(' '));
  const defaults = () => ip('-4', 'route', 'show', 'default').split('\n').filter(Boolean).map((line) => line.trim());

  it('BOUND: the lease\'s own lifetime on the address put on ahead of it; another router\'s address and default route go', () => {
    expect(source({ ...lease, interface: 'bond0', reason: 'BOUND' })).toBe('sourced\n');
    const [only, ...others] = addresses();
    expect(others).toEqual([]);
    expect(only).toMatch(/^192\.168\.8\.100\/24 43(200|19\d)sec$/);
    expect(defaults()).toEqual(['default via 192.168.8.1 dev bond0']);
  });

  it('leaves other reasons and other interfaces alone', () => {
    source({ ...lease, interface: 'bond0', reason: 'RENEW' });
    source({ ...lease, interface: 'eth9', reason: 'BOUND' });
    expect(addresses()).toEqual([expect.stringMatching(/^192\.168\.8\.100\/24 1[12]\dsec$/), '192.168.1.100/24 forever']);
    expect(defaults()).toHaveLength(2);
  });
});

describe('pibond-heal.service', () => {
  const unit = directives('pibond-heal.service');

  it('runs the rendered bundle with the rendered configuration', () => {
    expect(unit).toContain(`ExecStart=/usr/lib/pibond/node /${bundlePath} --config /${configPath}`);
  });

  it.each([
    'DynamicUser=yes',
    'CapabilityBoundingSet=CAP_NET_ADMIN',
    'AmbientCapabilities=CAP_NET_ADMIN',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'PrivateDevices=yes',
    'RuntimeDirectory=pibond-heal',
    'RestrictAddressFamilies=AF_NETLINK AF_INET AF_UNIX',
    'SystemCallFilter=@system-service',
    'Restart=always',
    'WantedBy=multi-user.target',
  ])('has %s', (directive) => {
    expect(unit).toContain(directive);
  });

  it('holds no capability but CAP_NET_ADMIN and writes nowhere but its runtime directory', () => {
    expect(unit.filter((d) => /Capabilit/.test(d)).join(' ').match(/CAP_\w+/g)).toEqual(['CAP_NET_ADMIN', 'CAP_NET_ADMIN']);
    expect(unit.filter((d) => /^(ReadWritePaths|User|Group)=/.test(d))).toEqual([]);
    expect(runtimeDirectory).toBe('/run/pibond-heal');
  });

  it('is enabled, and so is the .path unit that starts the lease renewal it asks for', () => {
    for (const [wants, unitName] of [['multi-user.target.wants', 'pibond-heal.service'], ['paths.target.wants', 'pibond-dhcp-renew.path']] as const) {
      const link = join(rootfs, 'etc/systemd/system', wants, unitName);
      expect(lstatSync(link).isSymbolicLink()).toBe(true);
      expect(readlinkSync(link)).toBe(`/usr/lib/systemd/system/${unitName}`);
    }
  });

  it('the .path unit watches the file the healer writes, and the renewal never hits a start limit or kills the new DHCP client', () => {
    expect(directives('pibond-dhcp-renew.path')).toEqual(expect.arrayContaining([`PathModified=${runtimeDirectory}/dhcp-renew`, 'Unit=pibond-dhcp-renew.service']));
    expect(readFileSync(join(import.meta.dirname, '../../overlays/15-bond-heal/src/main.ts'), 'utf8')).toContain("join(file.runtime_directory, 'dhcp-renew')");
    expect(directives('pibond-dhcp-renew.service')).toEqual(
      expect.arrayContaining(['Type=oneshot', `ExecStart=/${renewPath}`, 'EnvironmentFile=/etc/default/pibond-heal', 'KillMode=process', 'StartLimitIntervalSec=0']),
    );
  });
});

describe('render()', () => {
  it('writes the configuration from the definition: the bond, DHCP or not, the slaves\' routers', async () => {
    const def = parseDefinition('name: x\nbond:\n  slaves: [{name: eth0, gateway: 192.168.1.1}, {name: eth1, gateway: 192.168.8.1}]\n', 'x.yaml');
    const files = await render(def);
    const config = checkConfig(JSON.parse(String(fileAt(files, configPath)?.content)), configPath);
    expect(config).toEqual({ bond: 'bond0', dhcp: true, gateways: { eth0: '192.168.1.1', eth1: '192.168.8.1' }, answerWithinMs: 300, giveUpAfterMs: 30_000, reuseLeases: true, preleaseDirectory: '/run/pibond-dhcp-prelease', runtime_directory: '/run/pibond-heal' });
    expect(fileAt(files, 'etc/default/pibond-heal')?.content).toContain('\nBOND=bond0\n');
  });

  it('renders the ifupdown row: a shell script that restarts ifup\'s dhclient from scratch with ifup\'s own files', async () => {
    const script = fileAt(await render(definitionSchema.parse({ name: 'x', base: {} })), renewPath);
    expect(script?.mode).toBe(0o755);
    const text = String(script?.content);
    expect(text).toContain('-pf "$pidfile" -lf "$leases"');
    expect(text).toContain('pidfile=/run/dhclient.$bond.pid');
    expect(text).toContain('leases=/var/lib/dhcp/dhclient.$bond.leases');
    // The old lease goes, the DUID stays: a new DUID is a stranger to the router holding the Pi's address.
    expect(text).toContain(`grep '^default-duid ' "$leases" > "$leases.new"`);
    expect(text).not.toContain('rm -f "$leases"');
    // The addresses are pibond-heal's to change at a switch (reuseLeases), not the script's.
    expect(text).not.toContain('flush');
    execFileSync('sh', ['-n', '-c', text]);
  });

  it('gives ifupdown\'s dhclient the exit hook that lets a lease replace a reused one; the other stacks neither hook nor reuse', async () => {
    for (const stack of ['ifupdown', 'networkd', 'networkmanager', 'netplan']) {
      const files = await render(parseDefinition(`name: x\nnetwork: {stack: ${stack}}\n`, 'x.yaml'));
      const config = checkConfig(JSON.parse(String(fileAt(files, configPath)?.content)), configPath);
      const ifupdown = stack === 'ifupdown';
      expect([stack, config.reuseLeases, files.some((f) => f.path === exitHookPath), files.some((f) => f.path === preleasePath)]).toEqual([stack, ifupdown, ifupdown, ifupdown]);
      expect(config.preleaseDirectory).toBe(ifupdown ? preleaseDirectory : undefined);
    }
  });
});

describe('the other stacks\' rows, run against fake tools', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pibond-renew-'));
    await mkdir(join(dir, 'bin'));
    for (const tool of ['networkctl', 'nmcli']) {
      await writeFile(join(dir, 'bin', tool), `#!/bin/sh\nfor a in "$@"; do printf '%s|' "$a"; done >> "${dir}/calls.log"; echo >> "${dir}/calls.log"\n`);
      await chmod(join(dir, 'bin', tool), 0o755);
    }
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  async function runRow(stack: string, extra = '', runs = 1): Promise<string[]> {
    const def = parseDefinition(`name: x\n${extra}network: {stack: ${stack}}\n`, 'x.yaml');
    const script = fileAt(await render(def), renewPath);
    expect(script?.mode).toBe(0o755);
    await writeFile(join(dir, 'renew'), String(script?.content));
    const env = { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, BOND: 'bond0', SYSFS_ROOT: join(dir, 'sys'), NM_STATE_DIR: join(dir, 'nm'), RUNTIME_DIRECTORY: dir, REQUEST: join(dir, 'request') };
    for (let run = 0; run < runs; run++) execFileSync('sh', [join(dir, 'renew')], { env, stdio: 'pipe' });
    return (await readFile(join(dir, 'calls.log'), 'utf8')).split('\n').filter(Boolean);
  }

  it.each(['networkd', 'netplan'])('%s: networkd reconfigures the bond alone (a new DHCP client, which starts with a DISCOVER)', async (stack) => {
    expect(await runRow(stack)).toEqual(['reconfigure|bond0|']);
  });

  it('networkmanager: the applied DHCP timeout changed, unlike the last renewal\'s, the old lease file gone, the kernel\'s current primary kept', async () => {
    await mkdir(join(dir, 'sys/class/net/bond0/bonding'), { recursive: true });
    // pibond-uplink made eth1 the primary: NetworkManager's rewrite of the bond options must not undo that.
    await writeFile(join(dir, 'sys/class/net/bond0/bonding/primary'), 'eth1\n');
    await mkdir(join(dir, 'nm'));
    await writeFile(join(dir, 'nm/internal-0b5c-bond0.lease'), 'ADDRESS=192.168.1.23\n');
    await writeFile(join(dir, 'nm/internal-0b5c-eth9.lease'), 'ADDRESS=10.0.0.2\n');
    // IPv4 off and on instead failed the whole bond on the test bed (no IP configuration left: NM took the bond down).
    const options = 'mode=active-backup,primary=eth1,primary_reselect=always,miimon=100,downdelay=200';
    expect(await runRow('networkmanager', 'bond:\n  downdelay: 200\n', 3)).toEqual([
      `--wait|5|device|modify|bond0|ipv4.dhcp-timeout|46|bond.options|${options}|`,
      `--wait|5|device|modify|bond0|ipv4.dhcp-timeout|44|bond.options|${options}|`,
      `--wait|5|device|modify|bond0|ipv4.dhcp-timeout|46|bond.options|${options}|`,
    ]);
    expect((await readdir(join(dir, 'nm'))).sort()).toEqual(['internal-0b5c-eth9.lease']);
  });

  it('serves a request made while it ran (systemd does not start it again for one): the row runs again, once', async () => {
    // The next switch's request arrives while nmcli still works: the fake writes one on its first call.
    await writeFile(join(dir, 'request'), 'bond0 1\n');
    await writeFile(join(dir, 'bin', 'nmcli'), `#!/bin/sh\necho call >> "${dir}/calls.log"\n[ -e "${dir}/again" ] || { touch "${dir}/again"; echo 'bond0 2' > "${dir}/request"; }\n`);
    expect(await runRow('networkmanager')).toEqual(['call', 'call']);
  });

  it('networkmanager: the definition\'s primary when the kernel names none', async () => {
    expect((await runRow('networkmanager'))[0]).toContain('primary=eth0,');
  });
});

describe('the prelease script (ifupdown), run against a fake sysfs and dhclient', () => {
  let dir: string;
  const run = () =>
    execFileSync('sh', [join(dir, 'prelease')], {
      env: { PATH: `${join(dir, 'bin')}:${process.env.PATH ?? ''}`, BOND: 'bond0', RUNTIME_DIRECTORY: join(dir, 'run'), SYSFS_ROOT: join(dir, 'sys'), DHCP_STATE: join(dir, 'state'), HEAL_CONFIG: join(dir, 'heal.json') },
      encoding: 'utf8',
    });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pibond-prelease-'));
    for (const sub of ['bin', 'run', 'state', 'sys/class/net/bond0/bonding', 'sys/class/net/eth0', 'sys/class/net/eth1', 'sys/class/net/eth2']) await mkdir(join(dir, sub), { recursive: true });
    const net = join(dir, 'sys/class/net');
    await writeFile(join(net, 'bond0/address'), '52:54:00:00:00:01\n');
    await writeFile(join(net, 'bond0/bonding/active_slave'), 'eth0\n');
    await writeFile(join(net, 'bond0/bonding/slaves'), 'eth0 eth1 eth2\n');
    await writeFile(join(net, 'eth0/address'), '52:54:00:00:00:01\n');
    await writeFile(join(net, 'eth1/address'), '52:54:00:00:00:01\n');
    await writeFile(join(net, 'eth2/address'), '52:54:00:00:00:03\n');
    await writeFile(join(dir, 'state/dhclient.bond0.leases'), 'default-duid "\\000\\001\\000\\001";\nlease {\n  interface "bond0";\n}\n');
    await writeFile(join(dir, 'heal.json'), '{\n  "dhcp": true\n}\n');
    await writeFile(join(dir, 'prelease'), preleaseScript());
    // dhclient: records its arguments, appends a lease to its -lf file, and stays until stopped.
    await writeFile(
      join(dir, 'bin/dhclient'),
      `#!/bin/sh\necho "$*" >> "${dir}/calls.log"\necho $$ > "${dir}/dhclient.pid"\nwhile [ $# -gt 1 ]; do [ "$1" = -lf ] && lf=$2; shift; done\nprintf 'lease {\\n  interface "%s";\\n  fixed-address 192.168.8.100;\\n}\\n' "$1" >> "$lf"\ntrap 'exit 0' TERM\nwhile :; do sleep 0.05; done\n`,
    );
    await chmod(join(dir, 'bin/dhclient'), 0o755);
  });
  afterEach(() => rm(dir, { recursive: true, force: true }));

  it('asks through each backup slave that carries the bond\'s MAC, with the bond\'s DUID and a script that configures nothing; stops dhclient once the lease is written', () => {
    const said = run();
    expect(said).toContain('eth2: its MAC is not the bond\'s, no lease asked');
    expect(said).toContain('eth1: fixed-address192.168.8.100');
    const calls = readFileSync(join(dir, 'calls.log'), 'utf8').trim().split('\n');
    expect(calls).toEqual([`-4 -d -1 -i -I -sf /bin/true -pf ${dir}/run/eth1.pid -lf ${dir}/run/eth1.leases -df ${dir}/state/dhclient6.bond0.leases eth1`]);
    const leases = readFileSync(join(dir, 'run/eth1.leases'), 'utf8');
    expect(leases.startsWith('default-duid "\\000\\001\\000\\001";\nlease {\n  interface "eth1";')).toBe(true);
    expect(lstatSync(join(dir, 'run/eth1.leases')).mode & 0o777).toBe(0o644);
    // Stopped: no signal reaches it any more.
    expect(() => process.kill(Number(readFileSync(join(dir, 'dhclient.pid'), 'utf8')), 0)).toThrow();
  });

  it('its unit: enabled for ifupdown, started after the network is up without holding the boot, confined to what dhclient needs', async () => {
    const files = await render(parseDefinition('name: x\n', 'x.yaml'));
    const unit = String(fileAt(files, preleaseUnitPath)?.content).split('\n');
    expect(unit).toEqual(expect.arrayContaining(['After=network-online.target networking.service', 'Type=simple', `ExecStart=/${preleasePath}`, 'CapabilityBoundingSet=CAP_NET_RAW CAP_NET_BIND_SERVICE CAP_NET_ADMIN', 'ProtectSystem=strict', 'RuntimeDirectoryMode=0755']));
    expect(files).toContainEqual({ path: 'etc/systemd/system/multi-user.target.wants/pibond-dhcp-prelease.service', target: `/${preleaseUnitPath}` });
  });

  it('takes nothing with static addressing', () => {
    writeFileSync(join(dir, 'heal.json'), '{\n  "dhcp": false\n}\n');
    expect(run()).toContain('static addressing: no lease to take');
    expect(() => readFileSync(join(dir, 'calls.log'))).toThrow();
  });
});

describe('static addressing and routers on other subnets', () => {
  const staticDef = (slaves: string) => `name: x\nbond:\n  slaves: ${slaves}\nnetwork:\n  addressing: {method: static, address: 192.168.1.2/24, gateway: 192.168.1.1}\n`;

  it('refuses a slave whose router is on another subnet, saying why and what to set', () => {
    expect(() => parseDefinition(staticDef('[{name: eth0}, {name: eth1, gateway: 192.168.8.1}]'), 'x.yaml')).toThrow(
      "x.yaml: bond.slaves[1].gateway: is not in 192.168.1.2/24's subnet: with static addressing the Pi keeps one address and gateway whichever router is active, so after a switch to this slave nothing would answer; use network.addressing.method: dhcp, or give both routers the same subnet and address (got \"192.168.8.1\")",
    );
  });

  it('refuses a router at another address of the same subnet than the static gateway', () => {
    expect(() => parseDefinition(staticDef('[{name: eth0}, {name: eth1, gateway: 192.168.1.254}]'), 'x.yaml')).toThrow('bond.slaves[1].gateway: is not network.addressing.gateway (192.168.1.1)');
  });

  it('accepts both routers at the static gateway, and any routers with DHCP', () => {
    expect(parseDefinition(staticDef('[{name: eth0, gateway: 192.168.1.1}, {name: eth1, gateway: 192.168.1.1}]'), 'x.yaml').bond.slaves[1]?.gateway).toBe('192.168.1.1');
    expect(parseDefinition('name: x\nbond:\n  slaves: [{name: eth0, gateway: 192.168.1.1}, {name: eth1, gateway: 192.168.8.1}]\n', 'x.yaml').bond.slaves[1]?.gateway).toBe('192.168.8.1');
  });

  it('checks IPv6 subnets too', () => {
    const v6 = 'name: x\nbond:\n  slaves: [{name: eth0}, {name: eth1, gateway: "fd00:8::1"}]\nnetwork:\n  addressing: {method: static, address: "fd00:1::5/64"}\n';
    expect(() => parseDefinition(v6, 'x.yaml')).toThrow("is not in fd00:1::5/64's subnet");
    expect(parseDefinition(v6.replace('fd00:8::1', 'fd00:1::1'), 'x.yaml').bond.slaves[1]?.gateway).toBe('fd00:1::1');
  });
});
