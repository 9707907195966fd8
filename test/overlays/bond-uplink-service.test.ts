/**
 * pibond-uplink's loop with fake effects on a virtual clock: when the bond's preferred slave
 * changes (and when it must not), where each slave is probed from, and the helper's result lines
 * and the kernel command line's override.
 */
import { readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundlePath, configPath, runtimeDirectory } from '../../overlays/16-bond-uplink/render.ts';
import { targetsFromCommandLine } from '../../overlays/16-bond-uplink/src/command-line.ts';
import type { UplinkConfigFile } from '../../overlays/16-bond-uplink/src/config.ts';
import { type ProbeRequest, parseResult } from '../../overlays/16-bond-uplink/src/probe-helper.ts';
import type { UplinksFile } from '../../overlays/16-bond-uplink/src/report.ts';
import { type UplinkEffects, UplinkService } from '../../overlays/16-bond-uplink/src/service.ts';
import { type BondView, type Learned, defaultGatewayFrom, heldOver, learn, planProbe } from '../../overlays/16-bond-uplink/src/sources.ts';

const config: UplinkConfigFile = {
  bond: 'bond0',
  primary: 'eth0',
  slaves: ['eth0', 'eth1'],
  gateways: {},
  targets: ['192.0.2.1', '192.0.2.2', '192.0.2.3'],
  method: 'icmp',
  count: 2,
  reliability: 1,
  interval_ms: 1000,
  failure_interval_ms: 500,
  timeout_ms: 1000,
  down: 3,
  up: 10,
  runtime_directory: '/run/pibond-uplink',
};

/** What a slave's side does at a moment: answer, answer at the router only (line dead), nothing (hung), or no cable. */
type Side = 'healthy' | 'line-dead' | 'hung' | 'unplugged';

interface Run {
  /** Each change of the bond's preferred slave: [virtual ms, slave]. */
  writes: [number, string][];
  reports: UplinksFile[];
  requests: { slave: string; at: number; request: ProbeRequest }[];
  last: UplinksFile;
}

/** The different-subnets layout: each slave's router and the lease the bond gets from it. */
const ownSubnets: Record<string, { router: string; address: string }> = {
  eth0: { router: '192.168.1.1', address: '192.168.1.50' },
  eth1: { router: '192.168.8.1', address: '192.168.8.20' },
};

/**
 * Runs the service for `forMs` virtual milliseconds against two sides whose behaviour over time
 * `side(slave, ms)` gives. The bond is on eth0 unless the service prefers eth1 (carrier permitting).
 * Both routers are alike (192.168.1.1) unless `renewMs` is given: then each is on its own subnet
 * (ownSubnets), answers only what is sent to it from its own lease's address (or 0.0.0.0, an ARP
 * probe), and after each switch the bond holds the last slave's lease for `renewMs` (per slave
 * switched to, if a record), as a stack that renews does.
 */
