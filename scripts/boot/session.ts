/**
 * One boot of an image under QEMU, inside the builder container (so the host needs only Docker and
 * Node): prepare the boot files and a copy-on-write overlay, start QEMU with host networking so its
 * port forwards bind on the host's loopback, connect to its QMP socket (in a host temporary
 * directory mounted into the container), and tear it all down again on every path.
 *
 * On the test bed of real routers (routers: testbed), the test bed's container comes up first and
 * QEMU's container joins its network namespace (and nothing else), its NICs on the routers' taps;
 * the host reaches the routers' WAN side only through the test bed's prober, whose socket is in the
 * same temporary directory. The test bed is stopped with the boot, on every path.
 *
 * Both containers run their work as the invoking user, so everything in the temporary directory
 * is theirs to remove. Each carries labels naming the process that started it (host and pid): a
 * run killed outright (SIGKILL) cannot clean up, so the next boot removes what it left.
 *
 * The serial console goes to a log file (and, interactively, to the terminal); `keepSerialLog`
 * copies it out when a run failed.
 */
import { createWriteStream } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { hostname, tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import type { Writable } from 'node:stream';
import { type Docker, type RunningContainer, CommandFailed, containerById, defaultCacheVolume, listContainers, removeContainer, runContainer, runToExit, startContainer } from '../lib/docker.ts';
import { UserError } from '../lib/errors.ts';
import { bounded, poll } from '../lib/poll.ts';
import type { CardSettings } from '../lib/card.ts';
import { type BootCard, bootCard } from './card.ts';
import { type BootKernel, type BuilderKernel, builderKernel, builderKernelCmdline, cacheMount, ownKernelUnfit } from './boot-kernel.ts';
import { type BootImage, bootFilesFrom, notPibond } from './image.ts';
import { type Nic, type SlaveNic, guestCmdline, machineNics, qemuArgs, slaveNics } from './machine.ts';
import { freePorts } from './ports.ts';
import { QmpClient } from './qmp.ts';
import { type Endpoint, type Status, describeEndpoint, getStatus } from './status-api.ts';

export { describeEndpoint } from './status-api.ts';
import { type LayoutName, type RouterName, Testbed, proberSocketName, testbedPlan, uplinkTargets } from './testbed/index.ts';
import { Prober } from './testbed/prober.ts';

/** Paths inside the container. */
const inside = { image: '/image/disk.img', run: '/run/pibond' };
/** In the boot's temporary directory: the card slot's bytes, and the access key's private half. */
const cardPatchName = 'card.bin';
const accessKeyName = 'id_ed25519';

/** Every boot container carries these; `pibond.boot` names the image. */
export const bootLabel = 'pibond.boot';
const ownerLabels = { pid: 'pibond.pid', host: 'pibond.host', workDir: 'pibond.workdir' };

/** Bounds for waits inside cleanups: slow on a loaded machine, never forever. */
const removeContainerMs = 20_000;
const flushSerialLogMs = 5_000;
const removeAsRootMs = 60_000;

/**
 * One router's forwards: where the status service and SSH are reached through the router on that
 * NIC's network. On user-mode networks, ports on the host's loopback; on the test bed, the router's
 * WAN address and forwarded ports, asked from the test bed's internet through its prober.
 */
export interface RouterPorts {
  nic: string;
  status: Endpoint;
  ssh: Endpoint;
  /** On the test bed: which router it is, and its WAN address. */
  router?: { name: RouterName; wan: string };
}

/**
 * The routers the machine's NICs are on: QEMU's user-mode networks (each its own router at
 * 10.0.2.2, answering from the host itself), or the test bed of real routers (testbed/), in one
 * of its layouts.
 */
export type Routers = { kind: 'user' } | { kind: 'testbed'; layout: LayoutName };

/** `user`, `testbed:same-subnet`, `testbed:different-subnets`: the --routers option's words. */
export function describeRouters(routers: Routers): string {
  return routers.kind === 'user' ? 'user' : `testbed:${routers.layout}`;
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
  /** Aborting it stops the boot at whatever stage it is in; nothing is left behind. */
  signal?: AbortSignal;
  /** The routers on the NICs' side; QEMU's user-mode networks unless told. */
  routers?: Routers;
  /**
   * For tests that boot a damaged disk: a shell snippet run in the prepare container instead of
   * creating the plain overlay; it gets the image ($1) and the overlay to create ($2).
   */
  prepareDisk?: string;
  /** Per-card settings for this boot (pibond flash's options), written into the overlay only. */
  card?: CardSettings;
  /** Make an SSH key for the admin, for this boot only (its private half stays in the boot's temporary directory). */
  accessKey?: boolean;
  /** Where the builder's boot kernel is kept (scripts/boot/boot-kernel.ts); pibond-cache unless told. */
  cacheVolume?: string;
}

export interface QemuExit {
  statusCode: number;
}

/** The serial console's bytes, in a file and (the last 40 lines) in memory. */
export class SerialLog {
  /** The latest lines, for error messages (the last one may still be growing). */
  readonly tail: string[] = [];

  constructor(
    readonly path: string,
    private readonly file: Writable = createWriteStream(path),
  ) {
    // A log that cannot be written (a full disk) must not end the run, nor the process.
    file.on('error', () => {});
  }

  write(chunk: Buffer): void {
    if (!this.file.writableEnded) this.file.write(chunk);
    keepTail(this.tail, chunk);
  }

  /**
   * Copies the log to `file`, with every byte written so far (QEMU may still be writing: fine for
   * a log). Waits for the writes in flight, a bounded time: a write callback runs once the ones
   * before it are done, whereas 'drain' comes only after a write that returned false.
   */
  async copyTo(file: string): Promise<void> {
    await mkdir(dirname(file), { recursive: true });
    if (!this.file.writableEnded && !this.file.destroyed) {
      await bounded(new Promise<void>((resolve) => this.file.write('', () => resolve())), flushSerialLogMs, undefined);
    }
    await copyFile(this.path, file);
  }

  /** Flushes and closes the file, a bounded time. */
  async close(): Promise<void> {
    if (this.file.writableEnded) return;
    await bounded(new Promise<void>((resolve) => this.file.end(() => resolve())), flushSerialLogMs, undefined);
  }
}

export class BootSession {
  private stopping: Promise<void> | undefined;
  private qmpClient: QmpClient | undefined;

  constructor(
    private readonly docker: Docker,
    private readonly builderImage: string,
    readonly image: BootImage,
    readonly workDir: string,
    /** routers[0] is the primary (nic0), routers[1] the backup (nic1). */
    readonly routers: RouterPorts[],
    readonly nics: Nic[],
    private readonly qemu: RunningContainer,
    private readonly serialLog: SerialLog,
    /** performance.now() when QEMU was started. */
    readonly startedAt: number,
    /** The test bed of real routers the NICs are on, and its prober, when booted on one. */
    readonly testbed?: { bed: Testbed; prober: Prober },
    /** The card settings and access key this boot was given. */
    readonly card?: BootCard,
    /** The image's own kernel, or the builder's (an image whose kernel cannot boot virt). */
    readonly kernel: BootKernel = { from: 'image' },
  ) {}

  /** Where the access key's private half is, while the boot runs. */
  get accessKeyFile(): string | undefined {
    return this.card?.accessKey ? join(this.workDir, accessKeyName) : undefined;
  }

  get serialLogPath(): string {
    return this.serialLog.path;
  }

  /** The latest serial lines, for error messages. */
  get serialTail(): string[] {
    return this.serialLog.tail;
  }

  /** Settles when QEMU (the container) ends, for whatever reason. */
  get exited(): Promise<QemuExit> {
    return this.qemu.exited;
  }

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
   * Waits until the status service answers through `port`, asking every 250 ms until `deadline`
   * (ms since the epoch). Returns the first answer and when it came (performance.now()).
   */
  waitForStatus(port: Endpoint, deadline: number, signal?: AbortSignal): Promise<{ status: Status; at: number }> {
    const answered = poll(async () => ({ status: await getStatus(port, 2000, signal), at: performance.now() }), {
      what: `the status service on ${describeEndpoint(port)}`,
      timeoutMs: Math.max(0, deadline - Date.now()),
      intervalMs: 250,
      signal,
    });
    return this.whileRunning(answered);
  }

  /** Copies the serial log to `file` (made while QEMU may still write to it: fine for a log). */
  keepSerialLog(file: string): Promise<void> {
    return this.serialLog.copyTo(file);
  }

  /** Kills QEMU, removes its container (and the test bed's) and the temporary files. Safe to call more than once. */
  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.qmpClient?.close();
      try {
        try {
          await bounded(this.qemu.remove(), removeContainerMs, undefined);
        } finally {
          if (this.testbed) await bounded(this.testbed.bed.stop(), removeContainerMs, undefined);
        }
      } finally {
        await this.serialLog.close();
        await removeWorkDir(this.workDir, (dir) => emptyAsRoot(this.docker, this.builderImage, dir));
      }
    })();
    return this.stopping;
  }
}

