/**
 * A fake Docker engine for unit tests: the part of dockerode that scripts/lib/docker.ts uses,
 * in memory, recording every call IN ORDER so a test can say "attach came before start".
 *
 * It behaves like the real engine where the order matters: a container's output is written when
 * it starts, to the streams attached at that moment only (attach later, and the output is lost);
 * wait() settles when the container exits; removing a running container kills it (status 137).
 *
 *   const engine = new FakeEngine({ container: () => ({ output: [['stdout', 'hi\n']], exitCode: 0 }) });
 *   await runContainer(engine.docker, { image: 'img', cmd: ['echo', 'hi'], sink });
 *   expect(engine.calls).toEqual(['create', 'attach', 'start', 'wait', 'remove']);
 *
 * `calls` holds the verbs; `log` the same calls with their container and arguments.
 */
import { Duplex, PassThrough, type Readable } from 'node:stream';
import Docker from 'dockerode';

export type Call =
  | 'create'
  | 'attach'
  | 'start'
  | 'wait'
  | 'remove'
  | 'resize'
  | 'exec'
  | 'exec.start'
  | 'exec.inspect'
  | 'putArchive'
  | 'image.inspect'
  | 'image.remove'
  | 'buildImage'
  | 'pull'
  | 'importImage'
  | 'listContainers';

export interface LoggedCall {
  call: Call;
  /** The container's name (or its generated id) for container calls, the image for image calls. */
  target?: string;
  args?: unknown;
}

/** How one created container behaves. */
export interface ContainerScript {
  /** Written at start, in order, to the streams attached then. */
  output?: Array<['stdout' | 'stderr', string]>;
  /** The exit status right after its output; leave it out for a container that runs until removed (or `exit`). */
  exitCode?: number;
  /** Make that call on this container fail with this error (see `engineError`). */
  fail?: Partial<Record<'attach' | 'start' | 'wait' | 'remove', Error>>;
}

/** What an exec'd command does: its output and exit code, given what was written to its stdin. */
export interface ExecScript {
  /** Text, or bytes (a binary stream such as send-file.mjs's). */
  output?: Array<['stdout' | 'stderr', string | Buffer]>;
  exitCode?: number;
}

export interface FakeEngineOptions {
  /** Each created container's behaviour, from its create options; by default it exits 0 silently. */
  container?: (opts: Docker.ContainerCreateOptions) => ContainerScript;
  /** Each exec's behaviour; by default it exits 0 silently. */
  exec?: (cmd: string[], stdin: Buffer | undefined) => ExecScript;
  /** Images present from the start (`name:tag`). */
  images?: string[];
  /** The progress events a build sends; an event with `error` makes it fail (and tag nothing). */
  build?: (context: Buffer, opts: Record<string, unknown>) => Array<Record<string, unknown>>;
  /** An error pull() throws, as when no registry answers; by default pulls succeed. */
  pullError?: Error;
  /** An error create() throws. */
  createError?: Error;
}

/** An error as dockerode reports the engine's HTTP errors: a message and a `statusCode`. */
export function engineError(statusCode: number, message = `engine said ${statusCode}`): Error {
  return Object.assign(new Error(message), { statusCode });
}

/** One frame of Docker's multiplexed stream: 1 = stdout, 2 = stderr. */
export function frame(stream: 'stdout' | 'stderr', text: string | Buffer): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(8);
  header[0] = stream === 'stdout' ? 1 : 2;
  header.writeUInt32BE(payload.length, 4);
  return Buffer.concat([header, payload]);
}

export class FakeContainer {
  state: 'created' | 'running' | 'exited' | 'removed' = 'created';
  statusCode: number | undefined;
  /** What the client wrote to an interactive container's stdin. */
  readonly stdin: Buffer[] = [];
  /** The archives put into it, with their paths. */
  readonly archives: Array<{ path: string; content: Buffer }> = [];
  readonly attached: Array<PassThrough | Duplex> = [];
  private readonly exitWaiters: Array<(code: number) => void> = [];

  constructor(
    readonly engine: FakeEngine,
    readonly id: string,
    readonly opts: Docker.ContainerCreateOptions,
    readonly script: ContainerScript,
  ) {}

  get name(): string {
    return this.opts.name ?? this.id;
  }

  get tty(): boolean {
    return this.opts.Tty === true;
  }