async function runService(side: (slave: string, ms: number) => Side, forMs: number, renewMs?: number | Record<string, number>): Promise<Run> {
  let clock = 0;
  const timers: { at: number; wake: () => void }[] = [];
  const sleep = (ms: number) => new Promise<void>((wake) => timers.push({ at: clock + ms, wake }));
  let preferred = 'eth0';
  /** The active slave the view last showed, since when, and whose lease the bond held then. */
  let held = { active: 'eth0', since: -Infinity, lease: 'eth0' };
  const run: Run = { writes: [], reports: [], requests: [], last: undefined as unknown as UplinksFile };
  const effects: UplinkEffects = {
    now: () => clock,
    wallClock: () => new Date(Date.UTC(2026, 0, 1) + clock),
    view: () => {
      const active = preferred === 'eth1' && side('eth1', clock) !== 'unplugged' ? 'eth1' : side('eth0', clock) === 'unplugged' ? 'eth1' : 'eth0';
      if (renewMs === undefined) return { active, address: { address: '192.168.1.50', prefix: 24 }, gateway: '192.168.1.1' };
      const renewed = () => held.since + (typeof renewMs === 'number' ? renewMs : (renewMs[held.active] ?? 0)) <= clock;
      if (active !== held.active) held = { active, since: clock, lease: renewed() ? held.active : held.lease };
      const lease = ownSubnets[renewed() ? active : held.lease] ?? { router: '', address: '' };
      return { active, address: { address: lease.address, prefix: 24 }, gateway: lease.router };
    },
    carrier: (slave) => side(slave, clock) !== 'unplugged',
    mac: () => '52:54:00:00:00:01',
    probe: async (slave, request) => {
      run.requests.push({ slave, at: clock, request });
      const own = ownSubnets[slave];
      const reaches = renewMs === undefined || (request.router === own?.router && (request.source === own.address || request.source === '0.0.0.0'));
      const now = reaches ? side(slave, clock) : 'hung';
      await sleep(now === 'healthy' ? 20 : request.timeoutMs);
      return {
        routerMac: now === 'hung' || now === 'unplugged' ? null : '02:00:00:00:01:01',
        routerRttMs: now === 'hung' || now === 'unplugged' ? null : 0.5,
        targets: request.targets.map((address) => ({ address, rtt_ms: now === 'healthy' ? 12 : null })),
        bytes: 400,
      };
    },
    preferred: () => preferred,
    setPreferred: async (slave) => {
      run.writes.push([clock, slave]);
      preferred = slave;
    },
    writeReport: (file) => void run.reports.push(structuredClone(file)),
    sleep,
    log: () => {},
  };
  const service = new UplinkService(config, effects);
  const loops = service.run();
  for (;;) {
    // Everything that can run now runs, then the clock jumps to the next timer.
    await new Promise((resolve) => setImmediate(resolve));
    timers.sort((a, b) => a.at - b.at);
    const next = timers[0];
    if (next === undefined || next.at > forMs) break;
    timers.shift();
    clock = next.at;
    next.wake();
  }
  service.stop();
  // A loop finishes the round it is in: let every wait end until both have returned.
  let ended = false;
  const settled = loops.finally(() => (ended = true));
  while (!ended) {
    for (const timer of timers.splice(0)) timer.wake();
    await new Promise((resolve) => setImmediate(resolve));
  }
  await settled;
  run.last = run.reports.at(-1) as UplinksFile;
  return run;
}

const s = 1000;

