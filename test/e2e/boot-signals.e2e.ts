/**
 * Stopping `pibond boot --test` at each stage of a boot, with each stop signal, as a user or a CI
 * job does (Ctrl-C, `kill`, a closed terminal): pibond exits with 128 + the signal's number, and
 * leaves no container, no QEMU and no temporary directory. A SIGKILL cannot be handled: the next
 * `pibond boot` removes what it left. The stages are told by the CLI's own lines.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { processAlive } from '../../scripts/boot/session.ts';
import { type Docker, connectDocker, listContainers, removeContainer } from '../../scripts/lib/docker.ts';
import { poll } from '../../scripts/lib/poll.ts';
import { exitCodeFor } from '../../scripts/lib/signals.ts';
import { type CliResult, repoRoot, startPibond } from './_pibond.ts';

interface Stage {
  name: string;
  /** True once the CLI's output (stderr) shows the boot has reached the stage. */
  reached: (output: string) => boolean;
}

const stages = {
  preparing: { name: 'while the boot files are prepared (the one-shot container)', reached: (out) => /^Preparing the boot files/m.test(out) },
  qemuStarted: { name: 'after QEMU started, before QMP connected', reached: (out) => /^QEMU started/m.test(out) },
  waitingForService: { name: 'while waiting for the status service', reached: (out) => /^\.\.\. the status service answers/m.test(out) },
  scenario: { name: 'during the scenario', reached: (out) => /^ok {2}the status service answers[^]*\n\.\.\. /m.test(out) },
} satisfies Record<string, Stage>;

/** Every stage gets a signal; together they cover all three. */
const cases: Array<{ stage: Stage; signal: NodeJS.Signals }> = [
  { stage: stages.preparing, signal: 'SIGHUP' },
  { stage: stages.qemuStarted, signal: 'SIGINT' },
  { stage: stages.waitingForService, signal: 'SIGTERM' },
  { stage: stages.scenario, signal: 'SIGHUP' },
];

/** Reaching a stage may include building the builder image; booting to the scenario takes minutes under TCG. */
const reachStageMs = 15 * 60_000;
/** From the signal to the CLI's exit: its cleanups are bounded (container removal 20 s, serial log 5 s). */
const exitAfterSignalMs = 90_000;

/** One `pibond boot --test` in its own TMPDIR, watched: its output, and every boot container it made. */
class Run {
  output = '';
  readonly containerIds = new Set<string>();
  readonly done: Promise<CliResult>;
  readonly pid: number;
  private readonly child: ChildProcess;

  constructor(
    image: string,
    readonly tmp: string,
    private readonly docker: Docker,
    /** Interactive, on a terminal of its own (script(1)): its output is the terminal's. */
    terminal = false,
  ) {
    const { child, done } = terminal ? startInTerminal(['boot', image], tmp) : startPibond(['boot', image, '--test', '--report', join(tmp, 'report.json')], { TMPDIR: tmp });
    this.child = child;
    this.done = done;
    this.pid = child.pid ?? 0;
    const read = (chunk: Buffer) => (this.output += chunk.toString());
    child.stderr?.on('data', read);
    if (terminal) child.stdout?.on('data', read);
  }

  /** Waits for the stage, noting the boot containers on the way (for the QEMU check afterwards). */
  async reach(stage: Stage): Promise<void> {
    await poll(
      async () => {
        for (const info of await this.containers()) this.containerIds.add(info.Id);
        if (stage.reached(this.output)) return true;
        if (this.child.exitCode !== null) throw new Error(`pibond exited (${this.child.exitCode}) before the stage; its output:\n${this.output}`);
        return undefined;
      },
      { what: `pibond boot to reach the stage "${stage.name}"`, timeoutMs: reachStageMs, intervalMs: 100, retryable: () => false },
    );
    // The line comes just before the stage's container is created: kill only once it exists.
    await poll(
      async () => {
        for (const info of await this.containers()) this.containerIds.add(info.Id);
        return this.containerIds.size > 0 || undefined;
      },
      { what: 'a boot container of this run', timeoutMs: 30_000, intervalMs: 20 },
    );
  }

  kill(signal: NodeJS.Signals): void {
    this.child.kill(signal);
  }

  async exit(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    const timer = new Promise<never>((_, reject) =>
      setTimeout(() => reject(new Error(`pibond did not exit within ${exitAfterSignalMs / 1000} s of the signal; its output:\n${this.output}`)), exitAfterSignalMs).unref(),
    );
    return Promise.race([this.done, timer]);
  }

  /**
   * The boot containers this run's pibond made (running or not): their temporary directory is in
   * this run's TMPDIR; they are labelled with its pid, and QEMU's name carries the pid too.
   */
  async containers(): Promise<Docker.ContainerInfo[]> {
    const boots = await listContainers(this.docker, ['pibond.boot']);
    return boots.filter(
      (info) =>
        info.Labels['pibond.workdir']?.startsWith(`${this.tmp}/`) ||
        info.Labels['pibond.pid'] === String(this.pid) ||
        info.Names.some((name) => name.includes(`-${this.pid}-`)),
    );
  }

  /** What is left of this run: containers, processes in them (QEMU), temporary directories. */
  async leftovers(): Promise<{ containers: string[]; processes: string[]; tempDirs: string[] }> {
    return {
      containers: (await this.containers()).map((info) => info.Names[0] ?? info.Id),
      processes: await processesIn([...this.containerIds]),
      tempDirs: (await readdir(this.tmp)).filter((name) => name.startsWith('pibond-boot-')),
    };
  }