/** Prepares and starts a boot; on any failure on the way (an abort too), nothing is left behind. */
export async function startBoot(opts: BootOptions): Promise<BootSession> {
  const { docker, image, say, signal } = opts;
  await removeStaleBoots(docker, opts.builderImage, say);
  signal?.throwIfAborted();
  const workDir = await mkdtemp(join(tmpdir(), 'pibond-boot-'));
  const binds = [`${image.path}:${inside.image}:ro`, `${workDir}:${inside.run}`];
  const labels = bootLabels(image.name, workDir);
  let qemu: RunningContainer | undefined;
  let serialLog: SerialLog | undefined;
  let qmp: QmpClient | undefined;
  let testbed: { bed: Testbed; prober: Prober } | undefined;
  try {
    const card = await bootCard(image, opts.card, { accessKey: opts.accessKey ?? false, routers: opts.routers ?? { kind: 'user' } });
    if (card) {
      await writeFile(join(workDir, cardPatchName), card.patch.data);
      if (card.accessKey) await writeFile(join(workDir, accessKeyName), card.accessKey.privateKey, { mode: 0o600 });
    }
    const cacheVolume = opts.cacheVolume ?? defaultCacheVolume;
    const unfit = ownKernelUnfit(image);
    let builder: BuilderKernel | undefined;
    if (unfit !== undefined) {
      say(`${unfit}: the boot uses the builder's kernel instead (Debian's arm64 kernel, with the modules the guest needs)`);
      builder = await builderKernel(docker, { builderImage: opts.builderImage, cacheVolume, mirror: image.manifest.definition.value.mirror, reason: unfit, labels, signal, say });
    }
    say(`Preparing the boot files (kernel, initrd, a copy-on-write overlay${card ? ' with this boot\'s card settings' : ''}) in a one-shot container`);
    const boot = await prepareBootFiles(docker, opts.builderImage, image, binds, labels, workDir, { prepareDisk: opts.prepareDisk, cardOffset: card?.patch.offset, builder, cacheVolume }, signal);
    const { bond, status_service } = image.manifest.definition.value;
    const slaves = slaveNics(bond);
    let routers: RouterPorts[];
    let nics: Nic[];
    let networkMode = 'host';
    if (opts.routers?.kind === 'testbed') {
      say(`Starting the test bed of real routers (${opts.routers.layout}) in its own container`);
      testbed = await startTestbed(docker, opts.builderImage, opts.routers.layout, status_service.port, workDir, labels, say);
      signal?.throwIfAborted();
      ({ routers, nics } = testbedNics(testbed.bed, testbed.prober, slaves));
      // QEMU joins the test bed's network namespace, where the taps are; it has no other network.
      networkMode = `container:${testbed.bed.running.container.id}`;
    } else {
      const ports = await freePorts(4);
      const forwarded = [0, 1].map((i) => ({ nic: `nic${i}`, status: ports[2 * i] ?? 0, ssh: ports[2 * i + 1] ?? 0 }));
      routers = forwarded;
      nics = machineNics(status_service.port, slaves, forwarded, card?.guestAddress);
    }
    const args = qemuArgs({
      kernel: `${inside.run}/boot/${boot.kernel}`,
      initrd: `${inside.run}/boot/${boot.initrd}`,
      // Every boot here is a test boot: the image's uplink probes go to the test bed's internet
      // (documentation addresses), never to its configured targets, whatever the routers.
      append: [boot.append, uplinkTargetsArg(uplinkTargets(testbedPlan(opts.routers?.kind === 'testbed' ? opts.routers.layout : 'same-subnet'))), opts.extraKernelArgs]
        .filter((part) => part !== undefined && part !== '')
        .join(' '),
      disk: `${inside.run}/overlay.qcow2`,
      qmpSocket: `${inside.run}/qmp.sock`,
      nics,
    });

    signal?.throwIfAborted();
    const log = new SerialLog(join(workDir, 'serial.log'));
    serialLog = log;
    const name = `pibond-boot-${image.name}-${process.pid}-${Date.now().toString(36)}`;
    qemu = await startContainer(docker, {
      image: opts.builderImage,
      cmd: asInvokingUser(['qemu-system-aarch64', ...args]),
      name,
      labels,
      binds,
      networkMode,
      // The taps are opened through the tun device; they are the invoking user's (see startTestbed).
      devices: testbed ? ['/dev/net/tun'] : undefined,
      init: true,
      interactive: opts.terminal !== undefined,
      onBytes: (chunk) => {
        log.write(chunk);
        opts.terminal?.stdout.write(chunk);
      },
    });
    const startedAt = performance.now();
    say(`QEMU started (container ${name}); connecting to its QMP socket`);
    if (opts.terminal) connectTerminal(opts.terminal, qemu);
    const running = qemu;
    const died = running.exited.then((exit) => {
      throw new Error(`QEMU exited (status ${exit.statusCode}) before QMP answered; the last serial lines:\n  ${log.tail.join('\n  ')}`);
    });
    qmp = await Promise.race([QmpClient.connect(join(workDir, 'qmp.sock'), Date.now() + 30_000, signal), died]);
    const kernel: BootKernel = builder ? { from: 'builder', version: builder.version, reason: builder.reason } : { from: 'image' };
    const session = new BootSession(docker, opts.builderImage, image, workDir, routers, nics, running, log, startedAt, testbed, card, kernel);
    session.attachQmp(qmp);
    say('QMP connected: the machine is booting');
    return session;
  } catch (err) {
    if (opts.terminal) releaseTerminal(opts.terminal);
    qmp?.close();
    try {
      try {
        if (qemu) await bounded(qemu.remove(), removeContainerMs, undefined);
      } finally {
        if (testbed) await bounded(testbed.bed.stop(), removeContainerMs, undefined);
      }
    } finally {
      await serialLog?.close();
      await removeWorkDir(workDir, (dir) => emptyAsRoot(docker, opts.builderImage, dir));
    }
    throw err;
  }
}

