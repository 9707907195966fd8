import { describe, expect, it } from 'vitest';
import { type Bench, type Cast, type Check, bondProblem, failback, failover, runChecks, bootFinishes } from '../../scripts/boot/checks.ts';
import { slaveNics } from '../../scripts/boot/machine.ts';
import type { CheckResult, Figures, GoalsMet } from '../../scripts/boot/report.ts';
import { castOf, failoverChecks, outboundPinger, testbedChecks } from '../../scripts/boot/scenario.ts';
import { FakeGuest, type FakeGuestOptions } from './_fake-guest.ts';

const defaultCast = castOf('bond0', slaveNics({ slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth0' }));

function benchOn(probes: FakeGuest, cast: Cast = defaultCast): Bench {
  const figures: Figures = { bootToReadySeconds: null, failoverMs: null, failbackMs: null, flaps: [], reenslaveMs: null, outages: [] };
  const goalsMet: GoalsMet = { bootToReady: null, failover: null, failback: null };
  return { probes, cast, figures, goalsMet, failovers: 0 };
}

async function run(checks: Check[], bench: Bench) {
  const results: CheckResult[] = [];
  const said: string[] = [];
  const verdict = await runChecks(checks, bench, { say: (m) => said.push(m), results, now: () => bench.probes.now() });
  return { verdict, results, said };
}

function guest(cast: Cast, more: Partial<FakeGuestOptions> = {}): FakeGuest {
  return new FakeGuest({ bond: cast.bond, primary: cast.primary.slave, backup: cast.backup.slave, ...more });
}

describe('runChecks', () => {
  const row = (name: string, ran: string[], fail?: string): Check => ({
    name,
    run: async () => {
      ran.push(name);
      if (fail) throw new Error(fail);
      return `${name} done`;
    },
  });

  it('runs the rows in order and records each with what it saw', async () => {
    const ran: string[] = [];
    const { verdict, results } = await run([row('first', ran), row('second', ran), row('third', ran)], benchOn(guest(defaultCast)));
    expect(verdict).toBe('pass');
    expect(ran).toEqual(['first', 'second', 'third']);
    expect(results.map((r) => [r.name, r.ok, r.detail])).toEqual([
      ['first', true, 'first done'],
      ['second', true, 'second done'],
      ['third', true, 'third done'],
    ]);
  });

  it('stops at the first failing row: the verdict is fail, the row carries its detail, later rows never run', async () => {
    const ran: string[] = [];
    const { verdict, results, said } = await run([row('first', ran), row('second', ran, 'eth1 never came up'), row('third', ran)], benchOn(guest(defaultCast)));
    expect(verdict).toBe('fail');
    expect(ran).toEqual(['first', 'second']);
    expect(results.at(-1)).toMatchObject({ name: 'second', ok: false, detail: 'eth1 never came up' });
    expect(said).toContain('FAIL second: eth1 never came up');
  });

  it("times each row on the clock it is given, not the wall's", async () => {
    const probes = guest(defaultCast);
    const slow: Check = { name: 'slow', run: async () => ((probes.clock += 2500), '') };
    const { results } = await run([slow], benchOn(probes));
    expect(results[0]?.seconds).toBe(2.5);
  });
});

describe('bootFinishes', () => {
  const finish = (bootBusyFor: FakeGuestOptions['bootBusyFor'], timeoutMs = 180_000) => {
    const probes = guest(defaultCast, { bootBusyFor });
    const bench = benchOn(probes);
    bench.figures.bootToReadySeconds = 40;
    return run([bootFinishes(timeoutMs)], bench).then((outcome) => ({ ...outcome, probes, bench }));
  };

  it('waits, asking once a second, until the service says the boot has finished', async () => {
    const { verdict, results, probes, bench } = await finish(30);
    expect(verdict).toBe('pass');
    expect(probes.calls.filter((c) => c.startsWith('status'))).toHaveLength(31);
    expect(results[0]?.detail).toBe('70 s after QEMU started, 30 s after the first answer');
    expect(bench.figures.bootFinishedSeconds).toBe(70);
  });

  it('fails when the boot never finishes', async () => {
    const { verdict, results } = await finish(1000, 60_000);
    expect(verdict).toBe('fail');
    expect(results[0]?.detail).toBe('the service still says the boot goes on, 60 s after its first answer');
  });

  it('does not wait on an image that does not report it', async () => {
    const { verdict, results, probes } = await finish('not reported');
    expect(verdict).toBe('pass');
    expect(probes.calls.filter((c) => c.startsWith('status'))).toHaveLength(1);
    expect(results[0]?.detail).toMatch(/^not reported by this image/);
  });
});

describe('the failover scenario against a well-behaved bond', () => {
  it('passes every row, in the order of the table, and fills in every figure', async () => {
    const probes = guest(defaultCast, { switchMs: (n) => 100 + n });
    const bench = benchOn(probes);
    const checks = failoverChecks(defaultCast, { readyTimeoutMs: 180_000, flaps: 3 });
    const { verdict, results } = await run(checks, bench);

    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(verdict).toBe('pass');
    expect(results.map((r) => r.name)).toEqual([
      'the status service answers through the primary router',
      'the boot finishes, first-boot work included',
      'bond0 has both slaves up, eth0 active',
      'reachable through the primary router only',
      'unplug eth0 (set_link nic0 off): eth1 takes over',
      'reachable through the backup router only',
      'the failover is in the event log',
      'replug eth0 (set_link nic0 on): eth0 is active again',
      'reachable through the primary router only, again',
      'unplug eth1 (set_link nic1 off): nothing changes for traffic',
      'replug eth1 (set_link nic1 on): it is the backup again',
      'flap eth0 3 times: every switch seen and counted, the service stays up',
      'SSH answers through the primary router',
      'pull eth1 out (device_del nic1): bond0 runs on eth0 alone',
      'plug eth1 back in (device_add nic1): it is enslaved again, as the backup',
      'unplug eth0 (set_link nic0 off): the re-enslaved eth1 takes over',
      'replug eth0 (set_link nic0 on): it takes back over from the re-enslaved eth1',
    ]);
    expect(bench.figures).toEqual({
      bootToReadySeconds: 31.2,
      bootFinishedSeconds: 31.2,
      failoverMs: 101,
      failbackMs: 102,
      flaps: [
        { failoverMs: 103, failbackMs: 104 },
        { failoverMs: 105, failbackMs: 106 },
        { failoverMs: 107, failbackMs: 108 },
      ],
      reenslaveMs: 950,
      outages: [],
    });
    expect(bench.goalsMet).toEqual({ bootToReady: true, failover: true, failback: true });
    expect(bench.failovers).toBe(10);
  });

  it('maps a bond whose primary is its second slave: eth1 on nic1 is pulled, eth0 takes over', async () => {
    const cast = castOf('bond0', slaveNics({ slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth1' }));
    expect(cast).toEqual({ bond: 'bond0', primary: { slave: 'eth1', nic: 'nic1' }, backup: { slave: 'eth0', nic: 'nic0' } });
    const probes = guest(cast);
    const { verdict, results } = await run(failoverChecks(cast, { readyTimeoutMs: 180_000, flaps: 1 }), benchOn(probes, cast));
    expect(verdict).toBe('pass');
    expect(results.map((r) => r.name)).toContain('unplug eth1 (set_link nic1 off): eth0 takes over');
    expect(results.map((r) => r.name)).toContain('pull eth0 out (device_del nic0): bond0 runs on eth1 alone');
    expect(probes.calls.filter((c) => c.startsWith('setLink')).slice(0, 2)).toEqual(['setLink eth1 off', 'setLink eth1 on']);
    expect(probes.calls).toContain('unplug eth0');
  });
});

describe('the failover row', () => {
  it('takes its figure from the timed switch (set_link to the status naming the new active slave), through the new active router', async () => {
    const probes = guest(defaultCast, { switchMs: () => 420 });
    const bench = benchOn(probes);
    const { verdict, results } = await run([failover(defaultCast, { figure: 'failover' })], bench);
    expect(verdict).toBe('pass');
    expect(bench.figures.failoverMs).toBe(420);
    // A slow switch is a missed goal, not a failed check.
    expect(bench.goalsMet.failover).toBe(false);
    expect(results[0]?.detail).toBe('the service reported eth1 active 420 ms after set_link');
  });

  it('failback is the same row the other way round, with the event log asked through the primary', async () => {
    const probes = guest(defaultCast, { switchMs: () => 80 });
    const bench = benchOn(probes);
    const { results } = await run([failover(defaultCast), failback(defaultCast, { figure: 'failback', logged: true })], bench);
    expect(results.map((r) => r.ok)).toEqual([true, true]);
    expect(bench.figures).toMatchObject({ failoverMs: null, failbackMs: 80 });
    expect(results[1]?.detail).toBe('the service reported eth0 active 80 ms after set_link (link_up)');
    expect(probes.calls.at(-1)).toBe('events via eth0');
  });

  it('fails when the service does not count the switch exactly once', async () => {
    const probes = guest(defaultCast, { uncounted: [2] });
    const bench = benchOn(probes);
    const { verdict, results } = await run([failover(defaultCast), failback(defaultCast), failover(defaultCast)], bench);
    expect(verdict).toBe('fail');
    expect(results.map((r) => r.ok)).toEqual([true, false]);
    expect(results[1]?.detail).toBe('the service counts 1 failovers, expected 2');
  });
});

describe('bondProblem', () => {
  const whole = {
    name: 'bond0',
    active_slave: 'eth0',
    failovers: 0,
    slaves: [
      { name: 'eth0', mii_status: 'up' },
      { name: 'eth1', mii_status: 'up' },
    ],
  };

  it('is nothing for a whole bond, and names what is missing, down or wrongly active', () => {
    expect(bondProblem(whole, 'bond0', 'eth0', ['eth0', 'eth1'])).toBeUndefined();
    expect(bondProblem({ ...whole, slaves: whole.slaves.slice(0, 1) }, 'bond0', 'eth0', ['eth0', 'eth1'])).toBe('bond0 has no slave eth1 (enslaved: eth0)');
    expect(bondProblem({ ...whole, slaves: [whole.slaves[0]!, { name: 'eth1', mii_status: 'down' }] }, 'bond0', 'eth0', ['eth0', 'eth1'])).toBe('eth1 is down');
    expect(bondProblem({ ...whole, active_slave: 'eth1' }, 'bond0', 'eth0', ['eth0', 'eth1'])).toBe('the active slave is eth1, not eth0');
    // eth0 active by luck (it was enslaved first), but the kernel has no primary: a stack's primary setting was lost.
    expect(bondProblem({ ...whole, primary: null }, 'bond0', 'eth0', ['eth0', 'eth1'])).toBe("the kernel's primary is none, not eth0");
    expect(bondProblem({ ...whole, primary: 'eth1' }, 'bond0', 'eth0', ['eth0', 'eth1'])).toBe("the kernel's primary is eth1, not eth0");
    expect(bondProblem({ ...whole, primary: 'eth0' }, 'bond0', 'eth0', ['eth0', 'eth1'])).toBeUndefined();
    expect(bondProblem(undefined, 'bond0', 'eth0', ['eth0', 'eth1'])).toBe('no bond bond0 in the status');
  });

  it('fails the "both slaves up" row with the problem when the bond stays incomplete', async () => {
    const probes = guest(defaultCast);
    await probes.setLink('eth1', false);
    const { verdict, results } = await run(failoverChecks(defaultCast, { readyTimeoutMs: 1000, flaps: 1 }).slice(0, 3), benchOn(probes));
    expect(verdict).toBe('fail');
    expect(results.map((r) => r.ok)).toEqual([true, true, false]);
    expect(results[2]?.detail).toMatch(/^eth1 is down; the service reports \{/);
  });
});

describe('the test bed scenario', () => {
  const opts = { readyTimeoutMs: 180_000, flaps: 3, windowMs: 25_000 };

  it('measures every switch from the internet and checks what must hold: 10 switches, all logged in order, the last two after the backup was pulled out and plugged back in', async () => {
    const probes = guest(defaultCast, { outage: (n) => (n % 2 === 1 ? { inboundMs: 5712, outboundMs: 5500 } : { inboundMs: 9500, outboundMs: null }) });
    const bench = benchOn(probes);
    const { verdict, results } = await run(testbedChecks(defaultCast, opts), bench);
    expect(results.filter((r) => !r.ok)).toEqual([]);
    expect(verdict).toBe('pass');
    expect(bench.figures.outages).toHaveLength(10);
    expect(bench.figures.outages[0]).toEqual({ switch: 'failover', inboundMs: 5712, outboundMs: 5500, bondMs: 101, healAction: 'flush' });
    expect(bench.figures.outages[1]).toEqual({ switch: 'failback', inboundMs: 9500, outboundMs: null, bondMs: 102, healAction: 'flush' });
    // The bond's own switch, seen on the wire, stays as the secondary figures.
    expect([bench.figures.failoverMs, bench.figures.failbackMs]).toEqual([101, 102]);
    expect(bench.figures.flaps).toEqual([
      { failoverMs: 103, failbackMs: 104 },
      { failoverMs: 105, failbackMs: 106 },
      { failoverMs: 107, failbackMs: 108 },
    ]);
    expect(results.map((r) => r.name)).toContain('unplug eth0 and plug it back (set_link nic0 off, on): the outage seen from the internet');
    expect(results.map((r) => r.name)).toContain('flap eth0 3 times: the outage of every switch seen from the internet');
    // The switch through the re-enslaved backup proves it carries traffic: its figures are not the flaps'.
    expect(results.map((r) => r.name).slice(-3)).toEqual([
      'pull eth1 out (device_del nic1): bond0 runs on eth0 alone',
      'plug eth1 back in (device_add nic1): it is enslaved again, as the backup',
      'unplug eth0 and plug it back (set_link nic0 off, on), the re-enslaved eth1 taking over: the outage seen from the internet',
    ]);
    expect(bench.figures.reenslaveMs).not.toBeNull();
  });

  it('with strictOutage, the outage row fails on a slow or never-healing switch (today\'s image), naming each', async () => {
    const probes = guest(defaultCast, { outage: (n) => (n === 1 ? { inboundMs: 5712, outboundMs: 5500 } : { inboundMs: 120, outboundMs: n === 4 ? null : 90 }) });
    const { verdict, results } = await run(testbedChecks(defaultCast, { ...opts, strictOutageMs: 3000 }), benchOn(probes));
    expect(verdict).toBe('fail');
    expect(results.at(-1)).toMatchObject({ name: "every switch's inbound and outbound outage is at most 3 s", ok: false });
    expect(results.at(-1)?.detail).toBe(
      'over 3000 ms or never resumed: failover inbound: 1 of 5 (#1 5712 ms); failover outbound: 1 of 5 (#1 5500 ms); failback outbound: 1 of 5 (#4 never)',
    );
  });

  it('a switch pibond-heal did not heal shows why: its outcome, or that no heal was recorded for it', async () => {
    const heal = (n: number) =>
      n === 3 ? { heal_ms: null, heal_action: 'flush', heal_outcome: 'superseded' } : n === 4 ? { heal_ms: null } : { heal_ms: 50, heal_action: 'reuse', heal_outcome: 'healed' };
    const bench = benchOn(guest(defaultCast, { heal }));
    const { results } = await run(testbedChecks(defaultCast, opts), bench);
    expect(bench.figures.outages.slice(0, 5).map((o) => [o.healAction, o.healOutcome])).toEqual([
      ['reuse', undefined],
      ['reuse', undefined],
      [null, 'superseded'],
      [null, null],
      ['reuse', undefined],
    ]);
    expect(results.find((r) => r.name.startsWith('flap eth0'))?.detail).toMatch(/healed by -\(superseded\) -\(none recorded\) reuse reuse reuse reuse$/);
  });

  it('pibond-uplink moving the primary while only the cable flaps fails the flap row; decisions made before it do not', async () => {
    const moved = await run(testbedChecks(defaultCast, opts), benchOn(guest(defaultCast, { uplinkDecisions: (n) => (n >= 5 ? 2 : 0) })));
    expect(moved.results.find((r) => r.name.startsWith('flap eth0'))).toMatchObject({ ok: false, detail: expect.stringMatching(/^pibond-uplink moved the bond's primary 2 times while only eth0's cable moved/) });
    const earlier = await run(testbedChecks(defaultCast, opts), benchOn(guest(defaultCast, { uplinkDecisions: () => 4 })));
    expect(earlier.results.filter((r) => !r.ok)).toEqual([]);
    expect(earlier.results.find((r) => r.name.startsWith('flap eth0'))?.detail).toMatch(/; pibond-uplink's failed rounds meanwhile: eth0 0, eth1 0$/);
  });

  it('with strictOutage and a healing image, every row passes', async () => {
    const { verdict } = await run(testbedChecks(defaultCast, { ...opts, strictOutageMs: 3000 }), benchOn(guest(defaultCast)));
    expect(verdict).toBe('pass');
  });

  it('the outbound pinger is a test boot\'s kernel arguments: multi-user as usual, plus a ping loop in a service of its own, which never stops the machine nor keeps its boot from finishing', () => {
    expect(outboundPinger('192.0.2.2')).toBe(
      `systemd.unit=multi-user.target systemd.wants=kernel-command-line.service systemd.run="/usr/bin/systemd-run --quiet --unit=pibond-test-pinger /bin/sh -c 'while :; do /usr/bin/ping -n -q -i 0.02 192.0.2.2; sleep 1; done'" systemd.run_success_action=none systemd.run_failure_action=none`,
    );
  });
});
