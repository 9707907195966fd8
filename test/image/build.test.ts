/** The build orchestrator with fake steps: order, verification first, cleanups on every path. */
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BuildOptions, Step } from '../../scripts/image/context.ts';
import { build } from '../../scripts/image/index.ts';
import { Progress } from '../../scripts/lib/log.ts';

const definitionFile = join(import.meta.dirname, '..', '..', 'images', 'default.yaml');
let outDir: string;
let events: string[];

function options(): BuildOptions {
  return { definitionFile, outDir, cache: true, cacheVolume: 'unused', overlaysDirs: [], sourceDateEpoch: 0 };
}

function quietProgress(): Progress {
  return new Progress({ live: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WriteStream });
}

function fakeStep(name: string, behaviour: { fail?: boolean; cleanup?: boolean; verifyFails?: boolean; wait?: Promise<void> } = {}): Step {
  return {
    title: name,
    async verify() {
      events.push(`verify ${name}`);
      if (behaviour.verifyFails) throw new Error(`${name} cannot run`);
    },
    async run() {
      events.push(`run ${name}`);
      if (behaviour.wait) await behaviour.wait;
      if (behaviour.fail) throw new Error(`${name} failed`);
    },
    ...(behaviour.cleanup ? { cleanup: async () => void events.push(`cleanup ${name}`) } : {}),
  };
}

beforeEach(async () => {
  outDir = await mkdtemp(join(tmpdir(), 'pibond-build-test-'));
  events = [];
});
afterEach(async () => {
  await rm(outDir, { recursive: true, force: true });
});

describe('build', () => {
  it('verifies every step before running any, then runs them in order and records timings', async () => {
    const result = await build(options(), quietProgress(), undefined, [fakeStep('a'), fakeStep('b', { cleanup: true })]);
    expect(events).toEqual(['verify a', 'verify b', 'run a', 'run b', 'cleanup b']);
    expect(result.timings.map((t) => t.name)).toEqual(['a', 'b']);
  });

  it('runs nothing when a verification fails', async () => {
    await expect(build(options(), quietProgress(), undefined, [fakeStep('a'), fakeStep('b', { verifyFails: true })])).rejects.toThrow('b cannot run');
    expect(events).toEqual(['verify a', 'verify b']);
  });

  it('cleans up in reverse order after a failing step and leaves no staging directory', async () => {
    const plan = [fakeStep('a', { cleanup: true }), fakeStep('b', { cleanup: true }), fakeStep('c', { fail: true }), fakeStep('d', { cleanup: true })];
    await expect(build(options(), quietProgress(), undefined, plan)).rejects.toThrow('c failed');
    expect(events.slice(-3)).toEqual(['run c', 'cleanup b', 'cleanup a']);
    expect(events).not.toContain('run d');
    expect((await readdir(outDir)).filter((f) => f.startsWith('.staging'))).toEqual([]);
  });

  it('on abort, runs the cleanups at once (ending the running step) and stops', async () => {
    const abort = new AbortController();
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const plan: Step[] = [
      { title: 'container', run: async () => void events.push('run container'), cleanup: async () => { events.push('remove container'); release(); } },
      fakeStep('long', { wait: blocked }),
      fakeStep('never'),
    ];
    const running = build(options(), quietProgress(), abort.signal, plan);
    while (!events.includes('run long')) await new Promise((r) => setTimeout(r, 5));
    abort.abort(new Error('interrupted'));
    await expect(running).rejects.toThrow('interrupted');
    expect(events).toContain('remove container');
    expect(events).not.toContain('run never');
  });

  it('on abort in the middle, runs each cleanup exactly once, newest first, and the build awaits them', async () => {
    const abort = new AbortController();
    let release!: () => void;
    const blocked = new Promise<void>((resolve) => (release = resolve));
    const slowCleanup = (name: string, then?: () => void): Step => ({
      title: name,
      run: async () => void events.push(`run ${name}`),
      cleanup: async () => {
        events.push(`cleanup ${name} started`);
        await new Promise((r) => setTimeout(r, 10));
        events.push(`cleanup ${name} done`);
        then?.();
      },
    });
    // "container"'s cleanup ends the running step, as removing the container does.
    const plan: Step[] = [slowCleanup('a'), slowCleanup('container', () => release()), { ...fakeStep('long', { wait: blocked, fail: true }), cleanup: async () => void events.push('cleanup long') }, fakeStep('never', { cleanup: true })];
    const running = build(options(), quietProgress(), abort.signal, plan);
    while (!events.includes('run long')) await new Promise((r) => setTimeout(r, 5));
    abort.abort(new Error('interrupted'));
    await expect(running).rejects.toThrow();
    expect(events.filter((e) => e.startsWith('cleanup'))).toEqual([
      'cleanup long',
      'cleanup container started',
      'cleanup container done',
      'cleanup a started',
      'cleanup a done',
    ]);
    expect(events).not.toContain('run never');
  });

  it('runs the cleanups once after success and after failure', async () => {
    await build(options(), quietProgress(), undefined, [fakeStep('a', { cleanup: true }), fakeStep('b', { cleanup: true })]);
    expect(events.filter((e) => e.startsWith('cleanup'))).toEqual(['cleanup b', 'cleanup a']);
    events = [];
    await expect(build(options(), quietProgress(), undefined, [fakeStep('a', { cleanup: true }), fakeStep('b', { cleanup: true, fail: true })])).rejects.toThrow('b failed');
    expect(events.filter((e) => e.startsWith('cleanup'))).toEqual(['cleanup b', 'cleanup a']);
  });

  it('runs the other cleanups when one fails; the step\'s error is the one reported', async () => {
    const failing: Step = { title: 'x', run: async () => {}, cleanup: async () => { throw new Error('x cleanup broke'); } };
    await expect(build(options(), quietProgress(), undefined, [fakeStep('a', { cleanup: true }), failing, fakeStep('c', { fail: true })])).rejects.toThrow('c failed');
    expect(events).toContain('cleanup a');
    events = [];
    await expect(build(options(), quietProgress(), undefined, [fakeStep('a', { cleanup: true }), failing])).rejects.toThrow('x cleanup broke');
    expect(events).toContain('cleanup a');
  });
});