/**
 * The test bed for a boot, its container labelled like the boot's (a later boot sweeps it away if
 * this process is killed outright), its taps owned by the user QEMU runs as, its prober's socket
 * in the boot's temporary directory. The builder image carries the test bed's packages.
 */
async function startTestbed(
  docker: Docker,
  builderImage: string,
  layout: LayoutName,
  statusPort: number,
  workDir: string,
  labels: Record<string, string>,
  say: (message: string) => void,
): Promise<{ bed: Testbed; prober: Prober }> {
  const proberDir = join(workDir, 'prober');
  await mkdir(proberDir, { recursive: true });
  const bed = await Testbed.start({
    docker,
    image: builderImage,
    layout,
    statusPort,
    tapOwner: { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0 },
    proberDir,
    labels,
    name: `pibond-testbed-${process.pid}-${Date.now().toString(36)}`,
    sink: () => {},
  });
  say(`Test bed up (container ${bed.running.container.id.slice(0, 12)}): main router ${bed.router('main').wan.address}, backup router ${bed.router('backup').wan.address} on its internet`);
  return { bed, prober: new Prober(join(proberDir, proberSocketName)) };
}

/**
 * The NICs on the test bed: the primary slave's on the main router's tap, every other slave's on
 * the backup router's; each router reached through its WAN address, from the test bed's internet.
 */
