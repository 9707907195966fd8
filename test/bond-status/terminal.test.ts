import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { runInNewContext } from 'node:vm';
import { describe, expect, it } from 'vitest';
import { describeLinkMonitor } from '../../overlays/20-bond-status/src/link-monitor.ts';
import { readBonds } from '../../overlays/20-bond-status/src/read-bonds.ts';
import { formatStatus } from '../../overlays/20-bond-status/src/terminal.ts';
import { healthyBond, makeFakeRoot } from './fake-root.ts';

const noService = { url: 'http://127.0.0.1:9', status: null, events: null };

describe('bond-status in a terminal', () => {
  it('describes the ARP monitor of a bond that uses it, not a missing MII interval', () => {
    const root = makeFakeRoot([healthyBond]);
    writeFileSync(join(root, 'proc/net/bonding/bond0'), readFileSync(join(import.meta.dirname, 'fixtures/proc/arp-monitor.txt')));
    const text = formatStatus(readBonds(root).readings, noService);
    expect(text.split('\n')[0]).toBe('bond0: active-backup, MII up, ARP probes every 1000 ms to 192.168.1.1, 192.168.1.254');
    expect(text).not.toMatch(/every (\?|0) ms/);
  });

  it('describes the MII monitor as before', () => {
    const text = formatStatus(readBonds(makeFakeRoot([healthyBond])).readings, noService);
    expect(text.split('\n')[0]).toBe('bond0: active-backup, MII up, MII polled every 100 ms');
  });

  it('prints the note when bonds were left out', () => {
    expect(formatStatus([], noService, '20 bonds: only 16 are read')).toContain('Note: 20 bonds: only 16 are read.\n');
  });
});

describe('describeLinkMonitor', () => {
  it.each([
    [{ miimon_ms: 100, arp_interval_ms: null, arp_targets: [] }, 'MII polled every 100 ms'],
    [{ miimon_ms: 0, arp_interval_ms: 1000, arp_targets: ['192.168.1.1'] }, 'ARP probes every 1000 ms to 192.168.1.1'],
    [{ miimon_ms: 0, arp_interval_ms: 500, arp_targets: [] }, 'ARP probes every 500 ms to no target'],
    [{ miimon_ms: 100, arp_interval_ms: 200, arp_targets: ['10.0.0.1', '10.0.0.2'] }, 'MII polled every 100 ms; ARP probes every 200 ms to 10.0.0.1, 10.0.0.2'],
    [{ miimon_ms: 0, arp_interval_ms: null, arp_targets: [] }, 'no link monitoring (miimon and arp_interval are 0)'],
    [{ miimon_ms: null, arp_interval_ms: null, arp_targets: [] }, 'link monitoring unknown'],
  ])('%j: %s', (bond, words) => {
    expect(describeLinkMonitor(bond)).toBe(words);
  });

  it('stands alone, as the page runs it from its source text', () => {
    const fromSource = runInNewContext(`(${describeLinkMonitor.toString()})`) as typeof describeLinkMonitor;
    expect(fromSource({ miimon_ms: 0, arp_interval_ms: 1000, arp_targets: ['192.168.1.1', '192.168.1.254'] })).toBe('ARP probes every 1000 ms to 192.168.1.1, 192.168.1.254');
  });
});
