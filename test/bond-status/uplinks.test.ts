/**
 * Uplink tracking from pibond-uplink.service's file: each uplink's state and the decisions that moved
 * the bond's primary show in /api/status, /metrics, the event stream, the page and the terminal, and
 * the failover a decision caused carries its reason. The file is another process's: missing, broken
 * or odd content is "no uplink tracking" or a record left out, never an error.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { DecisionRecord, UplinksFile } from '../../overlays/16-bond-uplink/src/report.ts';
import { silentJournal, type Journal } from '../../overlays/20-bond-status/src/journal.ts';
import { renderMetrics } from '../../overlays/20-bond-status/src/metrics.ts';
import { BondMonitor } from '../../overlays/20-bond-status/src/monitor.ts';
import { page } from '../../overlays/20-bond-status/src/page.ts';
import { readBonds } from '../../overlays/20-bond-status/src/read-bonds.ts';
import { startService } from '../../overlays/20-bond-status/src/service.ts';
import { statusDocument, type StatusDocument } from '../../overlays/20-bond-status/src/status.ts';
import { formatStatus } from '../../overlays/20-bond-status/src/terminal.ts';
import { explainActiveSlave, uplinkCells, type ActiveSlaveInput, type UplinkSummaryInput } from '../../overlays/20-bond-status/src/uplink-summary.ts';
import { readUplinks, uplinksFile, uplinksReader, type UplinkEvent } from '../../overlays/20-bond-status/src/uplinks.ts';
import { json, openEventStream } from './_http-client.ts';
import { eth0, eth1, healthyBond, makeFakeRoot, makeFifo, waitFor, writeBonds, type FakeBond } from './fake-root.ts';

function fixture(name: 'starting' | 'primary-line-down'): UplinksFile {
  return JSON.parse(readFileSync(join(import.meta.dirname, `fixtures/uplinks/${name}.json`), 'utf8')) as UplinksFile;
}

/** As pibond-uplink writes it: a temporary file renamed into place. */
function writeUplinks(root: string, content: unknown): void {
  const path = join(root, uplinksFile);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(`${path}.tmp`, typeof content === 'string' ? content : JSON.stringify(content, null, 2));
  renameSync(`${path}.tmp`, path);
}

function decision(time: Date, over: Partial<DecisionRecord> = {}): DecisionRecord {
  return { time: time.toISOString(), reason: 'primary_uplink_down', from: 'eth0', to: 'eth1', detail: 'eth0: 3 rounds without an answer from 1.1.1.1', ...over };
}

/** primary-line-down.json with these decisions, counted. */
function withDecisions(decisions: DecisionRecord[]): UplinksFile {
  return { ...fixture('primary-line-down'), decisions, decision_counts: { primary_uplink_down: decisions.length } };
}

/** pibond-uplink made eth1 the bond's primary and the kernel switched at once, both links up. */
const movedToEth1: FakeBond = { ...healthyBond, primary: 'eth1', active: 'eth1' };
/** eth0's cable pulled: the kernel's own switch. */
const eth0Down: FakeBond = { ...healthyBond, active: 'eth1', slaves: [{ ...eth0, mii: 'down', failures: 1 }, eth1] };