describe('UplinkService', () => {
  it('the main line dies (its router answers): the backup is preferred within 5 s, the primary again once healthy for `up` rounds', async () => {
    const run = await runService((slave, ms) => (slave === 'eth0' && ms >= 10 * s && ms < 40 * s ? 'line-dead' : 'healthy'), 80 * s);
    expect(run.writes.map(([, slave]) => slave)).toEqual(['eth1', 'eth0']);
    const [[awayAt], [backAt]] = run.writes as [[number, string], [number, string]];
    expect(awayAt - 10 * s).toBeGreaterThan(0);
    expect(awayAt - 10 * s).toBeLessThanOrEqual(5 * s);
    // Back after `up` (10) good rounds a second apart, within the 30 s goal.
    expect(backAt - 40 * s).toBeGreaterThanOrEqual(9 * s);
    expect(backAt - 40 * s).toBeLessThanOrEqual(30 * s);
    expect(run.last.decisions.map((d) => [d.reason, d.from, d.to])).toEqual([
      ['primary_uplink_down', 'eth0', 'eth1'],
      ['primary_back', 'eth1', 'eth0'],
    ]);
    expect(run.last.decision_counts).toEqual({ primary_uplink_down: 1, primary_back: 1 });
  });

  it('the main router hangs: down with cause router, the backup preferred', async () => {
    const run = await runService((slave, ms) => (slave === 'eth0' && ms >= 5 * s ? 'hung' : 'healthy'), 20 * s);
    expect(run.writes.map(([, slave]) => slave)).toEqual(['eth1']);
    expect(run.last.uplinks.find((u) => u.slave === 'eth0')).toMatchObject({ state: 'down', cause: 'router' });
    expect(run.last.reason).toBe('primary_uplink_down');
  });

  it('the backup line dies while on the primary: shown, nothing written', async () => {
    const run = await runService((slave, ms) => (slave === 'eth1' && ms >= 5 * s ? 'line-dead' : 'healthy'), 30 * s);
    expect(run.writes).toEqual([]);
    expect(run.last.uplinks.find((u) => u.slave === 'eth1')).toMatchObject({ state: 'down', cause: 'line' });
    expect(run.last.reason).toBe('primary_healthy');
  });

  it('both lines die at once: stays on the primary, never a moment on the backup', async () => {
    const run = await runService((_, ms) => (ms >= 5 * s ? 'line-dead' : 'healthy'), 30 * s);
    expect(run.writes).toEqual([]);
    expect(run.last.uplinks.map((u) => u.state)).toEqual(['down', 'down']);
    expect(run.last.reason).toBe('all_uplinks_down');
  });

  it('both lines die and come back at once: never a moment on the backup, on the way out or back', async () => {
    for (const backLag of [0, 300, 700]) {
      const run = await runService((slave, ms) => (ms >= 5 * s && ms < (slave === 'eth0' ? 25 * s + backLag : 25 * s) ? 'line-dead' : 'healthy'), 60 * s);
      expect(run.writes, `the backup's line back ${backLag} ms before the primary's`).toEqual([]);
      expect(run.last.uplinks.map((u) => u.state)).toEqual(['up', 'up']);
    }
  });

  it('a pulled cable is the kernel\'s: its rounds are skipped, the uplink keeps its state, nothing is written', async () => {
    const run = await runService((slave, ms) => (slave === 'eth0' && ms >= 5 * s && ms < 25 * s ? 'unplugged' : 'healthy'), 30 * s);
    expect(run.writes).toEqual([]);
    const during = run.reports.filter((r) => r.uplinks[0]?.note?.startsWith('no carrier'));
    expect(during.length).toBeGreaterThan(0);
    for (const report of during) expect(report.uplinks[0]?.state).toBe('up');
    expect(run.requests.some((r) => r.slave === 'eth0' && r.at > 6 * s && r.at < 24 * s)).toBe(false);
  });

  it('routers on subnets of their own, a stack that renews 3 s after each switch, a cable that flaps: the primary stays preferred, each side probed at its own router', async () => {
    const unplugged = (ms: number) => (ms >= 10 * s && ms < 20 * s) || [30, 34, 38, 42, 46].some((at) => ms >= at * s && ms < at * s + 600);
    const run = await runService((slave, ms) => (slave === 'eth0' && unplugged(ms) ? 'unplugged' : 'healthy'), 70 * s, 3 * s);
    expect(run.writes).toEqual([]);
    expect(run.last.uplinks.map((u) => [u.slave, u.state])).toEqual([['eth0', 'up'], ['eth1', 'up']]);
    // After the long unplug, the renewal's seconds: eth0 is active, the bond holds eth1's lease.
    const held = run.requests.filter((r) => r.slave === 'eth0' && r.at >= 20 * s && r.at < 23 * s);
    expect(held.length).toBeGreaterThan(0);
    for (const { request } of held) expect(request).toMatchObject({ router: '192.168.1.1', source: '192.168.1.50' });
    const late = run.requests.filter((r) => r.at > 60 * s);
    expect(late.map((r) => [r.slave, r.request.router, r.request.source])).toEqual(
      late.map((r) => [r.slave, ownSubnets[r.slave]?.router, ownSubnets[r.slave]?.address]),
    );
  });

  it('a view held over for 30 s is taken as the truth (the router behind the slave was moved): the slave is probed at the bond\'s gateway from then on', async () => {
    const run = await runService((slave, ms) => (slave === 'eth0' && ms >= 10 * s && ms < 20 * s ? 'unplugged' : 'healthy'), 60 * s, { eth1: 3 * s, eth0: 40 * s });
    const eth0 = (from: number, to: number) => run.requests.filter((r) => r.slave === 'eth0' && r.at >= from * s && r.at < to * s).map((r) => r.request.router);
    expect(new Set(eth0(20, 49))).toEqual(new Set(['192.168.1.1']));
    expect(new Set(eth0(52, 60))).toEqual(new Set(['192.168.8.1']));
  });

  it('probes every target through each slave with the bond\'s address when both routers share its subnet', async () => {
    const run = await runService(() => 'healthy', 3 * s);
    const eth1 = run.requests.find((r) => r.slave === 'eth1')?.request;
    expect(eth1).toMatchObject({ source: '192.168.1.50', router: '192.168.1.1', count: 2, timeoutMs: 1000, targets: config.targets });
    // Under 1 kB/s per uplink: 400 bytes a round, a round a second.
    const eth0Rounds = run.requests.filter((r) => r.slave === 'eth0').length;
    expect(run.last.probe_bytes.eth0).toBe(400 * eth0Rounds);
    expect(eth0Rounds).toBeLessThanOrEqual(4);
  });
});

