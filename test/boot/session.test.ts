/** The boot session against the fake engine: every way a boot can end leaves no container and no temporary directory. */
import { mkdirSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BootImage } from '../../scripts/boot/image.ts';
import { SerialLog, asInvokingUser, bootLabels, isStale, removeStaleBoots, removeWorkDir, startBoot } from '../../scripts/boot/session.ts';
import { testbedLabel } from '../../scripts/boot/testbed/index.ts';
import { poll } from '../../scripts/lib/poll.ts';
import { FakeEngine } from '../lib/_fake-engine.ts';

/** Beyond any Linux pid_max (2^22): no process has it, ever. */
const deadPid = 4_194_305;

let temp: string;
let savedTmpdir: string | undefined;

beforeEach(async () => {
  // tmpdir() follows TMPDIR: each test sees exactly the temporary directories it left.
  temp = await mkdtemp(join(tmpdir(), 'pibond-session-test-'));
  savedTmpdir = process.env['TMPDIR'];
  process.env['TMPDIR'] = temp;
});

afterEach(async () => {
  if (savedTmpdir === undefined) delete process.env['TMPDIR'];
  else process.env['TMPDIR'] = savedTmpdir;
  await rm(temp, { recursive: true, force: true });
});

const image: BootImage = {
  path: '/images/pibond-test.img',
  name: 'pibond-test',
  manifestPath: '/images/pibond-test.manifest.json',
  bootPartitionOffset: 4_194_304,
  manifest: {
    name: 'pibond-test',
    diskId: '0badcafe',
    definition: {
      value: {
        mirror: 'http://deb.debian.org/debian',
        admin: { name: 'pi' },
        bond: { name: 'bond0', slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth0', miimon: 100 },
        status_service: { port: 8080 },
      },
    },
  },
};

/** The host directory bound at /run/pibond: what the prepare container writes into. */
function runDir(opts: Docker.ContainerCreateOptions): string {
  const bind = opts.HostConfig?.Binds?.find((b) => b.endsWith(':/run/pibond'));
  if (!bind) throw new Error('no /run/pibond bind');
  return bind.slice(0, -':/run/pibond'.length);
}

/** What a good image's boot partition gives the prepare container. */
function prepareWritesBootFiles(opts: Docker.ContainerCreateOptions): void {
  const boot = join(runDir(opts), 'boot');
  mkdirSync(boot, { recursive: true });
  writeFileSync(join(boot, 'config.txt'), 'kernel=vmlinuz-6.1\ninitramfs initrd.img-6.1 followkernel\n');
  writeFileSync(join(boot, 'cmdline.txt'), 'console=serial0,115200 root=/dev/mmcblk0p2 rootwait\n');
  writeFileSync(join(boot, 'vmlinuz-6.1'), '');
  writeFileSync(join(boot, 'initrd.img-6.1'), '');
}

const isQemu = (opts: Docker.ContainerCreateOptions) => (opts.Cmd ?? []).some((arg) => arg === 'qemu-system-aarch64');

async function leftovers(engine: FakeEngine): Promise<{ containers: string[]; workDirs: string[] }> {
  return {
    containers: engine.containers.filter((c) => c.state !== 'removed').map((c) => c.name),
    workDirs: (await readdir(temp)).filter((name) => name.startsWith('pibond-boot-')),
  };
}

function boot(engine: FakeEngine, signal?: AbortSignal, said: string[] = []) {
  return startBoot({ docker: engine.docker, builderImage: 'pibond-builder:test', image, say: (m) => said.push(m), signal });
}

describe('startBoot leaves nothing behind', () => {
  it('when the prepare container fails', async () => {
    const engine = new FakeEngine({ container: () => ({ output: [['stderr', 'no qemu\n']], exitCode: 90 }) });
    await expect(boot(engine)).rejects.toThrow(/has no qemu-system-aarch64/);
    expect(await leftovers(engine)).toEqual({ containers: [], workDirs: [] });
  });

  it('when the image has no boot files (the prepare container ran, and its output is bad)', async () => {
    const engine = new FakeEngine({ container: () => ({ exitCode: 0 }) });
    await expect(boot(engine)).rejects.toThrow(/ENOENT/);
    expect(await leftovers(engine)).toEqual({ containers: [], workDirs: [] });
  });

  it('when aborted while the prepare container runs: at once, not when it ends', async () => {
    // A prepare container that never ends by itself.
    const engine = new FakeEngine({ container: () => ({}) });
    const stop = new AbortController();
    const booting = boot(engine, stop.signal);
    await until(() => engine.containers.some((c) => c.state === 'running'));
    stop.abort(new Error('stopped by SIGHUP'));
    await expect(booting).rejects.toThrow('stopped by SIGHUP');
    expect(await leftovers(engine)).toEqual({ containers: [], workDirs: [] });
  });

  it('when aborted after QEMU started, before QMP answered', async () => {
    const engine = new FakeEngine({
      container: (opts) => {
        if (isQemu(opts)) return {};
        prepareWritesBootFiles(opts);
        return { exitCode: 0 };
      },
    });
    const stop = new AbortController();
    const said: string[] = [];
    const booting = boot(engine, stop.signal, said);
    await until(() => said.some((line) => line.startsWith('QEMU started')));
    stop.abort(new Error('stopped by SIGTERM'));
    await expect(booting).rejects.toThrow('stopped by SIGTERM');
    expect(engine.containers.map((c) => c.state)).toEqual(['removed', 'removed']);
    expect(await leftovers(engine)).toEqual({ containers: [], workDirs: [] });
  });

  it('when QEMU exits before QMP answered, naming its last words', async () => {
    const engine = new FakeEngine({
      container: (opts) => {
        if (isQemu(opts)) return { output: [['stdout', 'qemu: could not load kernel\n']], exitCode: 1 };
        prepareWritesBootFiles(opts);
        return { exitCode: 0 };
      },
    });
    await expect(boot(engine)).rejects.toThrow(/QEMU exited \(status 1\) before QMP answered[^]*could not load kernel/);
    expect(await leftovers(engine)).toEqual({ containers: [], workDirs: [] });
  });

  it('labels both containers with this host and process, so a later boot can tell when they are stale', async () => {
    const engine = new FakeEngine({ container: () => ({ exitCode: 90 }) });
    await expect(boot(engine)).rejects.toThrow();
    const labels = engine.containers[0]?.opts.Labels;
    expect(labels).toMatchObject({ 'pibond.boot': 'pibond-test', 'pibond.pid': String(process.pid), 'pibond.host': hostname() });
    expect(labels?.['pibond.workdir']).toMatch(new RegExp(`^${temp}/pibond-boot-`));
  });
});

describe('a test boot', () => {
  it("points the image's uplink probes at the test bed's documentation addresses, never the image's own targets", async () => {
    let qemuCmd: string[] = [];
    const engine = new FakeEngine({
      container: (opts) => {
        if (isQemu(opts)) {
          qemuCmd = opts.Cmd ?? [];
          return { exitCode: 1 };
        }
        prepareWritesBootFiles(opts);
        return { exitCode: 0 };
      },
    });
    await expect(boot(engine)).rejects.toThrow(/QEMU exited/);
    const append = qemuCmd[qemuCmd.indexOf('-append') + 1] ?? '';
    const targets = /\bpibond\.uplink\.targets=(\S+)/.exec(append)?.[1]?.split(',') ?? [];
    expect(targets.length).toBeGreaterThan(0);
    for (const target of targets) expect(target).toMatch(/^(192\.0\.2|198\.51\.100|203\.0\.113)\.\d+$/);
  });
});

describe('stale boots (their pibond was killed outright)', () => {
  it('are removed with their temporary directory; live ones, other hosts and unlabelled ones are left alone', async () => {
    const engine = new FakeEngine({ container: () => ({}) });
    const staleDir = join(temp, 'pibond-boot-stale');
    await mkdir(join(staleDir, 'boot'), { recursive: true });
    const create = async (name: string, labels: Record<string, string>) => {
      const container = await engine.docker.createContainer({ name, Image: 'pibond-builder:test', Labels: labels });
      await container.start();
    };
    await create('stale', { ...bootLabels('x', staleDir), 'pibond.pid': String(deadPid) });
    await create('alive', bootLabels('x', join(temp, 'pibond-boot-alive')));
    await create('elsewhere', { ...bootLabels('x', join(temp, 'pibond-boot-elsewhere')), 'pibond.pid': String(deadPid), 'pibond.host': 'another-host' });
    await create('unlabelled', { 'pibond.boot': 'x' });

    const said: string[] = [];
    await removeStaleBoots(engine.docker, 'pibond-builder:test', (m) => said.push(m));
    expect(engine.containers.map((c) => [c.name, c.state])).toEqual([
      ['stale', 'removed'],
      ['alive', 'running'],
      ['elsewhere', 'running'],
      ['unlabelled', 'running'],
    ]);
    expect(await readdir(temp)).not.toContain('pibond-boot-stale');
    expect(said).toEqual([expect.stringContaining(`pibond process ${deadPid}, which is gone: stale`)]);
  });

  it("take their test bed along: it carries the boot's owner labels", async () => {
    const engine = new FakeEngine({ container: () => ({}) });
    const staleDir = join(temp, 'pibond-boot-stale');
    await mkdir(staleDir, { recursive: true });
    const labels = { ...bootLabels('x', staleDir), 'pibond.pid': String(deadPid) };
    for (const [name, more] of [['qemu', {}], ['testbed', { [testbedLabel]: 'same-subnet' }]] as const) {
      const container = await engine.docker.createContainer({ name, Image: 'pibond-builder:test', Labels: { ...labels, ...more } });
      await container.start();
    }
    await removeStaleBoots(engine.docker, 'pibond-builder:test', () => {});
    expect(engine.containers.map((c) => [c.name, c.state])).toEqual([
      ['qemu', 'removed'],
      ['testbed', 'removed'],
    ]);
  });

  it('are told by a dead owner on this host', () => {
    const labels = { ...bootLabels('x', '/tmp/pibond-boot-1'), 'pibond.pid': '42' };
    expect(isStale(labels, hostname(), () => false)).toBe(true);
    expect(isStale(labels, hostname(), () => true)).toBe(false);
    expect(isStale(labels, 'another-host', () => false)).toBe(false);
    expect(isStale({ 'pibond.boot': 'x' }, hostname(), () => false)).toBe(false);
    expect(isStale({ ...labels, 'pibond.pid': 'nonsense' }, hostname(), () => false)).toBe(false);
  });
});

describe('files the containers write into the temporary directory', () => {
  it('are written as the invoking user when that is not root', () => {
    expect(asInvokingUser(['qemu-system-aarch64', '-M', 'virt'], 1000, 1000)).toEqual([
      'setpriv', '--reuid=1000', '--regid=1000', '--clear-groups', '--', 'qemu-system-aarch64', '-M', 'virt',
    ]);
    expect(asInvokingUser(['sh', '-c', 'true'], 0, 0)).toEqual(['sh', '-c', 'true']);
    // No uid at all (not POSIX): nothing to switch to.
    expect(asInvokingUser(['sh'], undefined, undefined)).toEqual(['sh']);
  });

  it('are removed as root, from a container, when they are not the user\'s to remove', async () => {
    const dir = join(temp, 'pibond-boot-x');
    await mkdir(dir);
    const calls: string[] = [];
    let refused = false;
    const remove = async (path: string, opts: { recursive: true; force: true }) => {
      calls.push('rm');
      if (!refused) {
        refused = true;
        throw Object.assign(new Error('EACCES: permission denied'), { code: 'EACCES' });
      }
      await rm(path, opts);
    };
    await removeWorkDir(dir, async () => void calls.push('as root'), remove);
    expect(calls).toEqual(['rm', 'as root', 'rm']);
    expect(await readdir(temp)).toEqual([]);
  });

  it('are not removed as root for any other failure', async () => {
    const remove = async () => {
      throw Object.assign(new Error('EIO: i/o error'), { code: 'EIO' });
    };
    let asRoot = false;
    await expect(removeWorkDir(join(temp, 'x'), async () => void (asRoot = true), remove)).rejects.toThrow('EIO');
    expect(asRoot).toBe(false);
  });
});

describe('SerialLog', () => {
  it('copies a log with a write still in flight, without waiting for a drain that never comes', async () => {
    const log = new SerialLog(join(temp, 'serial.log'));
    // Below the high-water mark: write() returns true, so no 'drain' will ever be emitted.
    log.write(Buffer.from('[    0.000000] Booting Linux\nlogin: '));
    await log.copyTo(join(temp, 'kept', 'serial.log'));
    expect(await readFile(join(temp, 'kept', 'serial.log'), 'utf8')).toBe('[    0.000000] Booting Linux\nlogin: ');
    expect(log.tail).toEqual(['[    0.000000] Booting Linux', 'login: ']);
    await log.close();
  });

  it('still copies after it was closed, and closes once', async () => {
    const log = new SerialLog(join(temp, 'serial.log'));
    log.write(Buffer.from('last words\n'));
    await log.close();
    await log.close();
    log.write(Buffer.from('ignored\n'));
    await log.copyTo(join(temp, 'copy.log'));
    expect(await readFile(join(temp, 'copy.log'), 'utf8')).toBe('last words\n');
  });
});

function until(condition: () => boolean): Promise<true> {
  return poll(() => condition() || undefined, { what: 'the boot to reach that stage', timeoutMs: 5000, intervalMs: 10 });
}
