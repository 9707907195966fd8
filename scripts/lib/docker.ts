/**
 * The one narrow, typed door to the Docker engine. Containers run create -> attach -> start ->
 * wait with Tty off and demuxed output; a non-zero exit status is an error; errors from the
 * engine are told apart by their HTTP `statusCode`.
 */
import { PassThrough, type Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import tarStream from 'tar-stream';
import Docker from 'dockerode';
import { type EngineEndpoint, engineEndpoint } from './engine.ts';
import { UserError, errorMessage } from './errors.ts';
import { bounded, untilAborted } from './poll.ts';

export type { Docker };

/** The Docker volume that keeps what builds and boots reuse (roots, .debs, the builder's boot kernel). */
export const defaultCacheVolume = 'pibond-cache';

/** Receives a container's output, one complete line at a time. */
export type LineSink = (line: string, stream: 'stdout' | 'stderr') => void;

export class CommandFailed extends Error {
  override name = 'CommandFailed';
  constructor(
    readonly command: readonly string[],
    readonly exitCode: number,
    readonly tail: string[],
  ) {
    super(`${command.join(' ')} exited with status ${exitCode}${tail.length ? `; its last lines:\n  ${tail.join('\n  ')}` : ''}`);
  }
}

/** Connects to the engine DOCKER_HOST or the current Docker context names (or the local socket) and checks that it answers. */
export async function connectDocker(endpoint: EngineEndpoint = engineEndpoint()): Promise<Docker> {
  const docker = new Docker(endpoint.options);
  await docker.ping();
  return docker;
}

export function engineStatus(err: unknown): number | undefined {
  const status = (err as { statusCode?: unknown } | null)?.statusCode;
  return typeof status === 'number' ? status : undefined;
}

export async function imageExists(docker: Docker, name: string): Promise<boolean> {
  try {
    await docker.getImage(name).inspect();
    return true;
  } catch (err) {
    if (engineStatus(err) === 404) return false;
    throw err;
  }
}

/** The container with this id or name, for removing one that listContainers found. */
export function containerById(docker: Docker, id: string): Docker.Container {
  return docker.getContainer(id);
}

/** What Docker accepts as a volume name. */
const volumeName = /^[a-zA-Z0-9][a-zA-Z0-9_.-]+$/;

/** Refuses a --cache-volume that is not a Docker volume name, saying what one is. */
export function checkCacheVolume(name: string): void {
  if (!volumeName.test(name)) {
    throw new UserError(`--cache-volume "${name}" is not a Docker volume name: it must be two or more letters, digits, "_", "." or "-", starting with a letter or digit (like ${defaultCacheVolume})`);
  }
}

/** Removes a container and its anonymous volumes, whatever state it is in; absent is fine. */
export async function removeContainer(container: Docker.Container): Promise<void> {
  try {
    await container.remove({ force: true, v: true });
  } catch (err) {
    // 404: already gone; 409: removal already under way (e.g. AutoRemove).
    if (engineStatus(err) !== 404 && engineStatus(err) !== 409) throw err;
  }
}

/** Splits a byte stream into lines for a LineSink, keeping the last lines for error messages. */
export class LineSplitter {
  private rest = '';
  readonly tail: string[] = [];
  constructor(
    private readonly sink: LineSink,
    private readonly stream: 'stdout' | 'stderr',
    private readonly tailSize = 15,
  ) {}

  write(chunk: Buffer | string): void {
    const lines = (this.rest + chunk.toString()).split(/\r?\n|\r/);
    this.rest = lines.pop() ?? '';
    for (const line of lines) this.emit(line);
  }

  end(): void {
    if (this.rest) this.emit(this.rest);
    this.rest = '';
  }

  private emit(line: string): void {
    this.tail.push(line);
    if (this.tail.length > this.tailSize) this.tail.shift();
    this.sink(line, this.stream);
  }
}

export interface StartOptions {
  image: string;
  cmd: string[];
  name?: string;
  env?: Record<string, string>;
  labels?: Record<string, string>;
  binds?: string[];
  /** Anonymous volumes (container paths), removed with the container. */
  volumes?: string[];
  capAdd?: string[];
  securityOpt?: string[];
  networkMode?: string;
  /** Host device paths, given to the container at the same path (e.g. /dev/kvm). */
  devices?: string[];
  /** A tiny init as PID 1, so signals reach the command and zombies are reaped. */
  init?: boolean;
  /**
   * A TTY with stdin open: the output is the terminal's bytes as they are, and `write` sends keys.
   * Otherwise stdin is closed and stdout and stderr are demuxed.
   */
  interactive?: boolean;
  /** Receives the output one line at a time (from a TTY, every line counts as stdout). */
  sink?: LineSink;
  /** Receives the output as it comes: a TTY's bytes, or stdout and stderr merged after demuxing. */
  onBytes?: (chunk: Buffer) => void;
  /** Called with the container as soon as it exists, so an interrupt can remove it. */
  onCreated?: (container: Docker.Container) => void;
}

/** A long-running container, attached before it started so none of its output is lost. */
export interface RunningContainer {
  readonly container: Docker.Container;
  /**
   * Settles when the container has ended and its output is drained; never rejects: a container
   * removed under our feet has ended too (statusCode -1 when the engine could not say how).
   */
  readonly exited: Promise<{ statusCode: number }>;
  /** The last lines of output, for error messages. */
  tail(): string[];
  /** Sends bytes to the command's stdin; only for an interactive container. */
  write(chunk: Buffer | string): void;
  /** Tells the container's TTY the terminal's size; a lost resize only misdraws, so it never throws. */
  resize(size: { rows: number; columns: number }): Promise<void>;
  /** Kills and removes the container; safe to call more than once, and waits for its end a bounded time. */
  remove(): Promise<void>;
}

/** How long remove() waits for the container's end (its last output) after removal was asked. */
const endAfterRemovalMs = 5000;
/** How long remove() waits for the engine to answer the removal: a cleanup must not hang forever. */
const removalMs = 30_000;

/**
 * Starts a container that keeps running (a build container, QEMU): create -> attach -> start, in
 * that order, so the first bytes it prints are already being read. If attaching or starting
 * fails, the container is removed before the error is thrown.
 */
export async function startContainer(docker: Docker, opts: StartOptions): Promise<RunningContainer> {
  const interactive = opts.interactive ?? false;
  const container = await docker.createContainer({
    Image: opts.image,
    Cmd: opts.cmd,
    name: opts.name,
    Env: Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
    Labels: opts.labels,
    Volumes: opts.volumes ? Object.fromEntries(opts.volumes.map((path) => [path, {}])) : undefined,
    Tty: interactive,
    OpenStdin: interactive,
    StdinOnce: false,
    AttachStdin: interactive,
    AttachStdout: true,
    AttachStderr: true,
    HostConfig: {
      Binds: opts.binds,
      CapAdd: opts.capAdd,
      SecurityOpt: opts.securityOpt,
      NetworkMode: opts.networkMode,
      Init: opts.init,
      Devices: opts.devices?.map((path) => ({ PathOnHost: path, PathInContainer: path, CgroupPermissions: 'rwm' })),
    },
  });
  opts.onCreated?.(container);
  try {
    const stream = await container.attach({
      stream: true,
      stdin: interactive,
      stdout: true,
      stderr: true,
      hijack: interactive,
    });
    const output = readOutput(docker, stream, interactive, opts);
    await container.start();
    // A broken attach stream ends the output, not the container: its end is told by wait().
    const drained = output.done.catch(() => undefined);
    const exited = Promise.all([container.wait() as Promise<{ StatusCode: number }>, drained]).then(
      ([result]) => ({ statusCode: result.StatusCode }),
      () => ({ statusCode: -1 }),
    );
    let removing: Promise<void> | undefined;
    return {
      container,
      exited,
      tail: output.tail,
      write(chunk) {
        if (!interactive) throw new Error('write: this container was started without stdin (interactive: false)');
        stream.write(chunk);
      },
      async resize({ rows, columns }) {
        await container.resize({ h: rows, w: columns }).catch(() => undefined);
      },
      remove() {
        removing ??= (async () => {
          try {
            const removed = await bounded(removeContainer(container).then(() => true), removalMs, false);
            if (!removed) {
              throw new Error(`the Docker engine did not remove container ${container.id} within ${removalMs / 1000} s; remove it with: docker rm -f ${container.id}`);
            }
          } finally {
            await bounded(exited, endAfterRemovalMs, undefined);
            // An attach stream the engine never closed must not keep the process alive.
            (stream as unknown as { destroy?: () => void }).destroy?.();
          }
        })();
        return removing;
      },
    };
  } catch (err) {
    // The attach's or start's failure is the one to report, not a removal's that may follow it.
    await removeContainer(container).catch(() => undefined);
    throw err;
  }
}

export interface RunOptions extends Omit<StartOptions, 'interactive'> {
  sink: LineSink;
}

/** Runs a one-shot container to its end and removes it; a non-zero exit is a CommandFailed. */
export async function runContainer(docker: Docker, opts: RunOptions): Promise<void> {
  const { statusCode, tail } = await runToExit(docker, opts);
  if (statusCode !== 0) throw new CommandFailed(opts.cmd, statusCode, tail);
}

export interface RunUntil {
  /** Stop waiting (the container is removed, and the signal's reason thrown): Ctrl-C, a deadline. */
  signal?: AbortSignal;
  /** Give up on the removal after this long (an engine that hangs must not hang a stop); default: wait. */
  removeWithinMs?: number;
}

/**
 * Runs a one-shot container to its end, or until `signal`, and removes it whatever happened. The
 * exit status and the last lines of its output are the caller's to judge: each caller has its own
 * statuses to explain.
 */
export async function runToExit(docker: Docker, opts: Omit<StartOptions, 'interactive'>, until: RunUntil = {}): Promise<{ statusCode: number; tail: string[] }> {
  const running = await startContainer(docker, opts);
  try {
    const { statusCode } = await untilAborted(running.exited, until.signal);
    return { statusCode, tail: running.tail() };
  } finally {
    const removal = running.remove();
    await (until.removeWithinMs === undefined ? removal : bounded(removal, until.removeWithinMs, undefined));
  }
}

/** Reads an attached (or exec'd) stream to its end: into the sink's lines and the caller's byte handler. */
function readOutput(
  docker: Docker,
  stream: NodeJS.ReadableStream,
  tty: boolean,
  opts: Pick<StartOptions, 'sink' | 'onBytes'>,
): { done: Promise<void>; tail: () => string[] } {
  const sink = opts.sink ?? (() => {});
  const out = new LineSplitter(sink, 'stdout');
  const err = new LineSplitter(sink, 'stderr');
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  // Always read, even with no one listening: an unread stream would stall the container's output.
  stdout.on('data', (c: Buffer) => {
    out.write(c);
    opts.onBytes?.(c);
  });
  stderr.on('data', (c: Buffer) => {
    err.write(c);
    opts.onBytes?.(c);
  });
  // With a TTY the stream is the terminal's bytes as they are; without, Docker multiplexes it.
  if (tty) stream.pipe(stdout);
  else docker.modem.demuxStream(stream, stdout, stderr);
  const done = new Promise<void>((resolve, reject) => {
    stream.on('end', resolve);
    stream.on('close', resolve);
    stream.on('error', reject);
  }).finally(() => {
    out.end();
    err.end();
  });
  return { done, tail: () => [...out.tail, ...err.tail].slice(-15) };
}

export interface ExecOptions {
  env?: Record<string, string>;
  sink: LineSink;
  stdin?: Readable;
}

/** Runs a command in a running container; a non-zero exit is a CommandFailed. */
export async function execIn(docker: Docker, container: Docker.Container, cmd: string[], opts: ExecOptions): Promise<void> {
  const exec = await container.exec({
    Cmd: cmd,
    Env: Object.entries(opts.env ?? {}).map(([k, v]) => `${k}=${v}`),
    AttachStdout: true,
    AttachStderr: true,
    AttachStdin: opts.stdin !== undefined,
    Tty: false,
  });
  const stream = await exec.start({ hijack: true, stdin: opts.stdin !== undefined });
  const output = readOutput(docker, stream, false, opts);
  if (opts.stdin) {
    opts.stdin.pipe(stream as NodeJS.WritableStream);
  }
  await output.done;
  const { ExitCode } = await exec.inspect();
  if (ExitCode !== 0) throw new CommandFailed(cmd, ExitCode ?? -1, output.tail());
}

/** Unpacks a tar archive into a container's file system at `path` (which must exist there). */
export async function putArchive(container: Docker.Container, archive: Buffer | NodeJS.ReadableStream, path: string): Promise<void> {
  await container.putArchive(archive, { path });
}

/**
 * The regular files under `dir` in a container, by their path below it (`status`, `sub/file`),
 * through the engine's archive API: small files the build reads back (a stock image's os-release).
 */
export async function readFilesFrom(container: Docker.Container, dir: string): Promise<Map<string, Buffer>> {
  const files = new Map<string, Buffer>();
  const extract = tarStream.extract();
  extract.on('entry', (header, stream, next) => {
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: unknown) => chunks.push(chunk as Buffer));
    stream.on('end', () => {
      // The archive's entries are named below the directory's own name: "facts/status".
      if (header.type === 'file') files.set(header.name.split('/').slice(1).join('/'), Buffer.concat(chunks));
      next();
    });
    stream.resume();
  });
  const archive = await container.getArchive({ path: dir });
  await pipeline(archive, extract);
  return files;
}

