import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseProcBonding, type ProcBond } from '../../overlays/20-bond-status/src/proc-bonding.ts';
import { procReport, type FakeBond } from './fake-root.ts';

const fixtures = join(import.meta.dirname, 'fixtures');
const fixture = (name: string) => readFileSync(join(fixtures, 'proc', name), 'utf8');

function parsed(name: string): ProcBond {
  const result = parseProcBonding(fixture(name));
  if (!result.ok) throw new Error(`${name}: ${result.error}`);
  return result.bond;
}

describe('parseProcBonding: the variants the kernel prints', () => {
  it('reads kernel 6.1 active-backup as verified under QEMU', () => {
    expect(parsed('kernel-6.1-active-backup.txt')).toEqual({
      driverVersion: 'v6.1.0-50-arm64',
      mode: 'fault-tolerance (active-backup)',
      failOverMac: null,
      primary: 'eth0',
      primaryReselect: 'always',
      activeSlave: 'eth0',
      miiStatus: 'up',
      miimonMs: 100,
      updelayMs: 0,
      downdelayMs: 0,
      arpIntervalMs: null,
      arpMissedMax: null,
      arpTargets: [],
      slaves: [
        { name: 'eth0', miiStatus: 'up', speedMbps: 1000, duplex: 'full', linkFailureCount: 0, permHwaddr: '52:54:00:00:00:01' },
        { name: 'eth1', miiStatus: 'up', speedMbps: 100, duplex: 'full', linkFailureCount: 0, permHwaddr: '52:54:00:00:00:02' },
      ],
    });
  });

  it('reads "Currently Active Slave: None" as no active slave', () => {
    const bond = parsed('no-active-slave.txt');
    expect(bond.activeSlave).toBeNull();
    expect(bond.miiStatus).toBe('down');
    expect(bond.slaves.map((s) => [s.miiStatus, s.linkFailureCount])).toEqual([['down', 3], ['down', 1]]);
  });

  it('reads "Primary Slave: None" without a reselect suffix', () => {
    const bond = parsed('no-primary.txt');
    expect(bond.primary).toBeNull();
    expect(bond.primaryReselect).toBeNull();
    expect(bond.activeSlave).toBe('eth1');
  });

  it('keeps the transitional MII states going down and going back, and delays', () => {
    const bond = parsed('going-down-going-back.txt');
    expect(bond.slaves.map((s) => s.miiStatus)).toEqual(['going down', 'going back']);
    expect([bond.updelayMs, bond.downdelayMs, bond.primaryReselect]).toEqual([2000, 500, 'better']);
    expect(bond.slaves[1]?.duplex).toBe('half');
  });

  it('reads Unknown speed and duplex as null', () => {
    const bond = parsed('unknown-speed-duplex.txt');
    for (const slave of bond.slaves) expect([slave.speedMbps, slave.duplex]).toEqual([null, null]);
  });

  it.each([
    ['fail-over-mac-active.txt', 'active'],
    ['fail-over-mac-follow.txt', 'follow'],
  ])('splits the fail_over_mac suffix off the mode (%s)', (name, policy) => {
    const bond = parsed(name);
    expect(bond.mode).toBe('fault-tolerance (active-backup)');
    expect(bond.failOverMac).toBe(policy);
  });

  it('reads the ARP monitor lines, and ignores lines it does not know (NS IPv6 targets)', () => {
    const bond = parsed('arp-monitor.txt');
    expect([bond.miimonMs, bond.arpIntervalMs, bond.arpMissedMax]).toEqual([0, 1000, 2]);
    expect(bond.arpTargets).toEqual(['192.168.1.1', '192.168.1.254']);
    expect(bond.slaves).toHaveLength(2);
  });

  it("reads an old kernel's version string and its -1 for an unknown speed", () => {
    const bond = parsed('kernel-3.7.1-old-version.txt');
    expect(bond.driverVersion).toBe('v3.7.1 (April 27, 2011)');
    expect(bond.slaves[1]).toMatchObject({ name: 'eth1', miiStatus: 'down', speedMbps: null, duplex: 'half', linkFailureCount: 1 });
  });

  it('leaves values that older kernels do not print as null', () => {
    const bond = parsed('old-kernel-missing-lines.txt');
    expect([bond.primary, bond.primaryReselect, bond.updelayMs, bond.downdelayMs]).toEqual(['eth0', null, null, null]);
    expect(bond.slaves.map((s) => [s.name, s.speedMbps, s.duplex, s.permHwaddr])).toEqual([
      ['eth0', null, null, '00:0e:0c:aa:bb:01'],
      ['eth1', null, null, '00:0e:0c:aa:bb:02'],
    ]);
  });

  it('reads modes without an active slave line (balance-rr)', () => {
    const bond = parsed('balance-rr-no-active-line.txt');
    expect([bond.mode, bond.primary, bond.activeSlave]).toEqual(['load balancing (round-robin)', null, null]);
    expect(bond.slaves.map((s) => s.name)).toEqual(['eth2']);
  });

  it('skips 802.3ad blocks and their indented details without mistaking them for slave values', () => {
    const bond = parsed('802.3ad-nested-blocks.txt');
    expect(bond.mode).toBe('IEEE 802.3ad Dynamic link aggregation');
    expect(bond.slaves).toEqual([{ name: 'eth3', miiStatus: 'up', speedMbps: 1000, duplex: 'full', linkFailureCount: 0, permHwaddr: '52:54:00:00:00:05' }]);
  });

  it('reads a bond without slaves, with CRLF line ends', () => {
    const bond = parsed('no-slaves-crlf.txt');
    expect([bond.mode, bond.activeSlave, bond.miimonMs, bond.slaves]).toEqual(['fault-tolerance (active-backup)', null, 100, []]);
  });

  it('has a test above for every fixture in fixtures/proc', () => {
    // A fixture nobody asserts on proves nothing: keep this list and the directory in step.
    expect(readdirSync(join(fixtures, 'proc')).sort()).toEqual([
      '802.3ad-nested-blocks.txt',
      'arp-monitor.txt',
      'balance-rr-no-active-line.txt',
      'fail-over-mac-active.txt',
      'fail-over-mac-follow.txt',
      'going-down-going-back.txt',
      'kernel-3.7.1-old-version.txt',
      'kernel-6.1-active-backup.txt',
      'no-active-slave.txt',
      'no-primary.txt',
      'no-slaves-crlf.txt',
      'old-kernel-missing-lines.txt',
      'unknown-speed-duplex.txt',
    ]);
  });
});

