/** The outside figures: how a switch's outage is read from the prober's record, and summed up. */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseRouters } from '../../scripts/boot/cli.ts';
import { recipeDir } from '../../scripts/builder/builder-image.ts';
import { outageTable, summarise } from '../../scripts/boot/report.ts';
import { testbedPackages } from '../../scripts/boot/testbed/index.ts';
import { type Recording, outageOf } from '../../scripts/boot/testbed/prober.ts';

/** Pings every 20 ms from `from` to `to` (ms), through `via`. */
const pings = (from: number, to: number, via: string) => Array.from({ length: Math.floor((to - from) / 20) + 1 }, (_, i) => ({ at: from + 20 * i, via }));

const t0 = 1_000_000;

function record(more: Partial<Recording>): Recording {
  return { started: t0 - 1000, now: t0 + 30_000, inbound: { main: [], backup: [] }, outbound: [], ...more };
}

describe('outageOf', () => {
  it('inbound: from the change to the first connection answered through the new router', () => {
    const r = record({ inbound: { main: [t0 - 40, t0 - 20], backup: [t0 - 500, t0 + 5712.4, t0 + 5732] } });
    expect(outageOf(r, t0, 'backup', '203.0.113.2').inboundMs).toBe(5712);
  });

  it('outbound: the longest silence from the last ping before the change to the first through the new router', () => {
    // Two pings still get out through the old router after the change; then 5.5 s of silence.
    const outbound = [...pings(t0 - 200, t0 + 40, 'main'), ...pings(t0 + 5540, t0 + 6000, 'backup')];
    expect(outageOf(record({ outbound }), t0, 'backup', '203.0.113.2').outboundMs).toBe(5500);
  });

  it('a direction that did not resume through the new router within the window is null', () => {
    const r = record({ inbound: { main: [t0 + 100], backup: [t0 + 26_000] }, outbound: pings(t0 - 100, t0 + 20_000, 'main') });
    expect(outageOf(r, t0, 'backup', '203.0.113.2', t0 + 25_000)).toEqual({ inboundMs: null, outboundMs: null });
  });

  it("the bond's own switch: from the change to the Pi's first frame into the new router's LAN", () => {
    const lan = [...pings(t0 - 100, t0, 'main'), ...pings(t0 + 212, t0 + 400, 'backup')];
    expect(outageOf(record({ lan }), t0, 'backup', '203.0.113.2').bondMs).toBe(212);
    expect(outageOf(record({}), t0, 'backup', '203.0.113.2').bondMs).toBeUndefined();
  });

  it('no ping before the change (the old path was already dead): the silence counts from the change', () => {
    const r = record({ outbound: pings(t0 + 300, t0 + 400, 'main') });
    expect(outageOf(r, t0, 'main', '198.51.100.2').outboundMs).toBe(300);
  });
});

describe('summarise and outageTable', () => {
  it('median and worst; a switch that never resumed is the worst of all', () => {
    expect(summarise([300, 100, 200])).toEqual({ median: 200, worst: 300, never: 0 });
    expect(summarise([300, null, 100])).toEqual({ median: 300, worst: null, never: 1 });
    expect(summarise([])).toEqual({ median: null, worst: null, never: 0 });
  });

  it('one row per direction and kind of switch', () => {
    const rows = outageTable([
      { switch: 'failover', inboundMs: 5700, outboundMs: 5500 },
      { switch: 'failback', inboundMs: 9500, outboundMs: null },
    ]);
    expect(rows.map((r) => [r.direction, r.switch, r.median, r.worst, r.never])).toEqual([
      ['inbound', 'failover', 5700, 5700, 0],
      ['inbound', 'failback', 9500, 9500, 0],
      ['outbound', 'failover', 5500, 5500, 0],
      ['outbound', 'failback', null, null, 1],
    ]);
  });
});

describe('the builder recipe', () => {
  it('installs every package the test bed needs, so a test boot needs no other image', async () => {
    const dockerfile = await readFile(join(recipeDir, 'Dockerfile'), 'utf8');
    const words = new Set(dockerfile.split(/[\s\\;]+/));
    expect(testbedPackages.filter((p) => !words.has(p))).toEqual([]);
  });
});

describe('--routers', () => {
  it('is user, or the test bed in one of its layouts', () => {
    expect(parseRouters('user')).toEqual({ kind: 'user' });
    expect(parseRouters('testbed:same-subnet')).toEqual({ kind: 'testbed', layout: 'same-subnet' });
    expect(parseRouters('testbed:different-subnets')).toEqual({ kind: 'testbed', layout: 'different-subnets' });
    expect(() => parseRouters('testbed:mesh')).toThrow('--routers must be user or one of testbed:same-subnet, testbed:different-subnets, got "testbed:mesh"');
  });
});