/** The engine's own error in a build's, pull's or import's progress (a failed RUN, an unknown image). */
export class EngineProgressError extends Error {
  override name = 'EngineProgressError';
  constructor(
    message: string,
    /** The last lines of output before the error. */
    readonly tail: string[],
  ) {
    super(message);
  }
}

interface ProgressEvent {
  stream?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
}

/**
 * Reads a progress stream to its end, the build's output lines going to `sink`. The engine reports
 * a failure as an `error` event in a stream that otherwise ends normally (dockerode's
 * followProgress does not treat it as one), so that event is what rejects.
 */
function followProgress(docker: Docker, stream: NodeJS.ReadableStream, sink: LineSink | undefined): Promise<void> {
  const out = new LineSplitter(sink ?? (() => {}), 'stdout');
  let failure: string | undefined;
  return new Promise<void>((resolve, reject) => {
    docker.modem.followProgress(
      stream,
      (err: Error | null) => {
        out.end();
        if (err) reject(err);
        else if (failure !== undefined) reject(new EngineProgressError(failure, out.tail));
        else resolve();
      },
      (event: ProgressEvent) => {
        if (event.stream) out.write(event.stream);
        if (event.error !== undefined) failure ??= event.errorDetail?.message ?? event.error;
      },
    );
  });
}