describe('parseProcBonding: malformed input is an error value', () => {
  it.each([
    ['empty.txt', /empty bonding report/],
    ['not-a-report.txt', /not a bonding report/],
    ['bad-number.txt', /MII Polling Interval \(ms\): not a number/],
    ['no-mode.txt', /no Bonding Mode line/],
    ['duplicate-slave.txt', /eth0 is listed twice/],
    ['slave-name-with-slash.txt', /not an interface name/],
    ['bad-speed.txt', /eth1: Speed: cannot read/],
    ['bad-mii-status.txt', /MII Status: unexpected "sideways"/],
  ])('%s', (name, message) => {
    const result = parseProcBonding(readFileSync(join(fixtures, 'malformed', name), 'utf8'));
    expect(result).toMatchObject({ ok: false, error: expect.stringMatching(message) });
  });
});

describe('parseProcBonding: properties', () => {
  const labels = ['Bonding Mode', 'Primary Slave', 'Currently Active Slave', 'MII Status', 'MII Polling Interval (ms)', 'Up Delay (ms)',
    'ARP Polling Interval (ms)', 'ARP Missed Max', 'ARP IP target/s (n.n.n.n form)', 'Slave Interface', 'Speed', 'Duplex',
    'Link Failure Count', 'Permanent HW addr'];
  // Random values under real labels, behind a real header: reaches every branch, not just the header check.
  const labelledNoise = fc
    .array(fc.tuple(fc.constantFrom(...labels), fc.constantFrom(': ', ':', ' : ', ''), fc.string({ maxLength: 30 })), { maxLength: 40 })
    .map((lines) => `Ethernet Channel Bonding Driver: v6.1.0\n${lines.map(([label, colon, value]) => label + colon + value).join('\n')}`);
  const fullReport = fixture('kernel-6.1-active-backup.txt') + fixture('arp-monitor.txt') + fixture('802.3ad-nested-blocks.txt');

  it('never throws on random text, and always answers ok or an error string', () => {
    fc.assert(
      fc.property(fc.oneof(fc.string({ unit: 'binary', maxLength: 1000 }), labelledNoise), (text) => {
        const result = parseProcBonding(text);
        expect(result.ok ? typeof result.bond : typeof result.error).toBe(result.ok ? 'object' : 'string');
      }),
      { numRuns: 400 },
    );
  });

  it('never throws on real reports cut short or with lines dropped, duplicated or mangled', () => {
    const lines = fullReport.split('\n');
    const mangled = fc.oneof(
      fc.nat({ max: fullReport.length }).map((end) => fullReport.slice(0, end)),
      fc.array(fc.nat({ max: lines.length - 1 }), { maxLength: 80 }).map((picks) => picks.map((i) => lines[i]).join('\n')),
      fc
        .tuple(fc.nat({ max: fullReport.length }), fc.string({ maxLength: 20 }))
        .map(([at, noise]) => fullReport.slice(0, at) + noise + fullReport.slice(at)),
    );
    fc.assert(
      fc.property(mangled, (text) => {
        expect(() => parseProcBonding(text)).not.toThrow();
      }),
      { numRuns: 1000 },
    );
  });

  it('reads back whatever an active-backup bond the kernel could print', () => {
    const name = fc.stringMatching(/^[a-z][a-z0-9]{0,6}$/);
    const slave = fc.record({
      mii: fc.constantFrom('up', 'down', 'going down', 'going back'),
      speed: fc.option(fc.integer({ min: 1, max: 400_000 })),
      duplex: fc.option(fc.constantFrom('full', 'half')),
      failures: fc.nat({ max: 2 ** 31 }),
      mac: fc.array(fc.integer({ min: 0, max: 255 }), { minLength: 6, maxLength: 6 }).map((bytes) => bytes.map((b) => b.toString(16).padStart(2, '0')).join(':')),
    });
    const bond = fc.uniqueArray(fc.tuple(name, slave), { selector: ([n]) => n, maxLength: 4 }).chain((slaves) =>
      fc.record({
        name: fc.constant('bond0'),
        primary: fc.option(fc.constantFrom(...slaves.map(([n]) => n), 'eth9')),
        reselect: fc.constantFrom('always', 'better', 'failure'),
        active: fc.option(fc.constantFrom(...slaves.map(([n]) => n), 'eth9')),
        miimon: fc.nat({ max: 100_000 }),
        slaves: fc.constant(slaves.map(([n, s]) => ({ name: n, ...s }))),
      }),
    ) as fc.Arbitrary<FakeBond>;

    fc.assert(
      fc.property(bond, (model) => {
        const result = parseProcBonding(procReport(model));
        if (!result.ok) throw new Error(result.error);
        expect(result.bond).toMatchObject({
          primary: model.primary,
          primaryReselect: model.primary === null ? null : model.reselect,
          activeSlave: model.active,
          miimonMs: model.miimon,
          slaves: model.slaves.map((s) => ({ name: s.name, miiStatus: s.mii, speedMbps: s.speed, duplex: s.duplex, linkFailureCount: s.failures, permHwaddr: s.mac })),
        });
      }),
      { numRuns: 300 },
    );
  });
});
