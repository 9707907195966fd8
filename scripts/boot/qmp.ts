/**
 * A small QMP client (QEMU's JSON control protocol) over a unix socket: the greeting and the
 * capabilities handshake, commands matched to their answers by id, and asynchronous events.
 * Messages are JSON objects, one per line.
 */
import { type Socket, connect as connectSocket } from 'node:net';
import { poll } from '../lib/poll.ts';

export interface QmpEvent {
  event: string;
  data?: Record<string, unknown>;
  timestamp?: { seconds: number; microseconds: number };
}

/** QEMU refused a command: `class` is QMP's error class (GenericError, DeviceNotFound, ...). */
export class QmpError extends Error {
  override name = 'QmpError';
  constructor(
    readonly command: string,
    readonly errorClass: string,
    readonly description: string,
  ) {
    super(`QMP ${command} failed: ${errorClass}: ${description}`);
  }
}

interface Pending {
  command: string;
  resolve: (value: unknown) => void;
  reject: (err: Error) => void;
}

export class QmpClient {
  private buffer = '';
  private nextId = 1;
  private readonly pending = new Map<string, Pending>();
  private readonly listeners = new Set<(event: QmpEvent) => void>();
  private greeting: ((message: Record<string, unknown>) => void) | undefined;
  private closedBecause: Error | undefined;

  private constructor(private readonly socket: Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => this.receive(chunk));
    socket.on('error', (err) => this.fail(err));
    socket.on('close', () => this.fail(new Error('the QMP connection closed (QEMU exited?)')));
  }

  /**
   * Connects and completes the handshake. QEMU creates the socket a moment after it starts, so
   * a missing or refusing socket is retried until `deadline` (ms since the epoch).
   */
  static async connect(path: string, deadline: number, signal?: AbortSignal): Promise<QmpClient> {
    let socket: Socket;
    try {
      socket = await poll(() => openSocket(path), {
        what: `QEMU's QMP socket ${path}`,
        timeoutMs: Math.max(0, deadline - Date.now()),
        intervalMs: 100,
        signal,
        retryable: (err) => ['ENOENT', 'ECONNREFUSED'].includes((err as NodeJS.ErrnoException).code ?? ''),
      });
    } catch (err) {
      if (signal?.aborted) throw err;
      throw new Error(`cannot connect to QEMU's QMP socket ${path}: ${(err as Error).message}`);
    }
    const client = new QmpClient(socket);
    try {
      await client.handshake(deadline);
    } catch (err) {
      client.close();
      throw err;
    }
    return client;
  }

  /** Runs a command; resolves with its `return` value, rejects with a QmpError. */
  execute<T = unknown>(command: string, args?: Record<string, unknown>): Promise<T> {
    if (this.closedBecause) return Promise.reject(this.closedBecause);
    const id = `pibond-${this.nextId++}`;
    const message = args === undefined ? { execute: command, id } : { execute: command, arguments: args, id };
    return new Promise<T>((resolve, reject) => {
      this.pending.set(id, { command, resolve: resolve as (value: unknown) => void, reject });
      this.socket.write(`${JSON.stringify(message)}\n`);
    });
  }

  /** Plugs or unplugs a NIC's cable, as the guest sees it (its carrier). */
  setLink(nic: string, up: boolean): Promise<void> {
    return this.execute<Record<string, never>>('set_link', { name: nic, up }).then(() => undefined);
  }

  /**
   * Pulls a device out, the way a USB NIC is pulled: device_del only asks the guest to let go (a
   * PCIe hot-unplug waits for the guest's OS), so this resolves once QEMU reports DEVICE_DELETED
   * for `id`, and rejects if that has not happened by `deadline` (ms since the epoch).
   */
  async unplug(id: string, deadline: number): Promise<void> {
    let stop = () => {};
    const deleted = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`QEMU reported no DEVICE_DELETED for ${id}: the guest did not let it go`)), Math.max(0, deadline - Date.now()));
      const off = this.onEvent((event) => {
        if (event.event === 'DEVICE_DELETED' && event.data?.['device'] === id) resolve();
      });
      stop = () => {
        clearTimeout(timer);
        off();
      };
    });
    try {
      await this.execute('device_del', { id });
      await deleted;
    } finally {
      stop();
    }
  }

  /** Plugs a device in: `driver` and its properties, as -device takes them. */
  plug(device: { driver: string } & Record<string, string | number>): Promise<void> {
    return this.execute<Record<string, never>>('device_add', device).then(() => undefined);
  }

  /** Calls `listener` for every event; returns the function that stops it. */
  onEvent(listener: (event: QmpEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  close(): void {
    this.socket.destroy();
  }

  private async handshake(deadline: number): Promise<void> {
    const greeted = new Promise<Record<string, unknown>>((resolve, reject) => {
      this.greeting = resolve;
      const timer = setTimeout(() => reject(new Error('QEMU sent no QMP greeting')), Math.max(0, deadline - Date.now()) + 1000);
      timer.unref();
      this.socket.once('close', () => reject(new Error('the QMP connection closed before the greeting')));
    });
    const hello = await greeted;
    if (!('QMP' in hello)) throw new Error(`unexpected QMP greeting: ${JSON.stringify(hello)}`);
    await this.execute('qmp_capabilities');
  }

  private receive(chunk: string): void {
    const lines = (this.buffer + chunk).split('\n');
    this.buffer = lines.pop() ?? '';
    for (const line of lines) {
      if (line.trim() === '') continue;
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        this.fail(new Error(`QEMU sent a QMP line that is not JSON: ${line.slice(0, 200)}`));
        return;
      }
      this.dispatch(message);
    }
  }

  private dispatch(message: Record<string, unknown>): void {
    if (this.greeting) {
      const greeting = this.greeting;
      this.greeting = undefined;
      greeting(message);
      return;
    }
    if (typeof message['event'] === 'string') {
      for (const listener of this.listeners) listener(message as unknown as QmpEvent);
      return;
    }
    const id = typeof message['id'] === 'string' ? message['id'] : undefined;
    const pending = id === undefined ? undefined : this.pending.get(id);
    // An answer without our id belongs to nobody (QEMU answers parse errors that way): ignore it.
    if (!id || !pending) return;
    this.pending.delete(id);
    const error = message['error'] as { class?: string; desc?: string } | undefined;
    if (error) pending.reject(new QmpError(pending.command, error.class ?? 'UnknownError', error.desc ?? ''));
    else pending.resolve(message['return']);
  }

  private fail(err: Error): void {
    this.closedBecause ??= err;
    for (const pending of this.pending.values()) pending.reject(err);
    this.pending.clear();
  }
}

function openSocket(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connectSocket(path);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(socket);
    });
    socket.once('error', reject);
  });
}