export interface BuildOptions {
  tag: string;
  buildArgs?: Record<string, string>;
}

/**
 * Builds an image from a tar build context, its output lines going to `sink`; a failed step is an
 * EngineProgressError carrying the engine's message and the last lines.
 */
export async function buildImage(docker: Docker, context: NodeJS.ReadableStream, opts: BuildOptions, sink: LineSink): Promise<void> {
  // rm/forcerm: a failed build leaves no intermediate containers behind.
  const stream = await docker.buildImage(context, { t: opts.tag, buildargs: opts.buildArgs, rm: true, forcerm: true });
  await followProgress(docker, stream, sink);
}

/** Pulls an image (`name:tag`) from its registry. */
export async function pullImage(docker: Docker, name: string): Promise<void> {
  const stream = await docker.pull(name);
  await followProgress(docker, stream, undefined);
}

/** Makes an image `repo:tag` from a root file system tar (like `docker import`). */
export async function importImage(docker: Docker, rootfsTar: NodeJS.ReadableStream, repo: string, tag: string): Promise<void> {
  const stream = await docker.importImage(rootfsTar, { repo, tag });
  await followProgress(docker, stream, undefined);
}

/** Removes an image; one that is not there is fine. */
export async function removeImage(docker: Docker, name: string): Promise<void> {
  try {
    await docker.getImage(name).remove();
  } catch (err) {
    if (engineStatus(err) !== 404) throw err;
  }
}

/** The containers (running or not) carrying these labels, each `key` or `key=value`. */
export async function listContainers(docker: Docker, labels: string[]): Promise<Docker.ContainerInfo[]> {
  return docker.listContainers({ all: true, filters: JSON.stringify({ label: labels }) });
}

/** Says plainly that no engine answered, and what to do about it. */
export function dockerUnreachable(err: unknown, endpoint: EngineEndpoint = engineEndpoint()): UserError {
  const reason = errorMessage(err);
  if (endpoint.named) {
    return new UserError(`cannot reach the Docker engine that ${endpoint.words} names (${reason}). Check that it runs and answers there, or unset it to use this machine's engine.`);
  }
  return new UserError(
    `cannot reach the Docker engine (${reason}). Start it (as root: \`dockerd &\` or \`systemctl start docker\`), ` +
      'or point DOCKER_HOST at one; pibond installs and starts docker.io by itself only when run as root on Debian or Ubuntu.',
  );
}