describe('the uplinks file', () => {
  it('reads every field pibond-uplink writes', () => {
    const root = makeFakeRoot();
    writeUplinks(root, fixture('primary-line-down'));
    expect(readUplinks(root)).toEqual(fixture('primary-line-down'));
  });

  it('copies only the fields it knows', () => {
    const root = makeFakeRoot();
    const file = fixture('starting');
    const [up, unknown] = file.uplinks;
    writeUplinks(root, { ...file, token: 'secret', uplinks: [{ ...up, router: { ...up?.router, vendor: 'x' }, extra: 1 }, unknown] });
    expect(readUplinks(root)).toEqual(file);
  });

  it.each([
    ['missing', null],
    ['empty', ''],
    ['not JSON', '{"bond": "bond0", '],
    ['a list', []],
    ['a bond name with a space', { bond: 'bond 0' }],
    ['an unknown reason', { reason: 'gut_feeling' }],
    ['an IPv6 target', { targets: ['1.1.1.1', '::1'] }],
    ['no time of update', { updated: 'soon' }],
    ['no list of uplinks', { uplinks: {} }],
    ['17 uplinks', { uplinks: Array.from({ length: 17 }, () => fixture('starting').uplinks[0]) }],
    ['no decisions', { decisions: null }],
    ['no decision counts', { decision_counts: undefined }],
  ])('a file that is %s is no uplink tracking', (_what, content) => {
    const root = makeFakeRoot();
    if (content !== null) writeUplinks(root, typeof content === 'string' || Array.isArray(content) ? content : { ...fixture('starting'), ...content });
    expect(readUplinks(root)).toBeNull();
  });

  it('leaves out the records that do not check out, and shows the rest', () => {
    const root = makeFakeRoot();
    const file = fixture('primary-line-down');
    const [down, up] = file.uplinks;
    if (!down || !up) throw new Error('fixture without two uplinks');
    const good = decision(new Date('2026-11-25T10:00:03.514Z'));
    writeUplinks(root, {
      ...file,
      uplinks: [
        down,
        { ...up, state: 'sideways' },
        { ...up, router: { ...up.router, mac: 'zz:zz' } },
        { ...up, targets: [{ address: '1.1.1.1', rtt_ms: -1 }] },
        { ...up, slave: 'eth1/../x' },
      ],
      decisions: [{ ...good, reason: 'whim' }, { ...good, time: 'soon' }, { ...good, to: null }, good, 7],
      decision_counts: { whim: 3, primary_back: -1, primary_healthy: 2.5, primary_uplink_down: 4 },
      probe_bytes: { eth0: 100, eth1: 200, eth9: 300 },
    });
    expect(readUplinks(root)).toEqual({ ...file, uplinks: [down], decisions: [good], decision_counts: { primary_uplink_down: 4 }, probe_bytes: { eth0: 100 } });
  });

  it('refuses a file over 32 KiB, and a FIFO without waiting on it', () => {
    const root = makeFakeRoot();
    const many = Array.from({ length: 200 }, (_, i) => decision(new Date(Date.UTC(2026, 10, 25, 10, 0, i)), { detail: 'x'.repeat(100) }));
    writeUplinks(root, withDecisions(many));
    expect(readUplinks(root)).toBeNull();
    makeFifo(root, uplinksFile);
    expect(readUplinks(root)).toBeNull();
  });

  it('reads UTF-8 text as such', () => {
    const root = makeFakeRoot();
    const detail = 'eth0: the router answers, 1.1.1.1 does not – 3 rounds';
    writeUplinks(root, withDecisions([decision(new Date('2026-11-25T10:00:03.514Z'), { detail })]));
    expect(readUplinks(root)?.decisions[0]?.detail).toBe(detail);
  });

  it('the monitor\'s reader parses the file again only when it changed', () => {
    const root = makeFakeRoot();
    const read = uplinksReader(root);
    expect(read()).toBeNull();
    writeUplinks(root, fixture('starting'));
    const first = read();
    expect(first).toEqual(fixture('starting'));
    expect(read()).toBe(first);
    writeUplinks(root, fixture('primary-line-down'));
    expect(read()?.reason).toBe('primary_uplink_down');
  });

  it('the service\'s reader looks at the file at most every everyMs: a 50 ms poll need not read it each time', async () => {
    const root = makeFakeRoot();
    writeUplinks(root, fixture('starting'));
    const read = uplinksReader(root, 200);
    expect(read()?.reason).toBe(fixture('starting').reason);
    writeUplinks(root, fixture('primary-line-down'));
    expect(read()?.reason, 'read again too soon: the last reading').toBe(fixture('starting').reason);
    await new Promise((resolve) => setTimeout(resolve, 250));
    expect(read()?.reason).toBe('primary_uplink_down');
  });
});

