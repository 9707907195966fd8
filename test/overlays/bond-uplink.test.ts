/**
 * The uplink tracker: its hysteresis round by round (and under intermittent loss, where it must
 * never flap), the scheduling of rounds, which slave the policy prefers and how it says why, the
 * device's check of its configuration, and what render() writes for a definition.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it, vi } from 'vitest';
import { bundleDeviceProgram } from '../../scripts/lib/bundle.ts';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { bundle, bundlePath, configPath, render, runtimeDirectory } from '../../overlays/16-bond-uplink/render.ts';
import { checkConfig, type UplinkConfigFile } from '../../overlays/16-bond-uplink/src/config.ts';
import { decide } from '../../overlays/16-bond-uplink/src/policy.ts';
import type { UplinkReport, UplinkState } from '../../overlays/16-bond-uplink/src/report.ts';
import { Tracker, roundIsGood, type RoundResult, type TrackerConfig } from '../../overlays/16-bond-uplink/src/tracker.ts';

// render() tests see a stand-in bundle (esbuild takes a while, and src/main.ts is the service's
// own business); the bundle test below runs the real bundler.
vi.mock(import('../../scripts/lib/bundle.ts'), async (importOriginal) => {
  const actual = await importOriginal();
  return { bundleDeviceProgram: vi.fn(actual.bundleDeviceProgram) };
});

const targets = ['1.1.1.1', '8.8.8.8', '9.9.9.9'];
/** The definition's defaults. */
const defaults: TrackerConfig = { targets, reliability: 1, down: 3, up: 10, interval_ms: 1000, failure_interval_ms: 500 };
const started = new Date(Date.UTC(2026, 10, 25, 14, 0, 0));
const at = (seconds: number) => new Date(started.getTime() + seconds * 1000);

/** A round whose router answered and whose targets answered as given (null: no answer). */
function answered(rtts: (number | null)[] = [12.5, null, null]): RoundResult {
  return {
    routerAnswered: true,
    routerRttMs: 0.4,
    routerMac: '02:00:00:00:01:01',
    targets: targets.map((address, i) => ({ address, rtt_ms: rtts[i] ?? null })),
    source: '192.168.1.100',
    skipped: null,
  };
}
const lineDead = (): RoundResult => answered([null, null, null]);
const routerDead = (): RoundResult => ({ routerAnswered: false, routerRttMs: null, routerMac: null, targets: [], source: '192.168.1.100', skipped: null });
const skipped = (why: string): RoundResult => ({ routerAnswered: false, routerRttMs: null, routerMac: null, targets: [], source: null, skipped: why });

/** Feeds rounds one second apart; returns each round's state and whether it changed. */
function feed(tracker: Tracker, rounds: RoundResult[], from = 1): [UplinkState, boolean][] {
  return rounds.map((round, i) => {
    const outcome = tracker.round(round, at(from + i));
    return [outcome.report.state, outcome.changed];
  });
}

