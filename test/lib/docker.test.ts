/** The Docker client against the fake engine (the real one is in test/e2e): the order of calls, output, exits, cleanup. */
import { Readable } from 'node:stream';
import type Docker from 'dockerode';
import { describe, expect, it, vi } from 'vitest';
import {
  CommandFailed,
  EngineProgressError,
  LineSplitter,
  buildImage,
  containerById,
  execIn,
  importImage,
  listContainers,
  pullImage,
  putArchive,
  removeContainer,
  removeImage,
  runContainer,
  runToExit,
  startContainer,
} from '../../scripts/lib/docker.ts';
import { type ContainerScript, FakeEngine, engineError } from './_fake-engine.ts';

function engineRunning(script: ContainerScript): FakeEngine {
  return new FakeEngine({ container: () => script });
}

describe('runContainer', () => {
  it('attaches before it starts, streams demuxed lines, then removes the container with its volumes', async () => {
    const engine = engineRunning({
      output: [
        ['stdout', 'hello\nwor'],
        ['stderr', 'warn\n'],
        ['stdout', 'ld\n'],
      ],
      exitCode: 0,
    });
    const lines: string[] = [];
    await runContainer(engine.docker, { image: 'img', cmd: ['echo', 'hi'], sink: (line, stream) => lines.push(`${stream}: ${line}`) });
    expect(lines).toEqual(['stdout: hello', 'stderr: warn', 'stdout: world']);
    // Attached after start, the output printed at start would be lost: the order is the contract.
    expect(engine.calls).toEqual(['create', 'attach', 'start', 'wait', 'remove']);
    expect(engine.container().opts).toMatchObject({ Image: 'img', Cmd: ['echo', 'hi'], Tty: false });
    expect(engine.log.at(-1)?.args).toEqual({ force: true, v: true });
  });

  it('turns a non-zero exit into CommandFailed with the last lines, and still removes the container', async () => {
    const engine = engineRunning({ output: [['stderr', 'E: broken\n']], exitCode: 3 });
    const err = await runContainer(engine.docker, { image: 'img', cmd: ['false'], sink: () => {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailed);
    expect((err as CommandFailed).exitCode).toBe(3);
    expect((err as CommandFailed).tail).toEqual(['E: broken']);
    expect((err as Error).message).toBe('false exited with status 3; its last lines:\n  E: broken');
    expect(engine.calls).toEqual(['create', 'attach', 'start', 'wait', 'remove']);
  });

  it.each(['attach', 'start'] as const)('removes the container when %s fails, and reports that failure', async (call) => {
    const engine = engineRunning({ exitCode: 0, fail: { [call]: engineError(500, `${call} broke`) } });
    await expect(runContainer(engine.docker, { image: 'img', cmd: ['true'], sink: () => {} })).rejects.toThrow(`${call} broke`);
    expect(engine.calls.at(-1)).toBe('remove');
    expect(engine.container().state).toBe('removed');
  });

  it('hands the container out as soon as it exists, so an interrupt can remove it', async () => {
    const engine = engineRunning({ exitCode: 0 });
    const seen: string[] = [];
    await runContainer(engine.docker, { image: 'img', cmd: ['true'], sink: () => {}, onCreated: (c) => seen.push(`${c.id} after ${engine.calls.join(',')}`) });
    expect(seen).toEqual(['fake0 after create']);
  });
});

describe('runToExit', () => {
  it('hands back the exit status and the last lines, for the caller to explain, and removes the container', async () => {
    const engine = engineRunning({ output: [['stderr', 'no config.txt\n']], exitCode: 92 });
    expect(await runToExit(engine.docker, { image: 'img', cmd: ['prepare'] })).toEqual({ statusCode: 92, tail: ['no config.txt'] });
    expect(engine.calls).toEqual(['create', 'attach', 'start', 'wait', 'remove']);
  });

  it('stops waiting at the signal, throws its reason, and removes the still running container', async () => {
    const engine = engineRunning({});
    const stop = new AbortController();
    const run = runToExit(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'] }, { signal: stop.signal });
    await vi.waitFor(() => expect(engine.calls).toContain('wait'));
    stop.abort(new Error('interrupted'));
    await expect(run).rejects.toThrow('interrupted');
    expect(engine.container().state).toBe('removed');
  });

  it('gives up on a removal that hangs after removeWithinMs, so a stop never hangs on the engine', async () => {
    const engine = engineRunning({ exitCode: 0 });
    let removeCalls = 0;
    const hangingRemove = (container: Docker.Container) => {
      container.remove = () => {
        removeCalls++;
        return new Promise<never>(() => {});
      };
    };
    const started = performance.now();
    expect(await runToExit(engine.docker, { image: 'img', cmd: ['true'], onCreated: hangingRemove }, { removeWithinMs: 50 })).toEqual({ statusCode: 0, tail: [] });
    expect(removeCalls).toBe(1);
    expect(performance.now() - started).toBeLessThan(5000);
  });
});

describe('startContainer', () => {
  it('creates, attaches, then starts, with what a build or boot container needs', async () => {
    const engine = engineRunning({ output: [['stdout', 'ready\n']] });
    const lines: string[] = [];
    const running = await startContainer(engine.docker, {
      image: 'builder',
      cmd: ['sleep', 'infinity'],
      name: 'pibond-build-x',
      labels: { 'org.pibond.role': 'build' },
      binds: ['cache:/cache'],
      volumes: ['/work'],
      capAdd: ['SYS_ADMIN'],
      securityOpt: ['seccomp=unconfined'],
      networkMode: 'host',
      devices: ['/dev/kvm'],
      init: true,
      sink: (line) => lines.push(line),
    });
    expect(engine.calls).toEqual(['create', 'attach', 'start', 'wait']);
    expect(engine.container().opts).toMatchObject({
      Image: 'builder',
      name: 'pibond-build-x',
      Labels: { 'org.pibond.role': 'build' },
      Volumes: { '/work': {} },
      Tty: false,
      OpenStdin: false,
      HostConfig: {
        Binds: ['cache:/cache'],
        CapAdd: ['SYS_ADMIN'],
        SecurityOpt: ['seccomp=unconfined'],
        NetworkMode: 'host',
        Init: true,
        Devices: [{ PathOnHost: '/dev/kvm', PathInContainer: '/dev/kvm', CgroupPermissions: 'rwm' }],
      },
    });
    expect(lines).toEqual(['ready']);
    await running.remove();
    expect(engine.calls).toEqual(['create', 'attach', 'start', 'wait', 'remove']);
    expect(await running.exited).toEqual({ statusCode: 137 });
  });

  it('settles `exited` with the exit status and the output drained', async () => {
    const engine = engineRunning({ output: [['stderr', 'qemu: bad\n']], exitCode: 1 });
    const running = await startContainer(engine.docker, { image: 'img', cmd: ['qemu'] });
    expect(await running.exited).toEqual({ statusCode: 1 });
    expect(running.tail()).toEqual(['qemu: bad']);
    await running.remove();
  });

  it('counts a container removed under our feet as ended, never as a rejection', async () => {
    const engine = engineRunning({ fail: { wait: engineError(404, 'no such container') } });
    const running = await startContainer(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'] });
    expect(await running.exited).toEqual({ statusCode: -1 });
    await running.remove();
  });

  it('removes once however often remove() is called, and accepts a container already gone', async () => {
    const engine = engineRunning({});
    const running = await startContainer(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'] });
    await Promise.all([running.remove(), running.remove()]);
    await running.remove();
    expect(engine.calls.filter((c) => c === 'remove')).toHaveLength(1);

    const other = await startContainer(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'] });
    await removeContainer(other.container);
    await expect(other.remove()).resolves.toBeUndefined();
  });

  it('finds a container by id, as listContainers reports it', async () => {
    const engine = engineRunning({});
    const running = await startContainer(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'], labels: { 'pibond.boot': 'x' } });
    const [info] = await listContainers(engine.docker, ['pibond.boot']);
    await removeContainer(containerById(engine.docker, info!.Id));
    expect(engine.container().state).toBe('removed');
    await running.remove();
  });

  it.each(['attach', 'start'] as const)('removes the container when %s fails, and reports that failure', async (call) => {
    const engine = engineRunning({ fail: { [call]: engineError(500, `${call} broke`) } });
    await expect(startContainer(engine.docker, { image: 'img', cmd: ['true'] })).rejects.toThrow(`${call} broke`);
    expect(engine.calls.at(-1)).toBe('remove');
    expect(engine.container().state).toBe('removed');
  });

  it('reports the attach failure even when the removal after it fails too', async () => {
    const engine = engineRunning({ fail: { attach: engineError(500, 'attach broke'), remove: engineError(500, 'remove broke') } });
    await expect(startContainer(engine.docker, { image: 'img', cmd: ['true'] })).rejects.toThrow('attach broke');
  });

  it('interactive: a TTY, raw bytes out, keys in, resizes passed on', async () => {
    const engine = engineRunning({ output: [['stdout', 'login: ']] });
    const bytes: string[] = [];
    const lines: string[] = [];
    const running = await startContainer(engine.docker, {
      image: 'img',
      cmd: ['qemu'],
      interactive: true,
      onBytes: (chunk) => bytes.push(chunk.toString()),
      sink: (line) => lines.push(line),
    });
    expect(engine.container().opts).toMatchObject({ Tty: true, OpenStdin: true, AttachStdin: true });
    expect(engine.log.find((c) => c.call === 'attach')?.args).toMatchObject({ stdin: true, hijack: true });
    await new Promise((resolve) => setImmediate(resolve));
    expect(bytes.join('')).toBe('login: ');
    running.write('root\n');
    expect(Buffer.concat(engine.container().stdin).toString()).toBe('root\n');
    await running.resize({ rows: 40, columns: 120 });
    expect(engine.log.find((c) => c.call === 'resize')?.args).toEqual({ h: 40, w: 120 });
    await running.remove();
    // The partial last line still reaches the sink when the output ends.
    expect(lines).toEqual(['login: ']);
  });

  it('refuses to write to a container without stdin', async () => {
    const engine = engineRunning({});
    const running = await startContainer(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'] });
    expect(() => running.write('x')).toThrow(/without stdin/);
    await running.remove();
  });
});

describe('execIn', () => {
  async function runningEngine(exec: FakeEngine['options']['exec']) {
    const engine = new FakeEngine({ container: () => ({}), exec });
    const running = await startContainer(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'] });
    return { engine, running };
  }

  it('passes the environment and reports success', async () => {
    const { engine, running } = await runningEngine(() => ({ output: [['stdout', 'ok\n']], exitCode: 0 }));
    const lines: string[] = [];
    await execIn(engine.docker, running.container, ['true'], { env: { A: '1' }, sink: (l) => lines.push(l) });
    expect(lines).toEqual(['ok']);
    expect(engine.log.find((c) => c.call === 'exec')?.args).toMatchObject({ Cmd: ['true'], Env: ['A=1'], Tty: false });
    expect(engine.calls.slice(-3)).toEqual(['exec', 'exec.start', 'exec.inspect']);
    await running.remove();
  });

  it('fails on a non-zero exit code', async () => {
    const { engine, running } = await runningEngine(() => ({ exitCode: 100 }));
    await expect(execIn(engine.docker, running.container, ['apt-get'], { sink: () => {} })).rejects.toThrow('apt-get exited with status 100');
    await running.remove();
  });

  it('feeds stdin to the command', async () => {
    const { engine, running } = await runningEngine((cmd, stdin) => ({ output: [['stdout', `${cmd[0]} read ${stdin?.toString()}\n`]] }));
    const lines: string[] = [];
    await execIn(engine.docker, running.container, ['cat'], { stdin: Readable.from([Buffer.from('abc')]), sink: (l) => lines.push(l) });
    expect(lines).toEqual(['cat read abc']);
    await running.remove();
  });
});

describe('removeContainer', () => {
  it('treats an already removed container as removed, and rethrows other engine errors', async () => {
    const gone = { remove: async () => Promise.reject(Object.assign(new Error('no such container'), { statusCode: 404 })) } as unknown as Docker.Container;
    await expect(removeContainer(gone)).resolves.toBeUndefined();
    const broken = { remove: async () => Promise.reject(Object.assign(new Error('engine down'), { statusCode: 500 })) } as unknown as Docker.Container;
    await expect(removeContainer(broken)).rejects.toThrow('engine down');
  });
});

describe('images', () => {
  it('buildImage sends the context, streams the build output and tags the image', async () => {
    const engine = new FakeEngine();
    const lines: string[] = [];
    await buildImage(engine.docker, Readable.from([Buffer.from('context')]), { tag: 'b:1', buildArgs: { BASE: 'x' } }, (l) => lines.push(l));
    expect(lines).toEqual(['Step 1/1 : FROM base', 'Successfully built']);
    expect(engine.buildContexts[0]?.toString()).toBe('context');
    expect(engine.log[0]?.args).toMatchObject({ t: 'b:1', buildargs: { BASE: 'x' }, rm: true, forcerm: true });
    expect(engine.images.has('b:1')).toBe(true);
  });

  it("buildImage surfaces the engine's error event with the last lines", async () => {
    const engine = new FakeEngine({
      build: () => [{ stream: 'E: Unable to locate package qemu\n' }, { error: 'RUN apt-get install failed', errorDetail: { message: 'exit code 100' } }],
    });
    const err = await buildImage(engine.docker, Readable.from([Buffer.from('')]), { tag: 'b:1' }, () => {}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(EngineProgressError);
    expect((err as EngineProgressError).message).toBe('exit code 100');
    expect((err as EngineProgressError).tail).toEqual(['E: Unable to locate package qemu']);
  });

  it('pullImage, importImage and removeImage (absent is fine)', async () => {
    const engine = new FakeEngine();
    await pullImage(engine.docker, 'debian:bookworm-slim');
    await importImage(engine.docker, Readable.from([Buffer.from('rootfs')]), 'pibond-base', 'bookworm');
    expect([...engine.images]).toEqual(['debian:bookworm-slim', 'pibond-base:bookworm']);
    await removeImage(engine.docker, 'pibond-base:bookworm');
    await removeImage(engine.docker, 'pibond-base:bookworm');
    expect([...engine.images]).toEqual(['debian:bookworm-slim']);
    const offline = new FakeEngine({ pullError: engineError(500, 'registry unreachable') });
    await expect(pullImage(offline.docker, 'debian:bookworm-slim')).rejects.toThrow('registry unreachable');
  });
});

describe('putArchive and listContainers', () => {
  it('puts an archive at a path, and finds containers by label', async () => {
    const engine = new FakeEngine({ container: () => ({}) });
    const build = await startContainer(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'], labels: { 'org.pibond.role': 'build' } });
    const boot = await startContainer(engine.docker, { image: 'img', cmd: ['sleep', 'infinity'], labels: { 'pibond.boot': 'default' } });
    await putArchive(build.container, Buffer.from('tar'), '/work/rootfs');
    expect(engine.container('fake0').archives).toEqual([{ path: '/work/rootfs', content: Buffer.from('tar') }]);
    expect((await listContainers(engine.docker, ['org.pibond.role=build'])).map((c) => c.Id)).toEqual(['fake0']);
    expect((await listContainers(engine.docker, ['pibond.boot'])).map((c) => c.Id)).toEqual(['fake1']);
    await Promise.all([build.remove(), boot.remove()]);
  });
});

describe('LineSplitter', () => {
  it('joins lines split across chunks, handles CR progress lines, keeps a bounded tail', () => {
    const lines: string[] = [];
    const splitter = new LineSplitter((l) => lines.push(l), 'stdout', 2);
    splitter.write('a\nb');
    splitter.write('c\r50%\rdone\n');
    splitter.write('last');
    splitter.end();
    expect(lines).toEqual(['a', 'bc', '50%', 'done', 'last']);
    expect(splitter.tail).toEqual(['done', 'last']);
  });
});
