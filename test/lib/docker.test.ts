/** The Docker client's run and exec paths against a fake engine (the real one is in test/e2e). */
import { PassThrough } from 'node:stream';
import Docker from 'dockerode';
import { describe, expect, it } from 'vitest';
import { CommandFailed, LineSplitter, execIn, removeContainer, runContainer } from '../../scripts/lib/docker.ts';

/** One frame of Docker's multiplexed stream: 1 = stdout, 2 = stderr. */
function frame(stream: 1 | 2, text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

function fakeEngine(statusCode: number, frames: Buffer[]) {
  const calls: string[] = [];
  const docker = new Docker({ socketPath: '/nonexistent' });
  const output = new PassThrough();
  const container = {
    attach: async () => output,
    start: async () => {
      calls.push('start');
      for (const f of frames) output.write(f);
      output.end();
    },
    wait: async () => ({ StatusCode: statusCode }),
    remove: async (opts: unknown) => void calls.push(`remove ${JSON.stringify(opts)}`),
  };
  docker.createContainer = (async (opts: Docker.ContainerCreateOptions) => {
    calls.push(`create ${opts.Image} ${(opts.Cmd as string[]).join(' ')} tty=${opts.Tty}`);
    return container;
  }) as unknown as Docker['createContainer'];
  return { docker, calls };
}

describe('runContainer', () => {
  it('streams demuxed lines, then removes the container with its volumes', async () => {
    const { docker, calls } = fakeEngine(0, [frame(1, 'hello\nwor'), frame(2, 'warn\n'), frame(1, 'ld\n')]);
    const lines: string[] = [];
    await runContainer(docker, { image: 'img', cmd: ['echo', 'hi'], sink: (line, stream) => lines.push(`${stream}: ${line}`) });
    expect(lines).toEqual(['stdout: hello', 'stderr: warn', 'stdout: world']);
    expect(calls).toEqual(['create img echo hi tty=false', 'start', 'remove {"force":true,"v":true}']);
  });

  it('turns a non-zero exit into CommandFailed with the last lines, and still removes the container', async () => {
    const { docker, calls } = fakeEngine(3, [frame(2, 'E: broken\n')]);
    const err = await runContainer(docker, { image: 'img', cmd: ['false'], sink: () => {} }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(CommandFailed);
    expect((err as CommandFailed).exitCode).toBe(3);
    expect((err as CommandFailed).tail).toEqual(['E: broken']);
    expect((err as Error).message).toBe('false exited with status 3; its last lines:\n  E: broken');
    expect(calls.at(-1)).toMatch(/^remove/);
  });
});

describe('execIn', () => {
  function fakeContainer(exitCode: number, frames: Buffer[]) {
    const created: unknown[] = [];
    const container = {
      exec: async (opts: unknown) => {
        created.push(opts);
        return {
          start: async () => {
            const s = new PassThrough();
            for (const f of frames) s.write(f);
            s.end();
            return s;
          },
          inspect: async () => ({ ExitCode: exitCode }),
        };
      },
    } as unknown as Docker.Container;
    return { container, created };
  }

  it('passes the environment and reports success', async () => {
    const { container, created } = fakeContainer(0, [frame(1, 'ok\n')]);
    const lines: string[] = [];
    await execIn(new Docker({ socketPath: '/nonexistent' }), container, ['true'], { env: { A: '1' }, sink: (l) => lines.push(l) });
    expect(lines).toEqual(['ok']);
    expect(created[0]).toMatchObject({ Cmd: ['true'], Env: ['A=1'], Tty: false });
  });

  it('fails on a non-zero exit code', async () => {
    const { container } = fakeContainer(100, []);
    await expect(execIn(new Docker({ socketPath: '/nonexistent' }), container, ['apt-get'], { sink: () => {} })).rejects.toThrow(
      'apt-get exited with status 100',
    );
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