describe('Tracker', () => {
  it('a new uplink is up after its first good round, and says when', () => {
    const tracker = new Tracker('eth0', defaults, started, '192.168.1.1');
    expect(tracker.report()).toMatchObject({ slave: 'eth0', state: 'unknown', since: started.toISOString(), last_round: null, streak: 0 });
    const outcome = tracker.round(answered(), at(1));
    expect(outcome).toMatchObject({ previous: 'unknown', changed: true, good: true });
    expect(outcome.report).toEqual({
      slave: 'eth0',
      state: 'up',
      since: at(1).toISOString(),
      cause: null,
      note: null,
      source: '192.168.1.100',
      router: { address: '192.168.1.1', mac: '02:00:00:00:01:01', rtt_ms: 0.4 },
      targets: [
        { address: '1.1.1.1', rtt_ms: 12.5 },
        { address: '8.8.8.8', rtt_ms: null },
        { address: '9.9.9.9', rtt_ms: null },
      ],
      last_round: at(1).toISOString(),
      streak: 1,
      rounds: { ok: 1, failed: 0 },
    });
  });

  it('a new uplink is down after `down` failed rounds in a row, not before', () => {
    const tracker = new Tracker('eth0', defaults, started);
    expect(feed(tracker, [lineDead(), lineDead(), lineDead()])).toEqual([['unknown', false], ['unknown', false], ['down', true]]);
    expect(tracker.report()).toMatchObject({ cause: 'line', streak: -3, since: at(3).toISOString(), rounds: { ok: 0, failed: 3 } });
  });

  it('up goes down only after `down` failed rounds in a row: a good round in between starts the count again', () => {
    const tracker = new Tracker('eth0', defaults, started);
    const states = feed(tracker, [answered(), lineDead(), lineDead(), answered(), lineDead(), lineDead(), lineDead()]);
    expect(states.map(([state]) => state)).toEqual(['up', 'up', 'up', 'up', 'up', 'up', 'down']);
    expect(states.filter(([, changed]) => changed)).toHaveLength(2);
  });

  it('down comes back only after `up` good rounds in a row', () => {
    const tracker = new Tracker('eth0', defaults, started);
    feed(tracker, [answered(), routerDead(), routerDead(), routerDead()]);
    expect(tracker.report()).toMatchObject({ state: 'down', cause: 'router' });
    // Nine good rounds, one failure: still down, and the count starts again.
    feed(tracker, [...Array<RoundResult>(9).fill(answered()), lineDead()], 5);
    expect(tracker.report()).toMatchObject({ state: 'down', streak: -1, cause: 'line' });
    const back = feed(tracker, Array<RoundResult>(10).fill(answered()), 15);
    expect(back.slice(0, 9).every(([state]) => state === 'down')).toBe(true);
    expect(back[9]).toEqual(['up', true]);
    expect(tracker.report()).toMatchObject({ state: 'up', cause: null, streak: 10, since: at(24).toISOString() });
  });

  it('cause is the last failed round\'s: the router silent, or the router answering and the targets not', () => {
    const tracker = new Tracker('eth0', defaults, started);
    feed(tracker, [lineDead(), lineDead(), routerDead()]);
    expect(tracker.report()).toMatchObject({ state: 'down', cause: 'router' });
    feed(tracker, [lineDead()], 4);
    expect(tracker.report()).toMatchObject({ state: 'down', cause: 'line' });
    // A good round while down leaves the cause as the last failure said.
    feed(tracker, [answered()], 5);
    expect(tracker.report()).toMatchObject({ state: 'down', cause: 'line', streak: 1 });
  });

  it('a round is good when the router and `reliability` distinct targets answered', () => {
    expect(roundIsGood(answered([5, null, null]), 1)).toBe(true);
    expect(roundIsGood(answered([5, null, null]), 2)).toBe(false);
    expect(roundIsGood(answered([5, 7, null]), 2)).toBe(true);
    // Each target counts once, whatever `count` made it answer.
    expect(roundIsGood({ ...answered(), targets: [{ address: '1.1.1.1', rtt_ms: 5 }, { address: '1.1.1.1', rtt_ms: 6 }] }, 2)).toBe(false);
    expect(roundIsGood({ ...answered([5, 5, 5]), routerAnswered: false }, 1)).toBe(false);
  });

  it('a skipped round leaves the state, the streak and the counts, and its note says why until a round is probed again', () => {
    const tracker = new Tracker('eth1', defaults, started);
    feed(tracker, [answered(), lineDead()]);
    const outcome = tracker.round(skipped('no carrier: the bond\'s link monitor handles it'), at(3));
    expect(outcome).toMatchObject({ changed: false, good: null, previous: 'up' });
    expect(outcome.report).toMatchObject({ state: 'up', streak: -1, rounds: { ok: 1, failed: 1 }, note: 'no carrier: the bond\'s link monitor handles it', source: null, last_round: at(3).toISOString() });
    expect(outcome.report.targets).toEqual(targets.map((address) => ({ address, rtt_ms: null })));
    expect(tracker.round(answered(), at(4)).report).toMatchObject({ note: null, streak: 1, rounds: { ok: 2, failed: 1 } });
  });

  it('a skipped round that heard the router shows it, without counting it', () => {
    const tracker = new Tracker('eth1', defaults, started);
    const report = tracker.round({ ...skipped('no address on the router\'s subnet yet'), routerAnswered: true, routerRttMs: 0.7, routerMac: '02:00:00:00:02:01', router: '192.168.8.1' }, at(1)).report;
    expect(report).toMatchObject({ state: 'unknown', streak: 0, router: { address: '192.168.8.1', mac: '02:00:00:00:02:01', rtt_ms: 0.7 } });
  });

  it('follows the router\'s address, forgetting the old router\'s MAC', () => {
    const tracker = new Tracker('eth1', defaults, started, '192.168.1.1');
    tracker.round(answered(), at(1));
    const report = tracker.round({ ...routerDead(), router: '192.168.8.1' }, at(2)).report;
    expect(report.router).toEqual({ address: '192.168.8.1', mac: null, rtt_ms: null });
  });

  it('hands out copies: changing a report changes nothing in the tracker', () => {
    const tracker = new Tracker('eth0', defaults, started);
    const report = tracker.round(answered(), at(1)).report;
    report.state = 'down';
    report.router.mac = 'x';
    report.targets.length = 0;
    report.rounds.ok = 99;
    expect(tracker.report()).toMatchObject({ state: 'up', router: { mac: '02:00:00:00:01:01' }, rounds: { ok: 1 } });
    expect(tracker.report().targets).toHaveLength(3);
  });
});