describe('uplinks in /api/status', () => {
  it('is null for every bond without uplink tracking, and for a bond the file is not about', () => {
    const root = makeFakeRoot([healthyBond, { ...healthyBond, name: 'bond1' }]);
    const monitor = new BondMonitor({ root, journal: silentJournal });
    expect(statusDocument(monitor).bonds.map((b) => [b.name, b.uplinks])).toEqual([['bond0', null], ['bond1', null]]);
    writeUplinks(root, fixture('primary-line-down'));
    monitor.poll();
    expect(statusDocument(monitor).bonds.map((b) => [b.name, b.uplinks?.preferred ?? null])).toEqual([['bond0', 'eth1'], ['bond1', null]]);
  });

  it('shows the report as checked, with its last 10 decisions', async () => {
    const root = makeFakeRoot([movedToEth1]);
    const many = Array.from({ length: 30 }, (_, i) => decision(new Date(Date.UTC(2026, 10, 25, 10, 0, i)), { reason: i % 2 === 0 ? 'primary_uplink_down' : 'primary_back', to: i % 2 === 0 ? 'eth1' : 'eth0' }));
    writeUplinks(root, { ...fixture('primary-line-down'), decisions: many });
    const service = await startService({ root, listen: '127.0.0.1', port: 0, journal: silentJournal });
    onTestFinished(() => service.close());
    const [bond] = (await json<StatusDocument>(`${service.url}/api/status`)).bonds;
    expect(bond?.uplinks).toEqual({ ...fixture('primary-line-down'), decisions: many.slice(-10) });
    // What was there already stays as it was.
    expect(bond).toMatchObject({ name: 'bond0', active_slave: 'eth1', primary: 'eth1', failovers: 0, last_heal: null });
  });

  it('goes back to null when the file goes away or breaks', () => {
    const root = makeFakeRoot();
    writeUplinks(root, fixture('starting'));
    const monitor = new BondMonitor({ root, journal: silentJournal });
    expect(monitor.uplinks('bond0')?.reason).toBe('primary_healthy');
    writeUplinks(root, '{"bond": "bond0"');
    monitor.poll();
    expect(monitor.uplinks('bond0')).toBeNull();
  });
});

describe('uplinks in /metrics', () => {
  it('has each uplink\'s state, round-trip times, probe bytes and the decisions by reason', () => {
    const root = makeFakeRoot([movedToEth1]);
    writeUplinks(root, fixture('primary-line-down'));
    const metrics = renderMetrics(new BondMonitor({ root, journal: silentJournal }));
    for (const lines of [
      [
        "# HELP pibond_uplink_up Whether the slave's uplink is up (1) or down (0), as pibond-uplink tracks it through that slave; absent while unknown.",
        '# TYPE pibond_uplink_up gauge',
        'pibond_uplink_up{bond="bond0",slave="eth0"} 0',
        'pibond_uplink_up{bond="bond0",slave="eth1"} 1',
      ],
      [
        '# TYPE pibond_uplink_probe_rtt_seconds gauge',
        // Only the answers: eth0's targets and eth1's 9.9.9.9 did not.
        'pibond_uplink_probe_rtt_seconds{bond="bond0",slave="eth1",target="1.1.1.1"} 0.0125',
        'pibond_uplink_probe_rtt_seconds{bond="bond0",slave="eth1",target="8.8.8.8"} 0.01406',
      ],
      [
        '# TYPE pibond_uplink_router_rtt_seconds gauge',
        'pibond_uplink_router_rtt_seconds{bond="bond0",slave="eth0"} 0.00084',
        'pibond_uplink_router_rtt_seconds{bond="bond0",slave="eth1"} 0.00127',
      ],
      [
        '# TYPE pibond_uplink_decisions_total counter',
        'pibond_uplink_decisions_total{bond="bond0",reason="primary_healthy"} 0',
        'pibond_uplink_decisions_total{bond="bond0",reason="primary_uplink_down"} 1',
        'pibond_uplink_decisions_total{bond="bond0",reason="all_uplinks_down"} 0',
        'pibond_uplink_decisions_total{bond="bond0",reason="primary_back"} 0',
      ],
      [
        '# TYPE pibond_uplink_probe_bytes_total counter',
        'pibond_uplink_probe_bytes_total{bond="bond0",slave="eth0"} 104832',
        'pibond_uplink_probe_bytes_total{bond="bond0",slave="eth1"} 98304',
      ],
    ]) {
      expect(metrics).toContain(`${lines.join('\n')}\n`);
    }
    const declared = new Set([...metrics.matchAll(/^# TYPE (\S+) (gauge|counter)$/gm)].map((m) => m[1]));
    for (const line of metrics.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-z_]+\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\} \d+(\.\d+)?$/);
      expect(declared.has(line.slice(0, line.indexOf('{')))).toBe(true);
    }
  });

  it('has no sample for an uplink whose state is unknown, nor for an answer that never came', () => {
    const root = makeFakeRoot();
    writeUplinks(root, fixture('starting'));
    const samples = renderMetrics(new BondMonitor({ root, journal: silentJournal }))
      .split('\n')
      .filter((line) => line.startsWith('pibond_uplink_') && !line.startsWith('pibond_uplink_decisions_total'));
    expect(samples).toEqual([
      'pibond_uplink_up{bond="bond0",slave="eth0"} 1',
      'pibond_uplink_probe_rtt_seconds{bond="bond0",slave="eth0",target="1.1.1.1"} 0.0112',
      'pibond_uplink_probe_rtt_seconds{bond="bond0",slave="eth0",target="8.8.8.8"} 0.0139',
      'pibond_uplink_router_rtt_seconds{bond="bond0",slave="eth0"} 0.00061',
      'pibond_uplink_probe_bytes_total{bond="bond0",slave="eth0"} 420',
    ]);
  });

  it('declares the families without samples when there is no uplink tracking', () => {
    const metrics = renderMetrics(new BondMonitor({ root: makeFakeRoot(), journal: silentJournal }));
    expect(metrics).toContain('# TYPE pibond_uplink_up gauge\n');
    expect(metrics).not.toMatch(/^pibond_uplink_/m);
  });
});

