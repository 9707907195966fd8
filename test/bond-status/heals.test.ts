/**
 * Heal times from pibond-heal.service's file: failover events carry heal_ms once it is known, and the
 * status document, metrics and event stream show the last heal. The file is another process's:
 * missing, broken or odd records are "nothing known", never an error.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { HealRecord } from '../../overlays/15-bond-heal/src/healer.ts';
import { healsFile, readHeals } from '../../overlays/20-bond-status/src/heals.ts';
import { silentJournal } from '../../overlays/20-bond-status/src/journal.ts';
import { renderMetrics } from '../../overlays/20-bond-status/src/metrics.ts';
import type { FailoverEvent } from '../../overlays/20-bond-status/src/failover.ts';
import { BondMonitor } from '../../overlays/20-bond-status/src/monitor.ts';
import { statusDocument } from '../../overlays/20-bond-status/src/status.ts';
import { eth0, eth1, healthyBond, makeFakeRoot, writeBonds } from './fake-root.ts';

function writeHeals(root: string, content: unknown): void {
  const path = join(root, healsFile);
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
}

function heal(time: string, over: Partial<HealRecord> = {}): HealRecord {
  return { bond: 'bond0', time, to: 'eth1', action: 'flush', outcome: 'healed', gateway: '192.168.1.1', heal_ms: 37, ...over };
}

const down = { ...healthyBond, active: 'eth1', slaves: [{ ...eth0, mii: 'down' as const }, eth1] };

describe('heal times', () => {
  it('the failover event gets heal_ms once the heal unit records it; status and metrics show the last heal', () => {
    const root = makeFakeRoot([healthyBond]);
    const monitor = new BondMonitor({ root, journal: silentJournal });
    const announced: [number | null | undefined, HealRecord][] = [];
    monitor.onHeal((event, h) => announced.push([event?.heal_ms, h]));
    writeBonds(root, [down]);
    const [event] = monitor.poll();
    expect(event).toMatchObject({ from: 'eth0', to: 'eth1', heal_ms: null });
    expect(renderMetrics(monitor)).not.toContain('pibond_bond_last_heal_seconds{');

    const record = heal(new Date(Date.parse(event?.time ?? '') - 30).toISOString(), { action: 'renew', heal_ms: 812, gateway: '192.168.8.1' });
    writeHeals(root, { heals: [record] });
    monitor.poll();
    monitor.poll();
    expect(monitor.recentEvents()).toEqual([expect.objectContaining({ to: 'eth1', heal_ms: 812, heal_action: 'renew' })]);
    expect(announced).toEqual([[812, record]]);
    expect(statusDocument(monitor).bonds[0]?.last_heal).toEqual(record);
    expect(renderMetrics(monitor)).toContain('pibond_bond_last_heal_seconds{master="bond0"} 0.812\n');
  });

  it('matches a heal to the failover of the same slave close in time, never to another', () => {
    const root = makeFakeRoot([healthyBond]);
    const monitor = new BondMonitor({ root, journal: silentJournal });
    writeBonds(root, [down]);
    const [toBackup] = monitor.poll();
    writeBonds(root, [healthyBond]);
    monitor.poll();
    const at = Date.parse(toBackup?.time ?? '');
    writeHeals(root, { heals: [heal(new Date(at - 10_000).toISOString()), heal(new Date(at - 5000).toISOString(), { to: 'eth0' }), heal(new Date(at + 5).toISOString(), { heal_ms: 9 })] });
    monitor.poll();
    expect(monitor.recentEvents().map((e) => [e.to, e.heal_ms])).toEqual([['eth1', 9], ['eth0', null]]);
  });

  it('a heal read before its failover was seen (a quick heal, a late read) is given to that failover when it is', () => {
    const root = makeFakeRoot([healthyBond]);
    const monitor = new BondMonitor({ root, journal: silentJournal });
    const announced: [FailoverEvent | null, HealRecord][] = [];
    monitor.onHeal((event, h) => announced.push([event, h]));
    const quick = heal(new Date().toISOString(), { heal_ms: 41 });
    writeHeals(root, { heals: [quick] });
    monitor.poll();
    expect(announced).toEqual([[null, quick]]);
    writeBonds(root, [down]);
    const [event] = monitor.poll();
    expect(event).toMatchObject({ from: 'eth0', to: 'eth1', heal_ms: 41, heal_action: 'flush' });
    // Taken once: the way back, and the next failover to eth1, are not given it again.
    writeBonds(root, [healthyBond]);
    monitor.poll();
    writeBonds(root, [down]);
    monitor.poll();
    expect(monitor.recentEvents().map((e) => [e.to, e.heal_ms])).toEqual([['eth1', 41], ['eth0', null], ['eth1', null]]);
  });

  it('a heal read early is given only to a failover of its slave, seen within the match window', () => {
    const root = makeFakeRoot([healthyBond]);
    const monitor = new BondMonitor({ root, journal: silentJournal });
    writeHeals(root, { heals: [heal(new Date(Date.now() - 10_000).toISOString()), heal(new Date().toISOString(), { to: 'eth0' })] });
    monitor.poll();
    writeBonds(root, [down]);
    expect(monitor.poll()).toEqual([expect.objectContaining({ to: 'eth1', heal_ms: null })]);
  });

  it('heals from before the service started are the last heal, announced to no one', () => {
    const root = makeFakeRoot([healthyBond]);
    writeHeals(root, { heals: [heal('2026-11-25T10:00:00.000Z'), heal('2026-11-25T10:00:05.000Z', { to: 'eth0', heal_ms: 20 })] });
    const monitor = new BondMonitor({ root, journal: silentJournal });
    let announced = 0;
    monitor.onHeal(() => announced++);
    monitor.poll();
    expect(announced).toBe(0);
    expect(monitor.history('bond0').lastHeal).toMatchObject({ to: 'eth0', heal_ms: 20 });
  });

  it.each([
    ['missing', null],
    ['not JSON', '{"heals": ['],
    ['not a list', { heals: 'many' }],
  ])('a heals file that is %s is no heals', (_what, content) => {
    const root = makeFakeRoot([healthyBond]);
    if (content !== null) writeHeals(root, content);
    expect(readHeals(root)).toEqual([]);
  });

  it('keeps only well-formed records', () => {
    const root = makeFakeRoot([healthyBond]);
    const good = heal('2026-11-25T10:00:00.000Z');
    const reused = heal('2026-11-25T10:00:05.000Z', { action: 'reuse', gateway: '192.168.8.1', heal_ms: 120 });
    writeHeals(root, { heals: [good, { ...good, heal_ms: -1 }, { ...good, time: 'yesterday' }, { ...good, action: 'reboot' }, { ...good, outcome: 'maybe' }, null, 7, reused] });
    expect(readHeals(root)).toEqual([good, reused]);
  });
});