describe('Tracker.nextRoundDelay', () => {
  it('starts rounds every failure_interval while the last round failed, otherwise every interval (a down uplink recovering too)', () => {
    const tracker = new Tracker('eth0', defaults, started);
    expect(tracker.nextRoundDelay()).toBe(1000);
    feed(tracker, [answered()]);
    expect(tracker.nextRoundDelay(30)).toBe(970);
    feed(tracker, [lineDead()], 2);
    expect(tracker.nextRoundDelay()).toBe(500);
    // A failed round waited its whole timeout: the next one starts at once.
    expect(tracker.nextRoundDelay(1000)).toBe(0);
    feed(tracker, [answered()], 3);
    expect(tracker.nextRoundDelay()).toBe(1000);
    feed(tracker, [lineDead(), lineDead(), lineDead(), answered()], 4);
    expect(tracker.report()).toMatchObject({ state: 'down', streak: 1 });
    // `up` good rounds must span up * interval: healthy for long enough, not a burst.
    expect(tracker.nextRoundDelay()).toBe(1000);
  });

  it('at the defaults a dead line is down 3 to 4 s after it died (3 failed rounds of 1 s, back to back)', () => {
    const timeoutMs = 1000;
    const detections: number[] = [];
    for (const diesAt of [10_000, 10_001, 10_250, 10_500, 10_990]) {
      const tracker = new Tracker('eth0', defaults, started);
      let now = 0;
      for (;;) {
        const dead = now >= diesAt;
        // A good round ends with its answers (~20 ms); a failed one waits out the timeout.
        const took = dead ? timeoutMs : 20;
        now += took;
        if (tracker.round(dead ? lineDead() : answered(), at(now / 1000)).report.state === 'down') break;
        now += tracker.nextRoundDelay(took);
      }
      detections.push(now - diesAt);
    }
    for (const ms of detections) expect(ms).toBeGreaterThanOrEqual(3000);
    for (const ms of detections) expect(ms).toBeLessThanOrEqual(4000);
  });
});