export function testbedNics(bed: Pick<Testbed, 'router'>, prober: Pick<Prober, 'socketPath'>, slaves: SlaveNic[]): { routers: RouterPorts[]; nics: Nic[] } {
  const routers: RouterPorts[] = [];
  const nics = slaves.map((slave) => {
    const router = bed.router(slave.role === 'primary' ? 'main' : 'backup');
    const wanPort = (service: 'status' | 'ssh') => router.forwards.find((f) => f.service === service)?.wanPort ?? 0;
    const via = (port: number) => ({ socketPath: prober.socketPath, host: router.wan.address, port });
    routers.push({ nic: slave.id, status: via(wanPort('status')), ssh: via(wanPort('ssh')), router: { name: router.name, wan: router.wan.address } });
    return { ...slave, forwards: [], tap: router.tap };
  });
  return { routers: routers.sort((a, b) => a.nic.localeCompare(b.nic)), nics };
}

/** Who started a boot container: this host and process, and the temporary directory it mounts. */
export function bootLabels(imageName: string, workDir: string): Record<string, string> {
  return { [bootLabel]: imageName, [ownerLabels.pid]: String(process.pid), [ownerLabels.host]: hostname(), [ownerLabels.workDir]: workDir };
}

/**
 * A boot container is stale when the process that started it, on this host, is gone: it was
 * killed before it could clean up. Containers of other hosts (a shared engine) are left alone, and
 * so are those without an owner (not ours to judge).
 */
