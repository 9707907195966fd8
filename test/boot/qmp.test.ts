import { mkdtemp, rm } from 'node:fs/promises';
import { type Server, type Socket, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { QmpClient, QmpError, type QmpEvent } from '../../scripts/boot/qmp.ts';

/** A pretend QEMU: greets, accepts qmp_capabilities, and lets each test answer the rest. */
class FakeQemu {
  readonly received: Record<string, unknown>[] = [];
  socket: Socket | undefined;
  private server: Server | undefined;
  onCommand: (message: Record<string, unknown>, reply: (answer: Record<string, unknown>) => void) => void = (message, reply) =>
    reply({ return: {}, id: message['id'] });

  async listen(path: string): Promise<void> {
    this.server = createServer((socket) => {
      this.socket = socket;
      socket.write('{"QMP": {"version": {"qemu": {"micro": 0, "minor": 2, "major": 7}}, "capabilities": ["oob"]}}\r\n');
      let buffer = '';
      socket.on('data', (chunk) => {
        const lines = (buffer + chunk.toString()).split('\n');
        buffer = lines.pop() ?? '';
        for (const line of lines) {
          const message = JSON.parse(line) as Record<string, unknown>;
          this.received.push(message);
          if (message['execute'] === 'qmp_capabilities') socket.write(`${JSON.stringify({ return: {}, id: message['id'] })}\r\n`);
          else this.onCommand(message, (answer) => socket.write(`${JSON.stringify(answer)}\r\n`));
        }
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(path, resolve));
  }

  close(): Promise<void> {
    this.socket?.destroy();
    return new Promise((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

let dir: string;
let qemu: FakeQemu;
let client: QmpClient | undefined;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pibond-qmp-test-'));
  qemu = new FakeQemu();
});

afterEach(async () => {
  client?.close();
  client = undefined;
  await qemu.close();
  await rm(dir, { recursive: true, force: true });
});

describe('QmpClient', () => {
  it('completes the capabilities handshake before anything else', async () => {
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    expect(qemu.received).toEqual([{ execute: 'qmp_capabilities', id: expect.any(String) }]);
  });

  it('waits for a socket that QEMU has not created yet', async () => {
    const path = join(dir, 'late.sock');
    const connecting = QmpClient.connect(path, Date.now() + 5000);
    await new Promise((resolve) => setTimeout(resolve, 300));
    await qemu.listen(path);
    client = await connecting;
    expect(qemu.received).toHaveLength(1);
  });

  it('gives up on a socket that never appears once the deadline passed', async () => {
    await expect(QmpClient.connect(join(dir, 'never.sock'), Date.now() + 300)).rejects.toThrow(/cannot connect to QEMU's QMP socket/);
  });

  it('sends set_link with the NIC and the state, and resolves on its answer', async () => {
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    await client.setLink('nic0', false);
    expect(qemu.received.at(-1)).toEqual({ execute: 'set_link', arguments: { name: 'nic0', up: false }, id: expect.any(String) });
  });

  it('unplugs with device_del and resolves only once QEMU reports that device deleted', async () => {
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    let settled = false;
    qemu.onCommand = (message, reply) => {
      reply({ return: {}, id: message['id'] });
      // The virtio backend goes first (no id), then the NIC itself, after the guest let go.
      setTimeout(() => {
        qemu.socket?.write('{"event": "DEVICE_DELETED", "data": {"path": "/machine/peripheral/nic1/virtio-backend"}}\r\n');
        setTimeout(() => {
          expect(settled).toBe(false);
          qemu.socket?.write('{"event": "DEVICE_DELETED", "data": {"device": "nic1", "path": "/machine/peripheral/nic1"}}\r\n');
        }, 20);
      }, 20);
    };
    await client.unplug('nic1', Date.now() + 2000).then(() => (settled = true));
    expect(qemu.received.at(-1)).toEqual({ execute: 'device_del', arguments: { id: 'nic1' }, id: expect.any(String) });
  });

  it('gives up on an unplug the guest never completes once the deadline passed', async () => {
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    await expect(client.unplug('nic1', Date.now() + 50)).rejects.toThrow(/no DEVICE_DELETED for nic1/);
  });

  it('plugs a device in with device_add, its properties as given', async () => {
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    await client.plug({ driver: 'virtio-net-pci', id: 'nic1', bus: 'rp2', speed: 100 });
    expect(qemu.received.at(-1)).toEqual({ execute: 'device_add', arguments: { driver: 'virtio-net-pci', id: 'nic1', bus: 'rp2', speed: 100 }, id: expect.any(String) });
  });

  it('matches answers to commands by id, whatever order they come in', async () => {
    const held: [Record<string, unknown>, (a: Record<string, unknown>) => void][] = [];
    qemu.onCommand = (message, reply) => {
      held.push([message, reply]);
      if (held.length === 2) for (const [m, r] of held.reverse()) r({ return: { echo: m['execute'] }, id: m['id'] });
    };
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    const [first, second] = await Promise.all([client.execute('query-status'), client.execute('query-version')]);
    expect(first).toEqual({ echo: 'query-status' });
    expect(second).toEqual({ echo: 'query-version' });
  });

  it("rejects with QEMU's error class and description", async () => {
    qemu.onCommand = (message, reply) => reply({ error: { class: 'DeviceNotFound', desc: "Device 'nic9' not found" }, id: message['id'] });
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    const failure = client.setLink('nic9', false);
    await expect(failure).rejects.toBeInstanceOf(QmpError);
    await expect(failure).rejects.toThrow("QMP set_link failed: DeviceNotFound: Device 'nic9' not found");
  });

  it('passes events to listeners, even one split across reads and between answers', async () => {
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    const events: QmpEvent[] = [];
    const seen = new Promise<void>((resolve) =>
      client?.onEvent((event) => {
        events.push(event);
        if (events.length === 2) resolve();
      }),
    );
    const line = JSON.stringify({ event: 'NIC_RX_FILTER_CHANGED', data: { name: 'nic0' }, timestamp: { seconds: 1, microseconds: 2 } });
    qemu.socket?.write(line.slice(0, 10));
    await new Promise((resolve) => setTimeout(resolve, 20));
    qemu.socket?.write(`${line.slice(10)}\r\n{"event": "STOP"}\r\n`);
    await seen;
    expect(events.map((e) => e.event)).toEqual(['NIC_RX_FILTER_CHANGED', 'STOP']);
    expect(events[0]?.data).toEqual({ name: 'nic0' });
  });

  it('rejects what is pending, and everything after, when QEMU goes away', async () => {
    qemu.onCommand = () => qemu.socket?.destroy();
    await qemu.listen(join(dir, 'qmp.sock'));
    client = await QmpClient.connect(join(dir, 'qmp.sock'), Date.now() + 2000);
    await expect(client.execute('quit')).rejects.toThrow(/closed/);
    await expect(client.setLink('nic0', true)).rejects.toThrow(/closed/);
  });

  it('stops waiting for the socket as soon as the run is aborted', async () => {
    const stop = new AbortController();
    const connecting = QmpClient.connect(join(dir, 'never.sock'), Date.now() + 60_000, stop.signal);
    setTimeout(() => stop.abort(new Error('stopped by SIGINT')), 100);
    // The deadline is a minute away: only the abort can end the wait within the test's timeout,
    // and it must end it with the abort's own reason.
    await expect(connecting).rejects.toThrow('stopped by SIGINT');
  });

  it('closes its connection when the handshake fails', async () => {
    let serverSide: Socket | undefined;
    const server = createServer((socket) => {
      serverSide = socket;
      socket.write('{"not": "a greeting"}\r\n');
    });
    await new Promise<void>((resolve) => server.listen(join(dir, 'odd.sock'), resolve));
    try {
      await expect(QmpClient.connect(join(dir, 'odd.sock'), Date.now() + 2000)).rejects.toThrow(/unexpected QMP greeting/);
      // The client hung up: the server's end sees the close.
      await new Promise<void>((resolve) => (serverSide?.closed ? resolve() : serverSide?.once('close', () => resolve())));
      expect(serverSide?.closed).toBe(true);
    } finally {
      serverSide?.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