describe('planProbe', () => {
  const bond: BondView = { active: 'eth0', address: { address: '192.168.1.50', prefix: 24 }, gateway: '192.168.1.1' };

  it('the active slave: the bond\'s own address and gateway', () => {
    expect(planProbe('eth0', bond, new Map(), {})).toEqual({ router: '192.168.1.1', source: '192.168.1.50', note: null });
  });

  it('a backup on another subnet, never active yet: its router only, from 0.0.0.0, saying why', () => {
    const plan = planProbe('eth1', bond, new Map(), { eth1: '192.168.8.1' });
    expect(plan).toMatchObject({ router: '192.168.8.1', source: '0.0.0.0' });
    expect(plan.note).toMatch(/no address on the subnet of 192\.168\.8\.1 is known yet/);
  });

  it('a backup on another subnet, active before: the address it had then', () => {
    const learned = new Map<string, Learned>();
    learn(learned, { active: 'eth1', address: { address: '192.168.8.20', prefix: 24 }, gateway: '192.168.8.1' });
    expect(planProbe('eth1', bond, learned, {})).toEqual({ router: '192.168.8.1', source: '192.168.8.20', note: null });
  });

  it('the active slave while the bond still holds the other router\'s lease (held over): its own router, from the address it had there', () => {
    const learned = new Map<string, Learned>();
    learn(learned, bond);
    learn(learned, { active: 'eth1', address: { address: '192.168.8.20', prefix: 24 }, gateway: '192.168.8.1' });
    const back: BondView = { active: 'eth0', address: { address: '192.168.8.20', prefix: 24 }, gateway: '192.168.8.1' };
    expect(heldOver(back, learned, {})).toBe(true);
    expect(planProbe('eth0', back, learned, {})).toEqual({ router: '192.168.1.1', source: '192.168.1.50', note: null });
    // Never active before, its router from the definition: that router only.
    const first: BondView = { ...bond, active: 'eth1' };
    expect(planProbe('eth1', first, new Map([['eth0', { address: '192.168.1.50', prefix: 24, router: '192.168.1.1' }]]), { eth1: '192.168.8.1' })).toMatchObject({
      router: '192.168.8.1',
      source: '0.0.0.0',
      note: expect.stringMatching(/still holds the lease of 192\.168\.1\.1/),
    });
  });

  it('not held over: the active slave\'s router unknown (routers alike, the same-subnet layout), or the gateway no other slave\'s', () => {
    const learned = new Map<string, Learned>([['eth0', { address: '192.168.1.50', prefix: 24, router: '192.168.1.1' }]]);
    expect(heldOver({ ...bond, active: 'eth1' }, learned, {})).toBe(false);
    expect(planProbe('eth1', { ...bond, active: 'eth1' }, learned, {})).toEqual({ router: '192.168.1.1', source: '192.168.1.50', note: null });
    expect(heldOver({ active: 'eth1', address: { address: '10.0.0.5', prefix: 24 }, gateway: '10.0.0.1' }, learned, { eth1: '192.168.8.1' })).toBe(false);
  });

  it('no gateway on the bond: says so', () => {
    expect(planProbe('eth0', { ...bond, gateway: null }, new Map(), {}).note).toBe('the bond has no default gateway');
  });
});