export function isStale(labels: Record<string, string>, host: string, alive: (pid: number) => boolean): boolean {
  const pid = Number(labels[ownerLabels.pid]);
  if (labels[bootLabel] === undefined || !Number.isInteger(pid) || pid <= 0) return false;
  return labels[ownerLabels.host] === host && !alive(pid);
}

/** Removes boot containers (and their temporary directories) whose pibond was killed outright. */
export async function removeStaleBoots(docker: Docker, builderImage: string, say: (message: string) => void): Promise<void> {
  const host = hostname();
  for (const info of await listContainers(docker, [bootLabel])) {
    const labels = info.Labels ?? {};
    if (!isStale(labels, host, processAlive)) continue;
    say(`Removing a boot left behind by pibond process ${labels[ownerLabels.pid]}, which is gone: ${info.Names?.[0]?.replace(/^\//, '') ?? info.Id}`);
    await bounded(removeContainer(containerById(docker, info.Id)), removeContainerMs, undefined);
    const workDir = labels[ownerLabels.workDir];
    // Only a directory this code made: a forged or mangled label must not point rm anywhere else.
    if (workDir && basename(workDir).startsWith('pibond-boot-') && dirname(workDir) === tmpdir()) {
      await removeWorkDir(workDir, (dir) => emptyAsRoot(docker, builderImage, dir));
    }
  }
}

/** Whether a process with this pid exists on this host (whoever owns it). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    // EPERM: it exists, under another user.
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Runs `cmd` in the container as the invoking user (uid:gid), so the files it writes into the
 * bind-mounted temporary directory are the user's to remove; as root, unchanged.
 */
export function asInvokingUser(cmd: string[], uid = process.getuid?.(), gid = process.getgid?.()): string[] {
  if (uid === undefined || gid === undefined || uid === 0) return cmd;
  return ['setpriv', `--reuid=${uid}`, `--regid=${gid}`, '--clear-groups', '--', ...cmd];
}

/**
 * Removes the temporary directory. Files a container wrote as root (an older pibond, or a run cut
 * short) are not the user's to remove: then they are removed from inside a container, as root.
 */
export async function removeWorkDir(
  dir: string,
  emptyDirAsRoot: (dir: string) => Promise<void>,
  remove: (dir: string, opts: { recursive: true; force: true }) => Promise<void> = rm,
): Promise<void> {
  try {
    await remove(dir, { recursive: true, force: true });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code !== 'EACCES' && code !== 'EPERM') throw err;
    await emptyDirAsRoot(dir);
    await remove(dir, { recursive: true, force: true });
  }
}

/** Empties `dir` from a one-shot builder container, as root; bounded. */
async function emptyAsRoot(docker: Docker, builderImage: string, dir: string): Promise<void> {
  const removal = runContainer(docker, {
    image: builderImage,
    cmd: ['find', inside.run, '-mindepth', '1', '-delete'],
    binds: [`${dir}:${inside.run}`],
    sink: () => {},
  });
  await bounded(removal, removeAsRootMs, undefined);
}

interface BootFiles {
  kernel: string;
  initrd: string;
  append: string;
}

/**
 * In a one-shot builder container: checks the tools, copies config.txt, cmdline.txt, the kernels
 * and initrds off the image's boot partition (mtools, no mount), or the builder's kernel and initrd
 * out of the cache volume, and creates the qcow2 overlay.
 */
