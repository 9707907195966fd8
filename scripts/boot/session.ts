/**
 * One boot of an image under QEMU, inside the builder container (so the host needs only Docker and
 * Node): prepare the boot files and a copy-on-write overlay, start QEMU with host networking so its
 * port forwards bind on the host's loopback, connect to its QMP socket (in a host temporary
 * directory mounted into the container), and tear it all down again on every path.
 *
 * The serial console goes to a log file (and, interactively, to the terminal); `keepSerialLog`
 * copies it out when a run failed.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { PassThrough } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { type Docker, CommandFailed, removeContainer, runContainer } from '../lib/docker.ts';
import { UserError } from '../lib/errors.ts';
import { type BootImage, bootFilesFrom, notPibond } from './image.ts';
import { type Nic, guestCmdline, machineNics, qemuArgs, slaveNics } from './machine.ts';
import { freePorts } from './ports.ts';
import { QmpClient } from './qmp.ts';
import { type Status, getStatus } from './status-api.ts';

/** Paths inside the container. */
const inside = { image: '/image/disk.img', run: '/run/pibond' };

/** One router's forwards: the host ports that reach the guest through that NIC. */
export interface RouterPorts {
  nic: string;
  status: number;
  ssh: number;
}

export interface Terminal {
  stdin: NodeJS.ReadStream;
  stdout: NodeJS.WriteStream;
  /** Called when the user presses Ctrl-C on the terminal (raw mode swallows the signal). */
  onInterrupt: () => void;
}

export interface BootOptions {
  docker: Docker;
  builderImage: string;
  image: BootImage;
  /** Interactive: the serial console on this terminal. Otherwise the console goes to the log only. */
  terminal?: Terminal;
  say: (message: string) => void;
  /** Appended to the image's kernel command line (e.g. systemd.journald.forward_to_console=1). */
  extraKernelArgs?: string;
}

export interface QemuExit {
  statusCode: number;
}

export class BootSession {
  private stopping: Promise<void> | undefined;
  private qmpClient: QmpClient | undefined;

  constructor(
    private readonly docker: Docker,
    readonly image: BootImage,
    readonly workDir: string,
    readonly serialLogPath: string,
    /** routers[0] is the primary (nic0), routers[1] the backup (nic1). */
    readonly routers: RouterPorts[],
    readonly nics: Nic[],
    private readonly container: Docker.Container,
    private readonly serialLog: WriteStream,
    /** The latest serial lines, for error messages. */
    readonly serialTail: string[],
    /** performance.now() when QEMU was started. */
    readonly startedAt: number,
    /** Settles when QEMU (the container) ends, for whatever reason. */
    readonly exited: Promise<QemuExit>,
  ) {}

  get qmp(): QmpClient {
    if (!this.qmpClient) throw new Error('QMP is not connected yet');
    return this.qmpClient;
  }

  /** @internal */
  attachQmp(client: QmpClient): void {
    this.qmpClient = client;
  }

  /** Rejects with QEMU's last words as soon as QEMU ends; otherwise settles like `work`. */
  whileRunning<T>(work: Promise<T>): Promise<T> {
    const died = this.exited.then((exit) => {
      throw new Error(`QEMU exited (status ${exit.statusCode}); the last serial lines:\n  ${this.serialTail.join('\n  ')}`);
    });
    return Promise.race([work, died]);
  }

  /**
   * Waits until the status service answers through `port`, polling every 250 ms until `deadline`
   * (ms since the epoch). Returns the first answer and when it came (performance.now()).
   */
  async waitForStatus(port: number, deadline: number, signal?: AbortSignal): Promise<{ status: Status; at: number }> {
    let lastError = 'nothing tried yet';
    const poll = async () => {
      for (;;) {
        signal?.throwIfAborted();
        try {
          const status = await getStatus(port, 2000, signal);
          return { status, at: performance.now() };
        } catch (err) {
          lastError = (err as Error).message;
        }
        if (Date.now() > deadline) {
          throw new Error(`the status service did not answer on 127.0.0.1:${port} before the deadline (last error: ${lastError})`);
        }
        await sleep(250, undefined, { signal });
      }
    };
    return this.whileRunning(poll());
  }

