/**
 * A fake /proc and /sys for bond-status, written from a small model of the bonds, so a test can
 * play a failover by writing the next state. writeBonds writes each file to a temporary name and
 * renames it into place, so a polling reader never sees it half-written; writeInPlace and makeFifo
 * are for the tests that want exactly that, or worse.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { onTestFinished } from 'vitest';
import { poll } from '../../scripts/lib/poll.ts';

export interface FakeSlave {
  name: string;
  mii: 'up' | 'down' | 'going down' | 'going back';
  speed: number | null;
  duplex: 'full' | 'half' | null;
  failures: number;
  mac: string;
}

export interface FakeBond {
  name: string;
  primary: string | null;
  reselect: 'always' | 'better' | 'failure';
  active: string | null;
  miimon: number;
  slaves: FakeSlave[];
}

export const eth0: FakeSlave = { name: 'eth0', mii: 'up', speed: 1000, duplex: 'full', failures: 0, mac: '52:54:00:00:00:01' };
export const eth1: FakeSlave = { name: 'eth1', mii: 'up', speed: 100, duplex: 'full', failures: 0, mac: '52:54:00:00:00:02' };
export const healthyBond: FakeBond = { name: 'bond0', primary: 'eth0', reselect: 'always', active: 'eth0', miimon: 100, slaves: [eth0, eth1] };

/** A bond of `count` slaves eth0, eth1, ...: for the limits. */
export function bondWithSlaves(count: number): FakeBond {
  const slaves = Array.from({ length: count }, (_, i): FakeSlave => ({ ...eth1, name: `eth${i}`, mac: `52:54:00:00:${(i >> 8).toString(16).padStart(2, '0')}:${(i & 255).toString(16).padStart(2, '0')}` }));
  return { ...healthyBond, slaves };
}

/** A temporary root, removed when the current test ends, whatever its outcome. */
export function makeFakeRoot(bonds: readonly FakeBond[] = [healthyBond]): string {
  const root = mkdtempSync(join(tmpdir(), 'bond-status-'));
  onTestFinished(() => rmSync(root, { recursive: true, force: true }));
  writeBonds(root, bonds);
  return root;
}

/** The kernel's report, as bond_procfs.c prints it for active-backup on 6.1. */
export function procReport(bond: FakeBond): string {
  let text = 'Ethernet Channel Bonding Driver: v6.1.0-50-arm64\n\nBonding Mode: fault-tolerance (active-backup)\n';
  text += bond.primary === null ? 'Primary Slave: None\n' : `Primary Slave: ${bond.primary} (primary_reselect ${bond.reselect})\n`;
  text += `Currently Active Slave: ${bond.active ?? 'None'}\n`;
  text += `MII Status: ${bond.active === null ? 'down' : 'up'}\nMII Polling Interval (ms): ${bond.miimon}\nUp Delay (ms): 0\nDown Delay (ms): 0\nPeer Notification Delay (ms): 0\n`;
  for (const slave of bond.slaves) {
    text += `\nSlave Interface: ${slave.name}\nMII Status: ${slave.mii}\n`;
    text += `Speed: ${slave.speed === null ? 'Unknown' : `${slave.speed} Mbps`}\nDuplex: ${slave.duplex ?? 'Unknown'}\n`;
    text += `Link Failure Count: ${slave.failures}\nPermanent HW addr: ${slave.mac}\nSlave queue ID: 0\n`;
  }
  return text;
}

export function writeBonds(root: string, bonds: readonly FakeBond[]): void {
  const put = (path: string, content: string) => {
    const file = join(root, path);
    mkdirSync(dirname(file), { recursive: true });
    writeFileSync(`${file}.tmp`, content);
    renameSync(`${file}.tmp`, file);
  };
  put('sys/class/net/bonding_masters', `${bonds.map((b) => b.name).join(' ')}\n`);
  for (const bond of bonds) {
    const sys = `sys/class/net/${bond.name}/bonding`;
    put(`${sys}/mode`, 'active-backup 1\n');
    put(`${sys}/primary_reselect`, `${bond.reselect} ${['always', 'better', 'failure'].indexOf(bond.reselect)}\n`);
    put(`${sys}/slaves`, `${bond.slaves.map((s) => s.name).join(' ')}\n`);
    put(`${sys}/primary`, bond.primary === null ? '\n' : `${bond.primary}\n`);
    for (const slave of bond.slaves) {
      const dir = `sys/class/net/${slave.name}`;
      const up = slave.mii === 'up' || slave.mii === 'going down';
      put(`${dir}/carrier`, up ? '1\n' : '0\n');
      put(`${dir}/operstate`, up ? 'up\n' : 'lowerlayerdown\n');
      put(`${dir}/speed`, `${slave.speed ?? -1}\n`);
      put(`${dir}/duplex`, `${slave.duplex ?? 'unknown'}\n`);
      put(`${dir}/bonding_slave/state`, slave.name === bond.active ? 'active\n' : 'backup\n');
      put(`${dir}/bonding_slave/mii_status`, `${slave.mii}\n`);
      put(`${dir}/bonding_slave/link_failure_count`, `${slave.failures}\n`);
      put(`${dir}/bonding_slave/perm_hwaddr`, `${slave.mac}\n`);
    }
    // Last, as the kernel's own report is the one the monitor compares.
    put(`proc/net/bonding/${bond.name}`, procReport(bond));
  }
}

/** Overwrites a file where it is (truncate, then write), as an editor or a careless writer does. */
export function writeInPlace(root: string, path: string, content: string): void {
  writeFileSync(join(root, path), content);
}

/**
 * Puts a FIFO where a file of the fake root was. A reader that opens it blocking waits for a writer
 * forever, freezing its whole thread, test runner included: so a guard keeps offering a writer,
 * and such a reader reads "not a bonding report" and fails its assertion instead of hanging.
 * A reader that refuses FIFOs never opens one for long, and the guard mostly waits. Killed at the
 * end of the test.
 */
export function makeFifo(root: string, path: string): void {
  const file = join(root, path);
  rmSync(file, { force: true });
  mkdirSync(dirname(file), { recursive: true });
  execFileSync('mkfifo', [file]);
  const guard = spawn('sh', ['-c', 'while :; do echo "not a bonding report" > "$0" 2>/dev/null; sleep 0.2; done', file], { stdio: 'ignore' });
  onTestFinished(() => {
    guard.kill('SIGKILL');
  });
}

/**
 * Retries `check` every 5 ms until it returns a value (not undefined): the project's poll(), with a
 * deadline that is liveness on a busy test machine, never a claim about how fast.
 */
export function waitFor<T>(what: string, check: () => T | undefined | Promise<T | undefined>, timeoutMs = 5000): Promise<T> {
  return poll(check, { what, timeoutMs, intervalMs: 5 });
}
