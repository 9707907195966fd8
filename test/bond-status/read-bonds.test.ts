import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { readBonds } from '../../overlays/20-bond-status/src/read-bonds.ts';
import { eth0, eth1, healthyBond, makeFakeRoot, writeBonds } from './fake-root.ts';

const recorded = join(import.meta.dirname, 'fixtures/recorded');

describe('readBonds', () => {
  it('reads the recorded tree of the QEMU guest', () => {
    expect(readBonds(recorded)).toEqual([
      {
        ok: true,
        bond: {
          name: 'bond0',
          mode: 'active-backup',
          mii_status: 'up',
          miimon_ms: 100,
          primary: 'eth0',
          primary_reselect: 'always',
          active_slave: 'eth0',
          slaves: [
            { name: 'eth0', mii_status: 'up', carrier: true, speed_mbps: 1000, duplex: 'full', link_failure_count: 0, perm_hwaddr: '52:54:00:00:00:01', state: 'active', operstate: 'up' },
            { name: 'eth1', mii_status: 'up', carrier: true, speed_mbps: 100, duplex: 'full', link_failure_count: 0, perm_hwaddr: '52:54:00:00:00:02', state: 'backup', operstate: 'up' },
          ],
        },
      },
    ]);
  });

  it('reports every bond, sorted by name', () => {
    const root = makeFakeRoot([
      { ...healthyBond, name: 'bond1', slaves: [{ ...eth0, name: 'eth2' }, { ...eth1, name: 'eth3' }], primary: 'eth2', active: 'eth3' },
      healthyBond,
    ]);
    const readings = readBonds(root);
    expect(readings.map((r) => (r.ok ? [r.bond.name, r.bond.active_slave] : r.error))).toEqual([
      ['bond0', 'eth0'],
      ['bond1', 'eth3'],
    ]);
  });

  it('reports an unreadable bond as an error next to the readable ones', () => {
    const root = makeFakeRoot([healthyBond]);
    mkdirSync(join(root, 'proc/net/bonding'), { recursive: true });
    writeFileSync(join(root, 'proc/net/bonding/bond9'), 'garbage\n');
    const [good, bad] = readBonds(root);
    expect(good?.ok).toBe(true);
    expect(bad).toEqual({ ok: false, name: 'bond9', error: expect.stringMatching(/^\/proc\/net\/bonding\/bond9: not a bonding report/) });
  });

  it('reports an expected bond that does not exist', () => {
    const root = makeFakeRoot([]);
    expect(readBonds(root, ['bond0'])).toEqual([{ ok: false, name: 'bond0', error: 'bond0 does not exist (no /proc/net/bonding/bond0)' }]);
  });

  it('answers no bonds when the bonding driver is not loaded', () => {
    const root = makeFakeRoot([]);
    rmSync(join(root, 'proc'), { recursive: true, force: true });
    expect(readBonds(root)).toEqual([]);
  });

  it('derives each slave state from the active slave when sysfs cannot tell, and leaves carrier unknown', () => {
    const root = makeFakeRoot([healthyBond]);
    rmSync(join(root, 'sys'), { recursive: true });
    const [reading] = readBonds(root);
    if (!reading?.ok) throw new Error('expected a readable bond');
    expect(reading.bond.mode).toBe('active-backup'); // from the /proc wording when sysfs is gone
    expect(reading.bond.slaves.map((s) => [s.name, s.state, s.carrier, s.operstate])).toEqual([
      ['eth0', 'active', null, null],
      ['eth1', 'backup', null, null],
    ]);
  });

  it('falls back to sysfs for speed and duplex when /proc does not print them', () => {
    const root = makeFakeRoot([healthyBond]);
    writeFileSync(
      join(root, 'proc/net/bonding/bond0'),
      'Ethernet Channel Bonding Driver: v3.0.3 (March 23, 2006)\n\nBonding Mode: fault-tolerance (active-backup)\nPrimary Slave: eth0\nCurrently Active Slave: eth0\nMII Status: up\n\nSlave Interface: eth0\nMII Status: up\nLink Failure Count: 0\nPermanent HW addr: 52:54:00:00:00:01\n\nSlave Interface: eth1\nMII Status: up\nLink Failure Count: 0\nPermanent HW addr: 52:54:00:00:00:02\n',
    );
    writeFileSync(join(root, 'sys/class/net/eth1/speed'), '-1\n');
    writeFileSync(join(root, 'sys/class/net/eth1/duplex'), 'unknown\n');
    const [reading] = readBonds(root);
    if (!reading?.ok) throw new Error('expected a readable bond');
    expect(reading.bond.primary_reselect).toBe('always'); // from sysfs: this /proc has no suffix
    expect(reading.bond.slaves.map((s) => [s.speed_mbps, s.duplex])).toEqual([
      [1000, 'full'],
      [null, null],
    ]);
  });

  it('never joins a strange directory entry into a path', () => {
    const root = makeFakeRoot([healthyBond]);
    writeFileSync(join(root, 'proc/net/bonding/not a bond name'), 'x');
    expect(readBonds(root).map((r) => (r.ok ? r.bond.name : r.name))).toEqual(['bond0']);
  });

  it('reads a bond rewritten to a new state', () => {
    const root = makeFakeRoot([healthyBond]);
    writeBonds(root, [{ ...healthyBond, active: 'eth1', slaves: [{ ...eth0, mii: 'down', speed: null, duplex: null, failures: 1 }, eth1] }]);
    const [reading] = readBonds(root);
    if (!reading?.ok) throw new Error('expected a readable bond');
    expect(reading.bond.active_slave).toBe('eth1');
    expect(reading.bond.slaves.map((s) => [s.name, s.state, s.mii_status, s.carrier, s.speed_mbps, s.link_failure_count])).toEqual([
      ['eth0', 'backup', 'down', false, null, 1],
      ['eth1', 'active', 'up', true, 100, 0],
    ]);
  });
});