  /** Copies the serial log to `file` (made while QEMU may still write to it: fine for a log). */
  async keepSerialLog(file: string): Promise<void> {
    await mkdir(dirname(file), { recursive: true });
    await new Promise<void>((resolve) => (this.serialLog.writableLength === 0 ? resolve() : this.serialLog.once('drain', resolve)));
    await copyFile(this.serialLogPath, file);
  }

  /** Kills QEMU, removes its container and the temporary files. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.qmpClient?.close();
      try {
        await removeContainer(this.container);
      } finally {
        await Promise.race([this.exited.catch(() => undefined), sleep(5000)]);
        await new Promise<void>((resolve) => this.serialLog.end(resolve));
        await rm(this.workDir, { recursive: true, force: true });
      }
    })();
    return this.stopping;
  }
}

/** Prepares and starts a boot; on any failure on the way, nothing is left behind. */
export async function startBoot(opts: BootOptions): Promise<BootSession> {
  const { docker, image } = opts;
  const workDir = await mkdtemp(join(tmpdir(), 'pibond-boot-'));
  const binds = [`${image.path}:${inside.image}:ro`, `${workDir}:${inside.run}`];
  let session: BootSession | undefined;
  try {
    const boot = await prepareBootFiles(docker, opts.builderImage, image, binds, workDir);
    const ports = await freePorts(4);
    const routers: RouterPorts[] = [0, 1].map((i) => ({ nic: `nic${i}`, status: ports[2 * i] ?? 0, ssh: ports[2 * i + 1] ?? 0 }));
    const { bond, status_service } = image.manifest.definition.value;
    const nics = machineNics(status_service.port, slaveNics(bond), routers);
    const args = qemuArgs({
      kernel: `${inside.run}/boot/${boot.kernel}`,
      initrd: `${inside.run}/boot/${boot.initrd}`,
      append: opts.extraKernelArgs ? `${boot.append} ${opts.extraKernelArgs}` : boot.append,
      disk: `${inside.run}/overlay.qcow2`,
      qmpSocket: `${inside.run}/qmp.sock`,
      nics,
    });

    const interactive = opts.terminal !== undefined;
    const container = await docker.createContainer({
      Image: opts.builderImage,
      Cmd: ['qemu-system-aarch64', ...args],
      name: `pibond-boot-${image.name}-${process.pid}-${Date.now().toString(36)}`,
      Labels: { 'pibond.boot': image.name },
      Tty: interactive,
      OpenStdin: interactive,
      StdinOnce: false,
      AttachStdin: interactive,
      AttachStdout: true,
      AttachStderr: true,
      HostConfig: { Binds: binds, NetworkMode: 'host', Init: true },
    });
    const serialLogPath = join(workDir, 'serial.log');
    const serialLog = createWriteStream(serialLogPath);
    try {
      const stream = await container.attach({ stream: true, stdin: interactive, stdout: true, stderr: true, hijack: interactive });
      const serialTail: string[] = [];
      const output = new PassThrough();
      output.on('data', (chunk: Buffer) => {
        serialLog.write(chunk);
        keepTail(serialTail, chunk);
        opts.terminal?.stdout.write(chunk);
      });
      // With a TTY the stream is the terminal's bytes as they are; without, Docker multiplexes it.
      if (interactive) stream.pipe(output);
      else docker.modem.demuxStream(stream, output, output);
      const streamEnded = new Promise<void>((resolve) => {
        stream.on('end', resolve);
        stream.on('close', resolve);
        stream.on('error', () => resolve());
      });

      const startedAt = performance.now();
      await container.start();
      const exited = Promise.all([container.wait() as Promise<{ StatusCode: number }>, streamEnded]).then(
        ([result]) => ({ statusCode: result.StatusCode }),
        // The container was removed under our feet: that is an end too.
        () => ({ statusCode: -1 }),
      );
      session = new BootSession(docker, image, workDir, serialLogPath, routers, nics, container, serialLog, serialTail, startedAt, exited);
      if (opts.terminal) connectTerminal(opts.terminal, stream, container);

      const qmp = await session.whileRunning(QmpClient.connect(join(workDir, 'qmp.sock'), Date.now() + 30_000));
      session.attachQmp(qmp);
      return session;
    } catch (err) {
      if (!session) {
        await removeContainer(container);
        serialLog.end();
      }
      throw err;
    }
  } catch (err) {
    if (session) await session.stop();
    else await rm(workDir, { recursive: true, force: true });
    throw err;
  }
}

interface BootFiles {
  kernel: string;
  initrd: string;
  append: string;
}

/**
 * In a one-shot builder container: checks the tools, copies config.txt, cmdline.txt, the kernels
 * and initrds off the image's boot partition (mtools, no mount) and creates the qcow2 overlay.
 */
async function prepareBootFiles(docker: Docker, builderImage: string, image: BootImage, binds: string[], workDir: string): Promise<BootFiles> {
  const script = `
    set -u
    at="${inside.image}@@$1"
    dest="${inside.run}/boot"
    command -v qemu-system-aarch64 >/dev/null || exit 90
    command -v mcopy >/dev/null && command -v qemu-img >/dev/null || exit 91
    mkdir -p "$dest"
    mcopy -n -i "$at" ::config.txt ::cmdline.txt "$dest/" || exit 92
    mcopy -n -i "$at" '::vmlinuz-*' "$dest/" 2>/dev/null
    mcopy -n -i "$at" '::initrd.img-*' "$dest/" 2>/dev/null
    qemu-img create -q -f qcow2 -F raw -b "${inside.image}" "${inside.run}/overlay.qcow2" || exit 93
  `;
  const output: string[] = [];
  try {
    await runContainer(docker, {
      image: builderImage,
      cmd: ['sh', '-c', script, 'sh', String(image.bootPartitionOffset)],
      binds,
      sink: (line) => output.push(line),
    });
  } catch (err) {
    if (!(err instanceof CommandFailed)) throw err;
    const said = output.slice(-5).join('; ');
    switch (err.exitCode) {
      case 90:
        throw new UserError(`the builder image ${builderImage} has no qemu-system-aarch64 (package qemu-system-arm); rebuild it: remove the image and run pibond build`);
      case 91:
        throw new UserError(`the builder image ${builderImage} lacks mtools or qemu-img; rebuild it: remove the image and run pibond build`);
      case 92:
        throw notPibond(image.path, `its boot partition holds no config.txt and cmdline.txt (${said})`);
      default:
        throw new Error(`preparing the boot failed: ${err.message}`);
    }
  }
  const bootDir = join(workDir, 'boot');
  const { kernel, initrd } = bootFilesFrom(await readFile(join(bootDir, 'config.txt'), 'utf8'));
  const present = new Set(await readdir(bootDir));
  for (const file of [kernel, initrd]) {
    if (!present.has(file)) throw notPibond(image.path, `config.txt names ${file}, which is not on its boot partition`);
  }
  const cmdline = (await readFile(join(bootDir, 'cmdline.txt'), 'utf8')).trim();
  if (!/\broot=/.test(cmdline)) throw notPibond(image.path, `its cmdline.txt names no root file system: ${cmdline}`);
  return { kernel, initrd, append: guestCmdline(cmdline) };
}

/** Keeps the last 40 lines of the serial console in `tail` (the last one may still be growing). */
function keepTail(tail: string[], chunk: Buffer): void {
  const parts = chunk.toString('utf8').split(/\r?\n|\r/);
  const [first, ...rest] = parts;
  if (tail.length === 0) tail.push('');
  tail[tail.length - 1] += first ?? '';
  for (const part of rest) tail.push(part);
  while (tail.length > 40) tail.shift();
}

/** The serial console on the terminal: raw keys to QEMU (Ctrl-A x quits it), Ctrl-C stops the boot. */
function connectTerminal(terminal: Terminal, stream: NodeJS.ReadWriteStream, container: Docker.Container): void {
  const { stdin, stdout } = terminal;
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.resume();
  stdin.on('data', (chunk: Buffer) => {
    if (chunk.includes(0x03)) terminal.onInterrupt();
    else stream.write(chunk);
  });
  const resize = () => {
    if (stdout.columns && stdout.rows) container.resize({ h: stdout.rows, w: stdout.columns }).catch(() => undefined);
  };
  resize();
  stdout.on('resize', resize);
}

/** Gives the terminal back: cooked mode, no more reading. */
export function releaseTerminal(terminal: Terminal): void {
  if (terminal.stdin.isTTY) terminal.stdin.setRawMode(false);
  terminal.stdin.removeAllListeners('data');
  terminal.stdin.pause();
}