  /** After the test, whatever happened: no process, no container. */
  async release(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
    for (const info of await this.containers()) await removeContainer(this.docker.getContainer(info.Id));
  }
}

/** `pibond ARGS` on a pseudo-terminal of its own, as in a terminal window; closing it (killing `script`) hangs it up. */
function startInTerminal(args: string[], tmp: string): { child: ChildProcess; done: Promise<CliResult> } {
  const quote = (word: string) => `'${word.replace(/'/g, "'\\''")}'`;
  const command = ['exec', ...[process.execPath, join(repoRoot, 'scripts', 'pibond.mjs'), ...args].map(quote)].join(' ');
  const child = spawn('script', ['-qfec', command, '/dev/null'], {
    cwd: repoRoot,
    env: { ...process.env, CI: 'true', TMPDIR: tmp, SHELL: '/bin/sh' },
    stdio: ['pipe', 'pipe', 'pipe'],
  });
  const done = new Promise<CliResult>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout: '', stderr: '' })));
  return { child, done };
}

/** The host processes (command names) still running in any of these containers, read from /proc/<pid>/cgroup. */
async function processesIn(containerIds: string[]): Promise<string[]> {
  if (containerIds.length === 0) return [];
  const found: string[] = [];
  for (const pid of (await readdir('/proc')).filter((entry) => /^\d+$/.test(entry))) {
    const cgroup = await readFile(`/proc/${pid}/cgroup`, 'utf8').catch(() => '');
    if (!containerIds.some((id) => cgroup.includes(id))) continue;
    const command = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '?');
    found.push(`${pid} ${command.trim()}`);
  }
  return found;
}

export function describeBootSignals(image: () => string): void {
  describe('pibond boot, stopped at every stage', { tags: ['slow'] }, () => {
    let docker: Docker;
    const runs: Run[] = [];
    const temps: string[] = [];

    beforeAll(async () => {
      docker = await connectDocker();
    });

    afterAll(async () => {
      for (const run of runs) await run.release();
      for (const dir of temps) await rm(dir, { recursive: true, force: true });
    });

    /** A fresh TMPDIR per run, so "no pibond-boot-* left in it" is exact. */
    async function start(tmp?: string, terminal = false): Promise<Run> {
      const dir = tmp ?? (await mkdtemp(join(tmpdir(), 'pibond-signals-')));
      if (!tmp) temps.push(dir);
      const run = new Run(image(), dir, docker, terminal);
      runs.push(run);
      return run;
    }

    it.each(cases)(
      '$signal $stage.name: exits 128+n, no container, QEMU or temporary directory left',
      async ({ stage, signal }) => {
        const run = await start();
        await run.reach(stage);
        run.kill(signal);
        const { code, signal: killedBy } = await run.exit();
        expect({ exit: { code, signal: killedBy }, left: await run.leftovers() }, run.output).toEqual({
          exit: { code: exitCodeFor(signal), signal: null },
          left: { containers: [], processes: [], tempDirs: [] },
        });
      },
      reachStageMs + exitAfterSignalMs + 60_000,
    );

    it(
      'a closed terminal (SIGHUP to an interactive boot, its console streaming): no container, QEMU or temporary directory left',
      async () => {
        const run = await start(undefined, true);
        await run.reach({ name: 'the console, QMP connected', reached: (out) => /^Forwarded to the guest/m.test(out) });
        // The way in: a key made for this boot, in its temporary directory (checked gone below).
        expect(run.output).toMatch(/log in with this boot's key.*\r?\n\s+ssh -i \S+\/pibond-boot-\w+\/id_ed25519 .*-p \d+ pi@127\.0\.0\.1/);
        const pibondPid = Number((await run.containers())[0]?.Labels['pibond.pid']);
        expect(pibondPid).toBeGreaterThan(0);
        // The terminal window closes: its master side goes, the kernel hangs up the session.
        run.kill('SIGKILL');
        await poll(() => (processAlive(pibondPid) ? undefined : true), { what: `pibond (pid ${pibondPid}) to end after the hang-up`, timeoutMs: exitAfterSignalMs, intervalMs: 200 });
        expect(await run.leftovers(), run.output).toEqual({ containers: [], processes: [], tempDirs: [] });
      },
      reachStageMs + exitAfterSignalMs + 60_000,
    );

    it(
      'SIGKILL cannot be handled: the next pibond boot removes the container and temporary directory it left',
      async () => {
        const killed = await start();
        await killed.reach(stages.waitingForService);
        killed.kill('SIGKILL');
        expect((await killed.exit()).signal).toBe('SIGKILL');
        const left = await killed.leftovers();
        expect(left.containers, 'a SIGKILL leaves the QEMU container').toHaveLength(1);
        expect(left.tempDirs).toHaveLength(1);

        const next = await start(killed.tmp);
        await next.reach(stages.preparing);
        expect(next.output).toMatch(new RegExp(`^Removing a boot left behind by pibond process ${killed.pid}, which is gone`, 'm'));
        next.kill('SIGTERM');
        expect((await next.exit()).code).toBe(exitCodeFor('SIGTERM'));
        expect(await killed.leftovers()).toEqual({ containers: [], processes: [], tempDirs: [] });
        expect(await next.leftovers()).toEqual({ containers: [], processes: [], tempDirs: [] });
      },
      2 * (reachStageMs + exitAfterSignalMs),
    );
  });
}