describe('intermittent loss', () => {
  /** mulberry32: a small seeded generator, so a failure here is the same failure on every run. */
  function random(seed: number): () => number {
    let a = seed >>> 0;
    return () => {
      a = (a + 0x6d2b79f5) >>> 0;
      let t = a;
      t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }

  /**
   * Rounds on a line that loses each packet with probability `loss`, each way: a target answers
   * when any of its `count` echo requests and that request's reply both got through. The router is
   * on the LAN, before the lossy line.
   */
  function lossyRounds(tracker: Tracker, rounds: number, loss: number, count: number, seed: number) {
    const next = random(seed);
    const changes: UplinkState[] = [];
    for (let i = 0; i < rounds; i++) {
      const rtts = targets.map(() => (Array.from({ length: count }, () => next() >= loss && next() >= loss).some(Boolean) ? 20 : null));
      const outcome = tracker.round(answered(rtts), at(i));
      if (outcome.changed) changes.push(outcome.report.state);
    }
    return { changes, report: tracker.report() };
  }

  it.each([1, 2, 3])('never flaps at 30 %% loss each way with the default thresholds (seed %i, 3000 rounds)', (seed) => {
    const { changes, report } = lossyRounds(new Tracker('eth0', defaults, started), 3000, 0.3, 2, seed);
    expect(changes).toEqual(['up']);
    // The loss was felt: ~1.8 % of rounds failed (all 6 exchanges lost: 0.51^6), just never 3 in a row.
    expect(report.rounds.failed).toBeGreaterThan(10);
  });

  it('would flap with down: 1, so the thresholds are what holds it', () => {
    const { changes } = lossyRounds(new Tracker('eth0', { ...defaults, down: 1, up: 1 }, started), 3000, 0.3, 2, 1);
    expect(changes.length).toBeGreaterThan(20);
  });
});

/** A tracker's report for the policy, by state; down ones with their cause and failed rounds. */
function uplink(slave: string, state: UplinkState, more: Partial<UplinkReport> = {}): UplinkReport {
  return {
    slave,
    state,
    since: started.toISOString(),
    cause: state === 'down' ? 'line' : null,
    note: null,
    source: '192.168.1.100',
    router: { address: slave === 'eth0' ? '192.168.1.1' : '192.168.8.1', mac: null, rtt_ms: null },
    targets: targets.slice(0, 2).map((address) => ({ address, rtt_ms: state === 'down' ? null : 15 })),
    last_round: at(5).toISOString(),
    streak: state === 'down' ? -3 : state === 'up' ? 12 : 0,
    rounds: { ok: 10, failed: 3 },
    ...more,
  };
}

describe('decide', () => {
  const slaves = ['eth0', 'eth1'];
  const cases: [what: string, uplinks: UplinkReport[], previous: string | null, preferred: string, reason: string, detail: string][] = [
    ['both up', [uplink('eth0', 'up'), uplink('eth1', 'up')], 'eth0', 'eth0', 'primary_healthy', "eth0's uplink is up"],
    ['nothing known yet', [], null, 'eth0', 'primary_healthy', "eth0's uplink is not known yet (no round has ended)"],
    [
      'the primary cannot be probed',
      [uplink('eth0', 'unknown', { note: 'no carrier' }), uplink('eth1', 'up')],
      'eth0',
      'eth0',
      'primary_healthy',
      "eth0's uplink is not known yet (no carrier)",
    ],
    [
      'the primary\'s line is down, the backup\'s up',
      [uplink('eth0', 'down'), uplink('eth1', 'up')],
      'eth0',
      'eth1',
      'primary_uplink_down',
      "eth0's uplink is down (router 192.168.1.1 answers, none of 1.1.1.1, 8.8.8.8 did in 3 rounds); eth1's is up",
    ],
    [
      'the primary\'s router is silent, the backup not known yet',
      [uplink('eth0', 'down', { cause: 'router', streak: -4 }), uplink('eth1', 'unknown', { note: 'no address on the router\'s subnet yet' })],
      'eth0',
      'eth1',
      'primary_uplink_down',
      "eth0's uplink is down (router 192.168.1.1 did not answer in 4 rounds); eth1's is not known to be down (no address on the router's subnet yet)",
    ],
    [
      'fewer targets than reliability answered',
      [uplink('eth0', 'down', { targets: [{ address: '1.1.1.1', rtt_ms: 9 }, { address: '8.8.8.8', rtt_ms: null }] }), uplink('eth1', 'up')],
      'eth1',
      'eth1',
      'primary_uplink_down',
      "eth0's uplink is down (router 192.168.1.1 answers, only 1.1.1.1 of 1.1.1.1, 8.8.8.8 did in the last round); eth1's is up",
    ],
    [
      'both down',
      [uplink('eth0', 'down'), uplink('eth1', 'down', { cause: 'router', streak: -1 })],
      'eth1',
      'eth0',
      'all_uplinks_down',
      'no uplink is better (eth0: router 192.168.1.1 answers, none of 1.1.1.1, 8.8.8.8 did in 3 rounds; eth1: router 192.168.8.1 did not answer in 1 round), so the primary eth0 stays preferred',
    ],
    [
      'the primary back after `up` good rounds',
      [uplink('eth0', 'up', { streak: 10 }), uplink('eth1', 'up')],
      'eth1',
      'eth0',
      'primary_back',
      "eth0's uplink is up again (10 good rounds in a row): back from eth1 to the primary",
    ],
    [
      'down but coming back: still the backup',
      [uplink('eth0', 'down', { streak: 4 }), uplink('eth1', 'up')],
      'eth1',
      'eth1',
      'primary_uplink_down',
      "eth0's uplink is down (4 good rounds in a row so far, not yet enough to count it up again); eth1's is up",
    ],
  ];

  it.each(cases)('%s', (_what, uplinks, previous, preferred, reason, detail) => {
    expect(decide('eth0', slaves, uplinks, previous)).toEqual({ preferred, reason, detail });
  });

  it('among backups, an uplink known up before one not known yet, then the slaves\' order', () => {
    const three = ['eth0', 'eth1', 'eth2'];
    expect(decide('eth0', three, [uplink('eth0', 'down'), uplink('eth1', 'unknown'), uplink('eth2', 'up')]).preferred).toBe('eth2');
    expect(decide('eth0', three, [uplink('eth0', 'down'), uplink('eth1', 'unknown'), uplink('eth2', 'unknown')]).preferred).toBe('eth1');
    expect(decide('eth0', three, [uplink('eth0', 'down'), uplink('eth1', 'down'), uplink('eth2', 'unknown')]).preferred).toBe('eth2');
    // Both lines back at once: the primary, down but coming back, is not left for a backup that recovered first.
    expect(decide('eth0', slaves, [uplink('eth0', 'down', { streak: 4 }), uplink('eth1', 'up')], 'eth0')).toMatchObject({ preferred: 'eth0', reason: 'all_uplinks_down' });
    // ...while a bond already on the backup stays there until the primary counts as up.
    expect(decide('eth0', slaves, [uplink('eth0', 'down', { streak: 4 }), uplink('eth1', 'up')], 'eth1')).toMatchObject({ preferred: 'eth1', reason: 'primary_uplink_down' });
    // A backup whose first round has not ended (its helper still starting) is no candidate.
    expect(decide('eth0', three, [uplink('eth0', 'down'), uplink('eth1', 'unknown', { last_round: null }), uplink('eth2', 'down')])).toMatchObject({ preferred: 'eth0', reason: 'all_uplinks_down' });
    // The primary need not be the first slave.
    expect(decide('eth1', three, [uplink('eth0', 'up'), uplink('eth1', 'down'), uplink('eth2', 'up')]).preferred).toBe('eth0');
  });
});

describe('checkConfig', () => {
  const good: UplinkConfigFile = {
    bond: 'bond0',
    primary: 'eth0',
    slaves: ['eth0', 'eth1'],
    gateways: { eth0: '192.168.1.1' },
    targets,
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

  it('returns the file as it is when it is well-formed, without gateways too', () => {
    expect(checkConfig(JSON.parse(JSON.stringify(good)), 'f.json')).toEqual(good);
    const { gateways: _, ...withoutGateways } = good;
    expect(checkConfig(withoutGateways, 'f.json').gateways).toEqual({});
  });

  it.each([
    [[], 'f.json: must be a JSON object'],
    [{ ...good, bond: 'bond 0' }, 'f.json: bond must be an interface name'],
    [{ ...good, slaves: ['eth0'] }, 'f.json: slaves must list at least two interface names'],
    [{ ...good, slaves: ['eth0', 7] }, 'f.json: slaves[1] must be an interface name'],
    [{ ...good, primary: 'eth2' }, 'f.json: primary must be one of the slaves (eth0, eth1)'],
    [{ ...good, gateways: { eth2: '192.168.1.1' } }, 'f.json: gateways.eth2 must be one of the slaves (eth0, eth1)'],
    [{ ...good, gateways: { eth1: 'fd00::1' } }, 'f.json: gateways.eth1 must be an IPv4 address'],
    [{ ...good, gateways: ['192.168.1.1'] }, 'f.json: gateways must map slaves to IPv4 addresses'],
    [{ ...good, targets: [] }, 'f.json: targets must list at least one IPv4 address'],
    [{ ...good, targets: ['1.1.1.1', 'one.one'] }, 'f.json: targets[1] must be an IPv4 address'],
    [{ ...good, method: 'tcp' }, 'f.json: method must be "icmp"'],
    [{ ...good, count: 0 }, 'f.json: count must be a whole number from 1'],
    [{ ...good, reliability: 4 }, 'f.json: reliability must be a whole number from 1 to 3'],
    [{ ...good, interval_ms: '1000' }, 'f.json: interval_ms must be a whole number from 1'],
    [{ ...good, failure_interval_ms: 1500 }, 'f.json: failure_interval_ms must be a whole number from 1 to 1000'],
    [{ ...good, timeout_ms: 2.5 }, 'f.json: timeout_ms must be a whole number from 1'],
    [{ ...good, down: undefined }, 'f.json: down must be a whole number from 1'],
    [{ ...good, up: -1 }, 'f.json: up must be a whole number from 1'],
    [{ ...good, runtime_directory: 'run/x' }, 'f.json: runtime_directory must be an absolute path'],
  ])('%j: %s', (raw, message) => {
    expect(() => checkConfig(raw, 'f.json')).toThrow(message);
  });
});

describe('render()', () => {
  it('writes the bundle and the configuration from the definition: names, milliseconds, the slaves\' IPv4 routers', async () => {
    vi.mocked(bundleDeviceProgram).mockResolvedValueOnce(Buffer.from('// bond-uplink\n'));
    const def = parseDefinition(
      'name: x\nbond:\n  slaves: [{name: eth0, gateway: 192.168.1.1}, {name: eth1, gateway: "fd00:8::1"}, {name: lan2}]\n  primary: eth1\nuplink: {targets: [1.1.1.1, 8.8.8.8], reliability: 2, interval: 2000}\n',
      'x.yaml',
    );
    const files = await render(def);
    expect(files.map((f) => [f.path, f.mode])).toEqual([
      [bundlePath, 0o644],
      [configPath, 0o644],
    ]);
    expect(String(files[0]?.content)).toBe('// bond-uplink\n');
    const text = String(files[1]?.content);
    expect(text.endsWith('}\n')).toBe(true);
    expect(checkConfig(JSON.parse(text), configPath)).toEqual({
      bond: 'bond0',
      primary: 'eth1',
      slaves: ['eth0', 'eth1', 'lan2'],
      gateways: { eth0: '192.168.1.1' },
      targets: ['1.1.1.1', '8.8.8.8'],
      method: 'icmp',
      count: 2,
      reliability: 2,
      interval_ms: 2000,
      failure_interval_ms: 500,
      timeout_ms: 1000,
      down: 3,
      up: 10,
      runtime_directory: '/run/pibond-uplink',
    });
    expect(runtimeDirectory).toBe('/run/pibond-uplink');
  });

  it('writes nothing when uplink tracking is off: the unit starts only with its configuration', async () => {
    expect(await render(parseDefinition('name: x\nuplink: {enabled: false}\n', 'x.yaml'))).toEqual([]);
  });

  const main = join(import.meta.dirname, '../../overlays/16-bond-uplink/src/main.ts');
  it.skipIf(!existsSync(main))('bundles the service into one CommonJS file for the device\'s node', async () => {
    const text = (await bundle()).toString('utf8');
    expect(text.split('\n')[0]).toBe('// bond-uplink: generated by overlays/16-bond-uplink/render.ts from src/; edit the source, not this file.');
    expect(text).not.toMatch(/^\s*(import|export) /m);
  });
});