async function prepareBootFiles(
  docker: Docker,
  builderImage: string,
  image: BootImage,
  imageBinds: string[],
  labels: Record<string, string>,
  workDir: string,
  { prepareDisk, cardOffset, builder, cacheVolume }: { prepareDisk?: string; cardOffset?: number; builder?: BuilderKernel; cacheVolume: string },
  signal: AbortSignal | undefined,
): Promise<BootFiles> {
  const binds = builder ? [...imageBinds, `${cacheVolume}:${cacheMount}:ro`] : imageBinds;
  const script = `
    set -u
    at="${inside.image}@@$1"
    dest="${inside.run}/boot"
    command -v qemu-system-aarch64 >/dev/null || exit 90
    command -v mcopy >/dev/null && command -v qemu-img >/dev/null || exit 91
    mkdir -p "$dest"
    mcopy -n -i "$at" ::config.txt ::cmdline.txt "$dest/" || exit 92
    if [ -n "$4" ]; then
      cp "${cacheMount}/$4/vmlinuz" "${cacheMount}/$4/initrd.img" "$dest/" || exit 95
    else
      mcopy -n -i "$at" '::vmlinuz-*' "$dest/" 2>/dev/null
      mcopy -n -i "$at" '::initrd.img-*' "$dest/" 2>/dev/null
    fi
    if [ -n "$2" ]; then
      sh -c "$2" sh "${inside.image}" "${inside.run}/overlay.qcow2" || exit 93
    else
      qemu-img create -q -f qcow2 -F raw -b "${inside.image}" "${inside.run}/overlay.qcow2" || exit 93
    fi
    # The card's settings go into the overlay at the card slot; the image stays as it is.
    if [ -n "$3" ]; then
      qemu-io -f qcow2 -c "write -q -s ${inside.run}/${cardPatchName} $3 $(stat -c %s ${inside.run}/${cardPatchName})" "${inside.run}/overlay.qcow2" || exit 94
    fi
  `;
  const cmd = asInvokingUser(['sh', '-c', script, 'sh', String(image.bootPartitionOffset), prepareDisk ?? '', cardOffset === undefined ? '' : String(cardOffset), builder?.dir ?? '']);
  const output: string[] = [];
  // Labelled: a later boot clears it away after a SIGKILL.
  const { statusCode: exitCode, tail } = await runToExit(docker, { image: builderImage, cmd, binds, labels, sink: (line) => output.push(line) }, { signal, removeWithinMs: removeContainerMs });
  if (exitCode !== 0) {
    const said = output.slice(-5).join('; ');
    switch (exitCode) {
      case 90:
        throw new UserError(`the builder image ${builderImage} has no qemu-system-aarch64 (package qemu-system-arm); rebuild it: remove the image and run pibond build`);
      case 91:
        throw new UserError(`the builder image ${builderImage} lacks mtools or qemu-img; rebuild it: remove the image and run pibond build`);
      case 92:
        throw notPibond(image.path, `its boot partition holds no config.txt and cmdline.txt (${said})`);
      case 95:
        throw new Error(`the builder's kernel is not in the cache volume ${cacheVolume} (${builder?.dir}): ${said}`);
      default:
        throw new Error(`preparing the boot failed: ${new CommandFailed(cmd, exitCode, tail).message}`);
    }
  }
  const bootDir = join(workDir, 'boot');
  const cmdline = (await readFile(join(bootDir, 'cmdline.txt'), 'utf8')).trim();
  if (builder) return { kernel: 'vmlinuz', initrd: 'initrd.img', append: builderKernelCmdline(cmdline) };
  const { kernel, initrd } = bootFilesFrom(await readFile(join(bootDir, 'config.txt'), 'utf8'));
  const present = new Set(await readdir(bootDir));
  for (const file of [kernel, initrd]) {
    if (!present.has(file)) throw notPibond(image.path, `config.txt names ${file}, which is not on its boot partition`);
  }
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
function connectTerminal(terminal: Terminal, qemu: RunningContainer): void {
  const { stdin, stdout } = terminal;
  if (stdin.isTTY) stdin.setRawMode(true);
  stdin.resume();
  stdin.on('data', (chunk: Buffer) => {
    if (chunk.includes(0x03)) terminal.onInterrupt();
    else qemu.write(chunk);
  });
  const resize = () => {
    if (stdout.columns && stdout.rows) void qemu.resize({ rows: stdout.rows, columns: stdout.columns });
  };
  resize();
  stdout.on('resize', resize);
}

/** Gives the terminal back: cooked mode, no more reading. */
export function releaseTerminal(terminal: Terminal): void {
  try {
    if (terminal.stdin.isTTY) terminal.stdin.setRawMode(false);
  } catch {
    // The terminal is gone (SIGHUP): there is no mode to give back, and the cleanup must go on.
  }
  terminal.stdin.removeAllListeners('data');
  terminal.stdin.pause();
}

/**
 * The kernel argument that points a test boot's uplink probes (pibond-uplink) at `targets` instead
 * of the image's own (public resolvers): no test boot sends traffic to a real address. Never
 * written into the image. On QEMU's user-mode networks nothing answers them, so both uplinks are
 * down there and the tracker stays on the primary, leaving the switching to the cables.
 */
export function uplinkTargetsArg(targets: string[]): string {
  return `pibond.uplink.targets=${targets.join(',')}`;
}
