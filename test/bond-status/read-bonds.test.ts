import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { procLimits } from '../../overlays/20-bond-status/src/proc-bonding.ts';
import { readBounded, readBonds, readLimits } from '../../overlays/20-bond-status/src/read-bonds.ts';
import { bondWithSlaves, eth0, eth1, healthyBond, makeFakeRoot, makeFifo, procReport, writeBonds } from './fake-root.ts';

const recorded = join(import.meta.dirname, 'fixtures/recorded');

describe('readBonds', () => {
  it('reads the recorded tree of the QEMU guest', () => {
    expect(readBonds(recorded).readings).toEqual([
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
          arp_interval_ms: null,
          arp_targets: [],
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
    const readings = readBonds(root).readings;
    expect(readings.map((r) => (r.ok ? [r.bond.name, r.bond.active_slave] : r.error))).toEqual([
      ['bond0', 'eth0'],
      ['bond1', 'eth3'],
    ]);
  });

  it('reports an unreadable bond as an error next to the readable ones', () => {
    const root = makeFakeRoot([healthyBond]);
    mkdirSync(join(root, 'proc/net/bonding'), { recursive: true });
    writeFileSync(join(root, 'proc/net/bonding/bond9'), 'garbage\n');
    const [good, bad] = readBonds(root).readings;
    expect(good?.ok).toBe(true);
    expect(bad).toEqual({ ok: false, name: 'bond9', error: expect.stringMatching(/^\/proc\/net\/bonding\/bond9: not a bonding report/) });
  });

  it('reports an expected bond that does not exist', () => {
    const root = makeFakeRoot([]);
    expect(readBonds(root, ['bond0']).readings).toEqual([{ ok: false, name: 'bond0', error: 'bond0 does not exist (no /proc/net/bonding/bond0)', missing: true }]);
  });

  it('answers no bonds when the bonding driver is not loaded', () => {
    const root = makeFakeRoot([]);
    rmSync(join(root, 'proc'), { recursive: true, force: true });
    expect(readBonds(root).readings).toEqual([]);
  });

  it('derives each slave state from the active slave when sysfs cannot tell, and leaves carrier unknown', () => {
    const root = makeFakeRoot([healthyBond]);
    rmSync(join(root, 'sys'), { recursive: true });
    const [reading] = readBonds(root).readings;
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
    const [reading] = readBonds(root).readings;
    if (!reading?.ok) throw new Error('expected a readable bond');
    expect(reading.bond.primary_reselect).toBe('always'); // from sysfs: this /proc has no suffix
    expect(reading.bond.slaves.map((s) => [s.speed_mbps, s.duplex])).toEqual([
      [1000, 'full'],
      [null, null],
    ]);
  });

  it('reports the primary the driver holds in sysfs (what the boot checks judge a stack by), /proc only without it', () => {
    const root = makeFakeRoot([healthyBond]);
    writeFileSync(join(root, 'sys/class/net/bond0/bonding/primary'), '\n');
    const [none] = readBonds(root).readings;
    expect(none?.ok && none.bond.primary).toBeNull();
    writeFileSync(join(root, 'sys/class/net/bond0/bonding/primary'), 'eth1\n');
    const [eth1] = readBonds(root).readings;
    expect(eth1?.ok && eth1.bond.primary).toBe('eth1');
    rmSync(join(root, 'sys/class/net/bond0/bonding/primary'));
    const [fromProc] = readBonds(root).readings;
    expect(fromProc?.ok && fromProc.bond.primary).toBe('eth0');
  });

  it('never joins a strange directory entry into a path', () => {
    const root = makeFakeRoot([healthyBond]);
    writeFileSync(join(root, 'proc/net/bonding/not a bond name'), 'x');
    expect(readBonds(root).readings.map((r) => (r.ok ? r.bond.name : r.name))).toEqual(['bond0']);
  });

  it('reads a bond rewritten to a new state', () => {
    const root = makeFakeRoot([healthyBond]);
    writeBonds(root, [{ ...healthyBond, active: 'eth1', slaves: [{ ...eth0, mii: 'down', speed: null, duplex: null, failures: 1 }, eth1] }]);
    const [reading] = readBonds(root).readings;
    if (!reading?.ok) throw new Error('expected a readable bond');
    expect(reading.bond.active_slave).toBe('eth1');
    expect(reading.bond.slaves.map((s) => [s.name, s.state, s.mii_status, s.carrier, s.speed_mbps, s.link_failure_count])).toEqual([
      ['eth0', 'backup', 'down', false, null, 1],
      ['eth1', 'active', 'up', true, 100, 0],
    ]);
  });
});

describe('readBonds: reports read while being written', () => {
  it.each([
    ['cut mid-line', (report: string) => report.slice(0, report.indexOf('Currently Active Slave: ') + 26), /torn report: it stops mid-line/],
    ['cut before the active slave line', (report: string) => report.slice(0, report.indexOf('Currently Active Slave')), /torn report: no Currently Active Slave line/],
    ['cut after a whole slave', (report: string) => report.slice(0, report.indexOf('\nSlave Interface: eth1') + 1), /lists slaves eth0 but sysfs eth0 eth1: torn report/],
  ])('refuses a report %s, rather than reading a made-up active slave or a slave fewer', (_, cut, message) => {
    const root = makeFakeRoot([healthyBond]);
    writeFileSync(join(root, 'proc/net/bonding/bond0'), cut(procReport(healthyBond)));
    expect(readBonds(root).readings).toEqual([{ ok: false, name: 'bond0', error: expect.stringMatching(message) }]);
  });
});

describe('readBonds: what is not a bonding file is refused, never waited on', () => {
  it('refuses a FIFO in /proc/net/bonding at once, and reads the other bonds', () => {
    const root = makeFakeRoot([healthyBond, { ...healthyBond, name: 'bond1', slaves: [{ ...eth0, name: 'eth2' }, { ...eth1, name: 'eth3' }], primary: 'eth2', active: 'eth2' }]);
    makeFifo(root, 'proc/net/bonding/bond0');
    const report = readBonds(root);
    expect(report.readings.map((r) => (r.ok ? ['ok', r.bond.name] : [r.name, r.error]))).toEqual([
      ['bond0', '/proc/net/bonding/bond0: refused: not a regular file'],
      ['ok', 'bond1'],
    ]);
  });

  it('treats a FIFO in place of a sysfs file as an unknown value', () => {
    const root = makeFakeRoot([healthyBond]);
    makeFifo(root, 'sys/class/net/eth1/operstate');
    const [reading] = readBonds(root).readings;
    if (!reading?.ok) throw new Error(`expected a readable bond, got ${JSON.stringify(reading)}`);
    expect(reading.bond.slaves.map((s) => [s.name, s.operstate])).toEqual([
      ['eth0', 'up'],
      ['eth1', null],
    ]);
  });
});

describe('readBonds: bounded, whatever the files hold', () => {
  it('refuses a 20,000-slave report having read no more than the limit', () => {
    const root = makeFakeRoot([healthyBond]);
    const huge = procReport(bondWithSlaves(20_000));
    expect(huge.length).toBeGreaterThan(50 * readLimits.maxReportBytes);
    writeFileSync(join(root, 'proc/net/bonding/bond0'), huge);
    expect(readBonds(root).readings).toEqual([{ ok: false, name: 'bond0', error: `/proc/net/bonding/bond0: refused: larger than ${readLimits.maxReportBytes} bytes` }]);
    const read = readBounded(join(root, 'proc/net/bonding/bond0'), 1000);
    expect(read).toEqual({ ok: false, error: 'refused: larger than 1000 bytes' });
    // Exactly at the limit is still read.
    writeFileSync(join(root, 'exact'), 'x'.repeat(1000));
    expect(readBounded(join(root, 'exact'), 1000)).toEqual({ ok: true, text: 'x'.repeat(1000) });
  });

  it('refuses a report of more slaves than the limit, even a short one', () => {
    const root = makeFakeRoot([bondWithSlaves(procLimits.maxSlaves + 1)]);
    const [reading] = readBonds(root).readings;
    expect(reading).toEqual({ ok: false, name: 'bond0', error: `/proc/net/bonding/bond0: refused: more than ${procLimits.maxSlaves} slaves` });
    // The limit itself is fine.
    expect(readBonds(makeFakeRoot([bondWithSlaves(procLimits.maxSlaves)])).readings[0]?.ok).toBe(true);
  });

  it('refuses a report with an overlong line', () => {
    const root = makeFakeRoot([healthyBond]);
    writeFileSync(join(root, 'proc/net/bonding/bond0'), procReport(healthyBond).replace('Up Delay (ms): 0', `Up Delay (ms): ${'0'.repeat(5000)}`));
    expect(readBonds(root).readings[0]).toEqual({ ok: false, name: 'bond0', error: '/proc/net/bonding/bond0: refused: a line of 5015 characters, over the limit of 1024' });
  });

  it('reads at most the bond limit, the expected ones first, and says how many were left out', () => {
    const count = readLimits.maxBonds + 4;
    const root = makeFakeRoot([healthyBond]);
    // Copies of one report: enough for the listing, and quick to write.
    for (let i = 1; i < count; i++) writeFileSync(join(root, `proc/net/bonding/bond${i}`), procReport(healthyBond));
    const report = readBonds(root, [`bond${count - 1}`]);
    expect(report.readings).toHaveLength(readLimits.maxBonds);
    expect(report.readings.map((r) => (r.ok ? r.bond.name : r.name))).toContain(`bond${count - 1}`);
    expect(report.note).toBe(`${count} bonds: only ${readLimits.maxBonds} are read (the limit is ${readLimits.maxBonds}), 4 left out`);
  });

  it('looks at a bounded number of directory entries, and says so', () => {
    const root = makeFakeRoot([healthyBond]);
    for (let i = 0; i < readLimits.maxDirectoryEntries + 50; i++) writeFileSync(join(root, `proc/net/bonding/not a bond ${i}`), 'x');
    const report = readBonds(root);
    expect(report.readings.length).toBeLessThanOrEqual(1);
    expect(report.note).toBe(`/proc/net/bonding has more than ${readLimits.maxDirectoryEntries} entries: only the first ${readLimits.maxDirectoryEntries} were looked at`);
  });
});