describe('defaultGatewayFrom (/proc/net/route)', () => {
  const table = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'bond0\t00000000\t0101A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'bond0\t0001A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
  ].join('\n');

  it('reads the default route of the device', () => {
    expect(defaultGatewayFrom(table, 'bond0')).toBe('192.168.1.1');
    expect(defaultGatewayFrom(table, 'eth0')).toBeNull();
  });
});

describe('parseResult', () => {
  it('reads a result line', () => {
    expect(parseResult('result 7 02:00:00:00:01:01 0.41 192.0.2.1=3.20 192.0.2.2=- 512')).toEqual({
      id: 7,
      result: { routerMac: '02:00:00:00:01:01', routerRttMs: 0.41, targets: [{ address: '192.0.2.1', rtt_ms: 3.2 }, { address: '192.0.2.2', rtt_ms: null }], bytes: 512 },
    });
    expect(parseResult('result 8 - - 192.0.2.1=- 60')?.result).toMatchObject({ routerMac: null, routerRttMs: null });
  });

  it.each(['ready eth1 52:54:00:00:00:01', 'result x - - 1', 'result 3'])('ignores %s', (line) => {
    expect(parseResult(line)).toBeNull();
  });
});

describe('targetsFromCommandLine', () => {
  it.each([
    ['console=ttyAMA0 pibond.uplink.targets=192.0.2.1,192.0.2.2 quiet', ['192.0.2.1', '192.0.2.2']],
    ['pibond.uplink.targets=192.0.2.9', ['192.0.2.9']],
    ['console=ttyAMA0', null],
    ['pibond.uplink.targets=example.com', null],
    ['pibond.uplink.targets=', null],
  ])('%s', (cmdline, targets) => {
    expect(targetsFromCommandLine(cmdline)).toEqual(targets);
  });
});

describe('pibond-uplink.service', () => {
  const rootfs = join(import.meta.dirname, '../../overlays/16-bond-uplink/rootfs');
  const unit = readFileSync(join(rootfs, 'usr/lib/systemd/system/pibond-uplink.service'), 'utf8')
    .split('\n')
    .filter((line) => /^[A-Za-z]+=/.test(line));

  it('runs the bundle with the rendered configuration, only when uplink tracking is on, enabled at boot', () => {
    expect(unit).toEqual(
      expect.arrayContaining([`ConditionPathExists=/${configPath}`, `ExecStart=/usr/lib/pibond/node /${bundlePath} --config /${configPath}`, `RuntimeDirectory=${runtimeDirectory.replace('/run/', '')}`]),
    );
    expect(readlinkSync(join(rootfs, 'etc/systemd/system/multi-user.target.wants/pibond-uplink.service'))).toBe('/usr/lib/systemd/system/pibond-uplink.service');
  });

  it('holds only what probing and switching take: a packet socket and the bond\'s primary', () => {
    expect(unit).toEqual(
      expect.arrayContaining([
        'DynamicUser=yes',
        'CapabilityBoundingSet=CAP_NET_RAW CAP_NET_ADMIN',
        'AmbientCapabilities=CAP_NET_RAW CAP_NET_ADMIN',
        'NoNewPrivileges=yes',
        'ProtectSystem=strict',
        'RestrictAddressFamilies=AF_PACKET AF_NETLINK AF_INET AF_UNIX',
      ]),
    );
    // Behind the status service and pibond-heal when the CPU is short.
    expect(unit).toEqual(expect.arrayContaining(['Nice=10', 'CPUWeight=20']));
  });
});