describe('uplink events', () => {
  it('announces each uplink that changes state and each new decision, not what the file held at start', () => {
    const root = makeFakeRoot();
    writeUplinks(root, fixture('starting'));
    const monitor = new BondMonitor({ root, journal: silentJournal });
    const announced: UplinkEvent[] = [];
    monitor.onUplink((event) => announced.push(event));
    monitor.poll();
    expect(announced).toEqual([]);

    writeUplinks(root, fixture('primary-line-down'));
    monitor.poll();
    monitor.poll();
    expect(announced).toEqual([
      { type: 'uplink', bond: 'bond0', slave: 'eth0', state: 'down', previous: 'up', cause: 'line', note: null, since: '2026-11-25T10:00:03.512Z' },
      { type: 'uplink', bond: 'bond0', slave: 'eth1', state: 'up', previous: 'unknown', cause: null, note: null, since: '2026-11-25T09:54:21.100Z' },
      { type: 'decision', bond: 'bond0', time: '2026-11-25T10:00:03.514Z', reason: 'primary_uplink_down', from: 'eth0', to: 'eth1', detail: 'eth0: 3 rounds without an answer from 1.1.1.1, 8.8.8.8, 9.9.9.9' },
    ]);
  });

  it('a file that went away and came back is compared with what it said last', () => {
    const root = makeFakeRoot();
    writeUplinks(root, fixture('starting'));
    const monitor = new BondMonitor({ root, journal: silentJournal });
    const announced: UplinkEvent[] = [];
    monitor.onUplink((event) => announced.push(event));
    writeUplinks(root, 'not JSON');
    monitor.poll();
    writeUplinks(root, fixture('starting'));
    monitor.poll();
    expect(announced).toEqual([]);
  });

  it('are sent on the event stream as `uplink` and `decision`', async () => {
    const root = makeFakeRoot();
    writeUplinks(root, fixture('starting'));
    const service = await startService({ root, listen: '127.0.0.1', port: 0, journal: silentJournal });
    onTestFinished(() => service.close());
    const stream = await openEventStream(`${service.url}/api/events/stream`);
    onTestFinished(() => stream.close());

    writeUplinks(root, fixture('primary-line-down'));
    const events = await waitFor('three events on the stream', () => (stream.events.length >= 3 ? stream.events : undefined));
    expect(events.map((e) => [e.event, (JSON.parse(e.data) as UplinkEvent).type])).toEqual([
      ['uplink', 'uplink'],
      ['uplink', 'uplink'],
      ['decision', 'decision'],
    ]);
    expect(JSON.parse(events[2]?.data ?? '')).toMatchObject({ bond: 'bond0', reason: 'primary_uplink_down', from: 'eth0', to: 'eth1' });
  });
});

