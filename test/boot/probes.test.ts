import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { timedSwitch } from '../../scripts/boot/probes.ts';
import type { Status } from '../../scripts/boot/status-api.ts';

const answer = (active: string): Status => ({ uptime_seconds: 60, bonds: [{ name: 'bond0', active_slave: active, failovers: 1 }] });
const switchedTo = (active: string) => (status: Status) => status.bonds[0]?.active_slave === active;

describe('timedSwitch', () => {
  beforeEach(() => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval', 'setTimeout', 'clearTimeout', 'performance'] });
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  it('measures from the change to the first answer naming the new active slave, asking every 15 ms', async () => {
    let changedAt: number | undefined;
    const asked: number[] = [];
    const switching = timedSwitch({
      change: async () => void (changedAt = performance.now()),
      // The guest switches 100 ms after set_link: before that, the old path's answers still name eth0.
      ask: async () => (asked.push(performance.now() - (changedAt ?? 0)), answer(performance.now() - (changedAt ?? 0) >= 100 ? 'eth1' : 'eth0')),
      switched: switchedTo('eth1'),
      what: 'no switch',
    });
    await vi.advanceTimersByTimeAsync(500);
    await expect(switching).resolves.toMatchObject({ ms: 105 });
    expect(asked).toEqual([15, 30, 45, 60, 75, 90, 105]);
  });

  it('keeps at most 16 requests in flight, and lets later ones live longer', async () => {
    const lives: number[] = [];
    let inFlight = 0;
    let most = 0;
    const pending: (() => void)[] = [];
    const switching = timedSwitch({
      change: async () => undefined,
      ask: (life) => {
        lives.push(life);
        most = Math.max(most, ++inFlight);
        // Dropped by the bond: nothing comes back until the request's life is over.
        return new Promise((_, reject) => pending.push(() => (inFlight--, reject(new Error('timeout')))));
      },
      switched: switchedTo('eth1'),
      what: 'the service did not report eth1 active within 30 s',
    });
    const outcome = switching.catch((err: Error) => err);
    await vi.advanceTimersByTimeAsync(1000);
    expect(most).toBe(16);
    expect(lives).toHaveLength(16);
    pending.splice(0).forEach((drop) => drop());
    await vi.advanceTimersByTimeAsync(1000);
    expect(lives.at(-1)).toBeGreaterThan(250);
    expect(lives.every((life) => life <= 3000)).toBe(true);
    pending.splice(0).forEach((drop) => drop());
    await vi.advanceTimersByTimeAsync(30_000);
    pending.splice(0).forEach((drop) => drop());
    await expect(outcome).resolves.toMatchObject({ message: expect.stringMatching(/^the service did not report eth1 active within 30 s \(\d+ requests, not one answered\)$/) });
  });

  it('stops asking when the caller aborts, with the caller’s reason', async () => {
    const stop = new AbortController();
    let asks = 0;
    const switching = timedSwitch({
      change: async () => undefined,
      ask: async () => (asks++, answer('eth0')),
      switched: switchedTo('eth1'),
      what: 'no switch',
      signal: stop.signal,
    });
    const outcome = switching.catch((err: Error) => err);
    await vi.advanceTimersByTimeAsync(100);
    stop.abort(new Error('interrupted'));
    await expect(outcome).resolves.toMatchObject({ message: 'interrupted' });
    const seen = asks;
    await vi.advanceTimersByTimeAsync(1000);
    expect(asks).toBe(seen);
  });
});