  /** Writes to every attached stream, as the container's command would. */
  print(stream: 'stdout' | 'stderr', text: string): void {
    for (const s of this.attached) s.push(this.tty ? Buffer.from(text) : frame(stream, text));
  }

  /** Ends the container's command with this status. */
  exit(code: number): void {
    if (this.state !== 'running') return;
    this.state = 'exited';
    this.statusCode = code;
    for (const s of this.attached) s.push(null);
    for (const resolve of this.exitWaiters.splice(0)) resolve(code);
  }

  /** The dockerode Container-shaped object the code under test gets. */
  handle(): Docker.Container {
    const record = (call: Call, args?: unknown) => this.engine.record(call, this.name, args);
    const failure = (call: keyof NonNullable<ContainerScript['fail']>) => this.script.fail?.[call];
    const container = {
      id: this.id,
      attach: async (args: { stdin?: boolean; hijack?: boolean }) => {
        record('attach', args);
        const err = failure('attach');
        if (err) throw err;
        const stream = args.stdin ? this.stdinStream() : new PassThrough();
        // Attached to a container that has already ended: nothing more will come.
        if (this.state === 'exited' || this.state === 'removed') stream.push(null);
        else this.attached.push(stream);
        return stream;
      },
      start: async () => {
        record('start');
        const err = failure('start');
        if (err) throw err;
        if (this.state !== 'created') throw engineError(304, 'container already started');
        this.state = 'running';
        // The harshest timing a real engine allows: the command prints (and may end) before start
        // returns, so whatever was not attached before start misses it.
        for (const [stream, text] of this.script.output ?? []) this.print(stream, text);
        if (this.script.exitCode !== undefined) this.exit(this.script.exitCode);
      },
      wait: async () => {
        record('wait');
        const err = failure('wait');
        if (err) throw err;
        if (this.state === 'removed') throw engineError(404, 'no such container');
        if (this.state === 'exited') return { StatusCode: this.statusCode };
        return { StatusCode: await new Promise<number>((resolve) => this.exitWaiters.push(resolve)) };
      },
      remove: async (args?: unknown) => {
        record('remove', args);
        const err = failure('remove');
        if (err) throw err;
        if (this.state === 'removed') throw engineError(404, 'no such container');
        this.exit(137);
        this.state = 'removed';
      },
      resize: async (args: unknown) => {
        record('resize', args);
      },
      putArchive: async (archive: Buffer | Readable, args: { path: string }) => {
        record('putArchive', args);
        if (this.state === 'removed') throw engineError(404, 'no such container');
        this.archives.push({ path: args.path, content: Buffer.isBuffer(archive) ? archive : await collect(archive) });
      },
      exec: async (args: { Cmd: string[]; AttachStdin?: boolean }) => {
        record('exec', args);
        if (this.state !== 'running') throw engineError(409, `container ${this.name} is not running`);
        let exitCode: number | undefined;
        return {
          start: async () => {
            record('exec.start');
            const stream = new DuplexPipe();
            const run = (stdin: Buffer | undefined) => {
              const script = this.engine.options.exec?.(args.Cmd, stdin) ?? {};
              for (const [s, text] of script.output ?? []) stream.push(frame(s, text));
              exitCode = script.exitCode ?? 0;
              stream.push(null);
            };
            if (args.AttachStdin) stream.onFinish = run;
            else setImmediate(() => run(undefined));
            return stream;
          },
          inspect: async () => {
            record('exec.inspect');
            return { ExitCode: exitCode ?? null, Running: exitCode === undefined };
          },
        };
      },
    };
    return container as unknown as Docker.Container;
  }

  private stdinStream(): Duplex {
    const stream = new DuplexPipe();
    stream.onChunk = (chunk) => this.stdin.push(chunk);
    return stream;
  }
}

/** A duplex whose written side is collected and whose readable side the fake pushes into. */
class DuplexPipe extends Duplex {
  onChunk: ((chunk: Buffer) => void) | undefined;
  onFinish: ((written: Buffer) => void) | undefined;
  private readonly written: Buffer[] = [];

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.written.push(chunk);
    this.onChunk?.(chunk);
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.onFinish?.(Buffer.concat(this.written));
    callback();
  }
}