describe('the failover pibond-uplink made carries its reason', () => {
  function recordingJournal(): { journal: Journal; lines: string[] } {
    const lines: string[] = [];
    const keep = (message: string) => void lines.push(message);
    return { journal: { error: keep, warning: keep, notice: keep, info: keep }, lines };
  }

  it('when the decision was read first', () => {
    const root = makeFakeRoot([healthyBond]);
    const { journal, lines } = recordingJournal();
    const monitor = new BondMonitor({ root, journal });
    writeUplinks(root, withDecisions([decision(new Date())]));
    monitor.poll();
    writeBonds(root, [movedToEth1]);
    const [event] = monitor.poll();
    expect(event).toMatchObject({ from: 'eth0', to: 'eth1', cause: 'manual', reason: 'primary_uplink_down' });
    expect(lines).toContain('bond0: failover from eth0 to eth1 (manual, uplinks: primary_uplink_down)');
  });

  it('when the failover was seen first: the decision read after gives the event its reason', () => {
    const root = makeFakeRoot([healthyBond]);
    const monitor = new BondMonitor({ root, journal: silentJournal });
    writeBonds(root, [movedToEth1]);
    const [event] = monitor.poll();
    expect(event?.reason).toBeUndefined();
    writeUplinks(root, withDecisions([decision(new Date(Date.parse(event?.time ?? '') - 40))]));
    monitor.poll();
    expect(monitor.recentEvents().map((e) => [e.to, e.cause, e.reason])).toEqual([['eth1', 'manual', 'primary_uplink_down']]);
    expect(monitor.history('bond0').lastFailover?.reason).toBe('primary_uplink_down');
  });

  it.each([
    ['the kernel switched for a link', eth0Down, decision(new Date())],
    ['the decision is 10 s old', movedToEth1, decision(new Date(Date.now() - 10_000))],
    ['the decision moved the primary to another slave', movedToEth1, decision(new Date(), { reason: 'primary_back', from: 'eth1', to: 'eth0' })],
  ])('not when %s', (_what, bond, made) => {
    const root = makeFakeRoot([healthyBond]);
    const monitor = new BondMonitor({ root, journal: silentJournal });
    writeUplinks(root, withDecisions([made]));
    writeBonds(root, [bond]);
    const [event] = monitor.poll();
    expect(event?.to).toBe('eth1');
    expect(event?.reason).toBeUndefined();
  });

  it('a decision gives its reason to one failover only', () => {
    const root = makeFakeRoot([healthyBond]);
    const monitor = new BondMonitor({ root, journal: silentJournal });
    writeUplinks(root, withDecisions([decision(new Date())]));
    writeBonds(root, [movedToEth1]);
    monitor.poll();
    // Someone moves it back and forth by hand within the window: those switches are theirs.
    writeBonds(root, [{ ...movedToEth1, active: 'eth0' }]);
    monitor.poll();
    writeBonds(root, [movedToEth1]);
    monitor.poll();
    expect(monitor.recentEvents().map((e) => [e.to, e.reason ?? null])).toEqual([
      ['eth1', 'primary_uplink_down'],
      ['eth0', null],
      ['eth1', null],
    ]);
  });
});

describe('uplinks on the page and in the terminal', () => {
  it('the terminal says why the active slave is what it is, and prints a row per uplink', () => {
    const root = makeFakeRoot([movedToEth1]);
    const text = formatStatus(readBonds(root).readings, { url: 'http://127.0.0.1:9', status: null, events: null }, null, fixture('primary-line-down'));
    expect(text).toContain('  active slave: eth1    primary: eth1 (reselect always)\n  why: eth1 is active: the uplink of the primary, eth0, is down (eth0: 3 rounds without an answer from 1.1.1.1, 8.8.8.8, 9.9.9.9)\n');
    expect(text).toContain('  uplinks (pibond-uplink, targets 1.1.1.1, 8.8.8.8, 9.9.9.9):\n');
    expect(text).toMatch(/^ {4}SLAVE +UPLINK +ROUTER +TARGETS +NOTE$/m);
    expect(text).toMatch(/^ {4}eth0 +DOWN \(the router answers, the internet does not\) +0\.84 ms +0 of 3 answered$/m);
    expect(text).toMatch(/^ {4}eth1 +up +1\.27 ms +2 of 3 answered$/m);
  });

  it('the terminal prints nothing of uplinks without uplink tracking, or for another bond', () => {
    const readings = readBonds(makeFakeRoot()).readings;
    const service = { url: 'http://127.0.0.1:9', status: null, events: null };
    for (const uplinks of [null, { ...fixture('starting'), bond: 'bond7' }]) {
      const text = formatStatus(readings, service, null, uplinks);
      expect(text).not.toContain('why:');
      expect(text).not.toContain('uplinks');
    }
  });

  it('the page uses the terminal\'s words, and they stand alone as the page runs them', () => {
    expect(page).toContain(`const uplinkCells = ${uplinkCells.toString()};`);
    expect(page).toContain(`const explainActiveSlave = ${explainActiveSlave.toString()};`);
    expect(page).toContain('stream.addEventListener("decision"');
    const cells = runInNewContext(`(${uplinkCells.toString()})`) as typeof uplinkCells;
    const explain = runInNewContext(`(${explainActiveSlave.toString()})`) as typeof explainActiveSlave;
    const file = fixture('primary-line-down');
    expect(cells(file.uplinks[1] as UplinkSummaryInput)).toEqual(['eth1', 'up', '1.27 ms', '2 of 3 answered', '']);
    expect(explain({ active_slave: 'eth1', slaves: [], uplinks: file })).toBe(
      'eth1 is active: the uplink of the primary, eth0, is down (eth0: 3 rounds without an answer from 1.1.1.1, 8.8.8.8, 9.9.9.9)',
    );
  });
});

describe('uplinkCells', () => {
  const uplink = fixture('primary-line-down').uplinks[0] as UplinkSummaryInput;
  it.each<[string, UplinkSummaryInput, string[]]>([
    ['down, the line', uplink, ['eth0', 'DOWN (the router answers, the internet does not)', '0.84 ms', '0 of 3 answered', '']],
    ['down, the router', { ...uplink, cause: 'router', router: { rtt_ms: null } }, ['eth0', 'DOWN (the router does not answer)', 'no answer', '0 of 3 answered', '']],
    ['not probed yet', { ...uplink, state: 'unknown', cause: null, last_round: null, note: 'no carrier' }, ['eth0', 'unknown', 'not probed yet', '-', 'no carrier']],
  ])('%s', (_what, input, cells) => {
    expect(uplinkCells(input)).toEqual(cells);
  });
});

describe('explainActiveSlave', () => {
  const tracking = (over: Partial<NonNullable<ActiveSlaveInput['uplinks']>> = {}): ActiveSlaveInput['uplinks'] => ({ primary: 'eth0', preferred: 'eth0', reason: 'primary_healthy', decisions: [], ...over });
  const links = [
    { name: 'eth0', mii_status: 'up' },
    { name: 'eth1', mii_status: 'up' },
  ];
  it.each<[string, ActiveSlaveInput, string | null]>([
    ['no uplink tracking', { active_slave: 'eth0', slaves: links, uplinks: null }, null],
    ['the primary is healthy', { active_slave: 'eth0', slaves: links, uplinks: tracking() }, "eth0 is active: the primary's uplink is not down"],
    [
      'the primary is back',
      { active_slave: 'eth0', slaves: links, uplinks: tracking({ reason: 'primary_back', decisions: [{ reason: 'primary_back', to: 'eth0', detail: 'eth0: 10 good rounds' }] }) },
      "eth0 is active: the primary's uplink is healthy again (eth0: 10 good rounds)",
    ],
    [
      'every uplink is down',
      { active_slave: 'eth0', slaves: links, uplinks: tracking({ reason: 'all_uplinks_down' }) },
      'eth0 is active: every uplink is down, so the bond stays on the primary',
    ],
    [
      'the preferred slave has no link',
      { active_slave: 'eth1', slaves: [{ name: 'eth0', mii_status: 'down' }, links[1] ?? { name: 'eth1', mii_status: 'up' }], uplinks: tracking() },
      'eth1 is active: eth0 is preferred but its link is down',
    ],
    ['the bond has not switched yet', { active_slave: 'eth0', slaves: links, uplinks: tracking({ preferred: 'eth1', reason: 'primary_uplink_down' }) }, 'eth0 is active, eth1 is preferred: the bond has not switched (yet)'],
    ['no slave is active', { active_slave: null, slaves: links, uplinks: tracking() }, 'no slave is active: no link is up'],
  ])('%s', (_what, bond, words) => {
    expect(explainActiveSlave(bond)).toBe(words);
  });
});