export class FakeEngine {
  /** Every call's verb, in the order they were made. */
  readonly calls: Call[] = [];
  /** Every call with its target and arguments, in order. */
  readonly log: LoggedCall[] = [];
  readonly containers: FakeContainer[] = [];
  readonly images: Set<string>;
  /** The build contexts (tar bytes) buildImage received. */
  readonly buildContexts: Buffer[] = [];
  /** A real dockerode client (its modem demuxes and follows progress) with the engine calls faked. */
  readonly docker: Docker;

  constructor(readonly options: FakeEngineOptions = {}) {
    this.images = new Set(options.images ?? []);
    const docker = new Docker({ socketPath: '/nonexistent/fake-engine.sock' });
    const fake = {
      createContainer: async (opts: Docker.ContainerCreateOptions) => {
        this.record('create', opts.name, opts);
        if (options.createError) throw options.createError;
        const container = new FakeContainer(this, `fake${this.containers.length}`, opts, options.container?.(opts) ?? { exitCode: 0 });
        this.containers.push(container);
        return container.handle();
      },
      getContainer: (id: string) => {
        const container = this.containers.find((c) => c.id === id || c.name === id);
        if (!container) throw engineError(404, `no such container: ${id}`);
        return container.handle();
      },
      getImage: (name: string) => ({
        inspect: async () => {
          this.record('image.inspect', name);
          if (!this.images.has(name)) throw engineError(404, `no such image: ${name}`);
          return { Id: name };
        },
        remove: async () => {
          this.record('image.remove', name);
          if (!this.images.delete(name)) throw engineError(404, `no such image: ${name}`);
        },
      }),
      buildImage: async (context: Readable, opts: Record<string, unknown>) => {
        this.record('buildImage', String(opts.t), opts);
        const tar = await collect(context);
        this.buildContexts.push(tar);
        const events = options.build?.(tar, opts) ?? [{ stream: 'Step 1/1 : FROM base\n' }, { stream: 'Successfully built\n' }];
        if (!events.some((e) => e.error !== undefined)) this.images.add(String(opts.t));
        return progress(events);
      },
      pull: async (name: string) => {
        this.record('pull', name);
        if (options.pullError) throw options.pullError;
        this.images.add(name);
        return progress([{ status: `Pulling from ${name}` }, { status: 'Download complete' }]);
      },
      importImage: async (source: Readable, opts: { repo: string; tag: string }) => {
        this.record('importImage', `${opts.repo}:${opts.tag}`, opts);
        await collect(source);
        this.images.add(`${opts.repo}:${opts.tag}`);
        return progress([{ status: 'sha256:fake' }]);
      },
      listContainers: async (opts?: { all?: boolean; filters?: string | Record<string, string[]> }) => {
        this.record('listContainers', undefined, opts);
        const filters = typeof opts?.filters === 'string' ? (JSON.parse(opts.filters) as Record<string, string[]>) : (opts?.filters ?? {});
        const wanted = filters.label ?? [];
        return this.containers
          .filter((c) => c.state !== 'removed' && (opts?.all || c.state === 'running'))
          .filter((c) =>
            wanted.every((label) => {
              const [key, value] = label.split('=', 2) as [string, string | undefined];
              const have = c.opts.Labels?.[key];
              return have !== undefined && (value === undefined || have === value);
            }),
          )
          .map((c) => ({ Id: c.id, Names: [`/${c.name}`], Labels: c.opts.Labels ?? {}, State: c.state, Image: c.opts.Image }));
      },
    };
    Object.assign(docker, fake);
    this.docker = docker;
  }

  /** @internal */
  record(call: Call, target?: string, args?: unknown): void {
    this.calls.push(call);
    this.log.push({ call, target, args });
  }

  /** The container created with this name (or the only/last one when no name is given). */
  container(name?: string): FakeContainer {
    const found = name === undefined ? this.containers.at(-1) : this.containers.find((c) => c.name === name);
    if (!found) throw new Error(`fake engine: no container ${name ?? '(none created)'}`);
    return found;
  }
}

/** A progress stream as the engine sends it: one JSON object a line. */
function progress(events: Array<Record<string, unknown>>): PassThrough {
  const stream = new PassThrough();
  setImmediate(() => {
    for (const event of events) stream.write(`${JSON.stringify(event)}\n`);
    stream.end();
  });
  return stream;
}

async function collect(stream: NodeJS.ReadableStream): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream as AsyncIterable<Buffer | string>) chunks.push(Buffer.from(chunk));
  return Buffer.concat(chunks);
}
