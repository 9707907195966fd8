import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { hostname } from 'node:os';
import { basename, join } from 'node:path';
import { describe, expect, it, onTestFinished } from 'vitest';
import type { FailoverEvent } from '../../overlays/20-bond-status/src/failover.ts';
import { defaultLimits, type HttpLimits } from '../../overlays/20-bond-status/src/http.ts';
import { silentJournal } from '../../overlays/20-bond-status/src/journal.ts';
import { describeLinkMonitor } from '../../overlays/20-bond-status/src/link-monitor.ts';
import { bootFinishedMark } from '../../overlays/20-bond-status/src/monitor.ts';
import { startService } from '../../overlays/20-bond-status/src/service.ts';
import type { StatusDocument } from '../../overlays/20-bond-status/src/status.ts';
import { json, openEventStream, raw, request } from './_http-client.ts';
import { bondWithSlaves, eth0, eth1, healthyBond, makeFakeRoot, makeFifo, procReport, waitFor, writeBonds, type FakeBond } from './fake-root.ts';

async function serve(bonds: FakeBond[] = [healthyBond], limits: Partial<HttpLimits> = {}) {
  const root = makeFakeRoot(bonds);
  const service = await startService({ root, listen: '127.0.0.1', port: 0, limits, journal: silentJournal });
  onTestFinished(() => service.close());
  return { root, url: service.url };
}

/** eth0's cable pulled: the kernel marks it down, counts a failure and makes eth1 active. */
const eth0Down: FakeBond = { ...healthyBond, active: 'eth1', slaves: [{ ...eth0, mii: 'down', speed: null, duplex: null, failures: 1 }, eth1] };

describe('GET /api/status', () => {
  it('answers the documented shape', async () => {
    const { url } = await serve();
    const answer = await request(`${url}/api/status`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('application/json; charset=utf-8');
    const doc = JSON.parse(answer.body) as StatusDocument;
    expect(doc.uptime_seconds).toBeGreaterThanOrEqual(0);
    expect(doc.hostname).toBe(hostname());
    expect(doc.bonds).toEqual([
      {
        name: 'bond0',
        // The fake root's bond0 is not an interface of this machine.
        addresses: [],
        mode: 'active-backup',
        mii_status: 'up',
        miimon_ms: 100,
        primary: 'eth0',
        primary_reselect: 'always',
        active_slave: 'eth0',
        arp_interval_ms: null,
        arp_targets: [],
        failovers: 0,
        last_failover: null,
        seconds_since_last_failover: null,
        last_heal: null,
        slaves: [
          { name: 'eth0', mii_status: 'up', carrier: true, speed_mbps: 1000, duplex: 'full', link_failure_count: 0, perm_hwaddr: '52:54:00:00:00:01', state: 'active', operstate: 'up' },
          { name: 'eth1', mii_status: 'up', carrier: true, speed_mbps: 100, duplex: 'full', link_failure_count: 0, perm_hwaddr: '52:54:00:00:00:02', state: 'backup', operstate: 'up' },
        ],
        uplinks: null,
      },
    ]);
  });

  it('reports every bond, and an unreadable one with an error instead of failing', async () => {
    const { root, url } = await serve([healthyBond, { ...healthyBond, name: 'bond1', slaves: [{ ...eth0, name: 'eth2' }, { ...eth1, name: 'eth3' }], primary: 'eth2', active: 'eth2' }]);
    mkdirSync(join(root, 'proc/net/bonding'), { recursive: true });
    writeFileSync(join(root, 'proc/net/bonding/bond2'), 'Ethernet Channel Bonding Driver: v6.1\nMII Polling Interval (ms): soon\n');
    const doc = await waitFor('bond2 to show up', async () => {
      const status = await json<StatusDocument>(`${url}/api/status`);
      return status.bonds.length === 3 ? status : undefined;
    });
    expect(doc.bonds.map((b) => [b.name, b.active_slave ?? null, b.error ?? null])).toEqual([
      ['bond0', 'eth0', null],
      ['bond1', 'eth2', null],
      ['bond2', null, '/proc/net/bonding/bond2: MII Polling Interval (ms): not a number: "soon"'],
    ]);
  });

  it('says whether the boot has finished: not until pibond-boot-finished.service made its mark, then for good', async () => {
    const { root, url } = await serve();
    expect((await json<StatusDocument>(`${url}/api/status`)).boot_finished).toBe(false);
    mkdirSync(join(root, bootFinishedMark), { recursive: true });
    expect((await json<StatusDocument>(`${url}/api/status`)).boot_finished).toBe(true);
    const unit = readFileSync(join(import.meta.dirname, '../../overlays/20-bond-status/rootfs/usr/lib/systemd/system/pibond-boot-finished.service'), 'utf8');
    expect(unit).toMatch(new RegExp(`^RuntimeDirectory=${basename(bootFinishedMark)}$`, 'm'));
    expect(unit).toMatch(/^After=multi-user\.target .*cloud-final\.service$/m);
  });

  it('reports null for no active slave, no primary and unknown speed', async () => {
    const { url } = await serve([{ ...healthyBond, primary: null, active: null, slaves: [{ ...eth0, mii: 'down', speed: null, duplex: null }, { ...eth1, mii: 'down', speed: null, duplex: null }] }]);
    const [bond] = (await json<StatusDocument>(`${url}/api/status`)).bonds;
    expect(bond).toMatchObject({ active_slave: null, primary: null, mii_status: 'down' });
    expect(bond?.slaves?.map((s) => [s.speed_mbps, s.duplex, s.carrier])).toEqual([
      [null, null, false],
      [null, null, false],
    ]);
  });
});

describe('a failover played on the fake files', () => {
  it('is seen in /api/status, /api/events, the event stream and /metrics, and so is the way back', async () => {
    const { root, url } = await serve();
    const stream = await openEventStream(`${url}/api/events/stream`);
    onTestFinished(() => stream.close());
    expect(stream.headers['content-type']).toBe('text/event-stream; charset=utf-8');

    writeBonds(root, [eth0Down]);
    const status = await waitFor('eth1 active in /api/status', async () => {
      const doc = await json<StatusDocument>(`${url}/api/status`);
      return doc.bonds[0]?.active_slave === 'eth1' ? doc : undefined;
    });
    const failover = status.bonds[0]?.last_failover;
    expect(failover).toMatchObject({ bond: 'bond0', from: 'eth0', to: 'eth1', cause: 'link_down' });
    // The event carries the wall-clock time it was noticed, for people and logs. How soon it is
    // noticed is for the QEMU failover test to measure, not for a unit test on a busy machine.
    expect(failover?.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    expect(status.bonds[0]).toMatchObject({ failovers: 1, seconds_since_last_failover: expect.any(Number) });
    expect(status.bonds[0]?.slaves?.map((s) => [s.name, s.state, s.mii_status])).toEqual([
      ['eth0', 'backup', 'down'],
      ['eth1', 'active', 'up'],
    ]);

    const streamed = await waitFor('the failover on the stream', () => (stream.events.length > 0 ? stream.events : undefined));
    expect(streamed[0]?.event).toBe('failover');
    expect(JSON.parse(streamed[0]?.data ?? '')).toEqual(failover);

    const metrics = (await request(`${url}/metrics`)).body;
    expect(metrics).toContain('pibond_bond_active_slave{master="bond0",slave="eth0"} 0\n');
    expect(metrics).toContain('pibond_bond_active_slave{master="bond0",slave="eth1"} 1\n');
    expect(metrics).toContain('pibond_bond_slave_mii_up{master="bond0",slave="eth0"} 0\n');
    expect(metrics).toContain('pibond_bond_slave_link_failures_total{master="bond0",slave="eth0"} 1\n');
    expect(metrics).toContain('pibond_bond_failovers_total{master="bond0"} 1\n');
    expect(metrics).toContain('node_bonding_active{master="bond0"} 1\n');
    expect(metrics).toMatch(/^pibond_bond_seconds_since_last_failover\{master="bond0"\} \d+(\.\d+)?$/m);

    // The cable goes back in: the primary returns and takes over (primary_reselect always).
    writeBonds(root, [{ ...healthyBond, slaves: [{ ...eth0, failures: 1 }, eth1] }]);
    const events = await waitFor('the way back in /api/events', async () => {
      const list = (await json<{ events: FailoverEvent[] }>(`${url}/api/events`)).events;
      return list.length === 2 ? list : undefined;
    });
    expect(events.map((e) => [e.from, e.to, e.cause])).toEqual([
      ['eth0', 'eth1', 'link_down'],
      ['eth1', 'eth0', 'primary_back'],
    ]);
    await waitFor('the way back on the stream', () => (stream.events.length === 2 ? true : undefined));
    expect((await request(`${url}/metrics`)).body).toContain('pibond_bond_failovers_total{master="bond0"} 2\n');
  });
});

describe('GET /metrics', () => {
  it("keeps node_exporter's bonding metrics: configured slaves, and slaves with MII up", async () => {
    const { url } = await serve([{ ...healthyBond, slaves: [eth0, { ...eth1, mii: 'down' }] }]);
    const answer = await request(`${url}/metrics`);
    expect(answer.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    expect(answer.body).toContain(
      '# HELP node_bonding_slaves Number of configured slaves per bonding interface.\n# TYPE node_bonding_slaves gauge\nnode_bonding_slaves{master="bond0"} 2\n',
    );
    expect(answer.body).toContain(
      '# HELP node_bonding_active Number of active slaves per bonding interface.\n# TYPE node_bonding_active gauge\nnode_bonding_active{master="bond0"} 1\n',
    );
    expect(answer.body).toContain('# TYPE pibond_bond_failovers_total counter\npibond_bond_failovers_total{master="bond0"} 0\n');
    // No failover yet: the family is declared, without a made-up sample.
    expect(answer.body).not.toMatch(/^pibond_bond_seconds_since_last_failover\{/m);
    // Every sample line belongs to a family declared with HELP and TYPE.
    const declared = new Set([...answer.body.matchAll(/^# TYPE (\S+) (gauge|counter)$/gm)].map((m) => m[1]));
    for (const line of answer.body.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
      expect(line).toMatch(/^[a-z_]+\{[a-z_]+="[^"]*"(,[a-z_]+="[^"]*")*\} \d+(\.\d+)?$/);
      expect(declared.has(line.slice(0, line.indexOf('{')))).toBe(true);
    }
  });
});

describe('the other pages', () => {
  it('GET /healthz answers ok', async () => {
    const { url } = await serve();
    expect(await request(`${url}/healthz`)).toMatchObject({ status: 200, body: 'ok\n' });
  });

  it('GET / is one page without external assets, live on the stream', async () => {
    const { url } = await serve();
    const answer = await request(`${url}/`);
    expect(answer.status).toBe(200);
    expect(answer.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(answer.headers['content-security-policy']).toContain("default-src 'none'");
    expect(answer.body).toContain('new EventSource("/api/events/stream")');
    expect(answer.body).toContain('fetch("/api/status"');
    expect(answer.body).not.toMatch(/(src|href)=|https?:\/\//);
  });

  it('HEAD answers the same headers without a body', async () => {
    const { url } = await serve();
    for (const path of ['/', '/api/status', '/metrics', '/healthz', '/api/events']) {
      const get = await request(`${url}${path}`);
      const head = await request(`${url}${path}`, 'HEAD');
      expect([path, head.status, head.body]).toEqual([path, 200, '']);
      expect(head.headers['content-type']).toBe(get.headers['content-type']);
    }
    // /api/status holds the uptime, which moves between two requests; the others do not here.
    for (const path of ['/', '/metrics', '/healthz', '/api/events']) {
      const [get, head] = [await request(`${url}${path}`), await request(`${url}${path}`, 'HEAD')];
      expect([path, head.headers['content-length']]).toEqual([path, get.headers['content-length']]);
    }
    const stream = await request(`${url}/api/events/stream`, 'HEAD');
    expect([stream.status, stream.headers['content-type'], stream.body]).toEqual([200, 'text/event-stream; charset=utf-8', '']);
  });
});

describe('requests that must be refused', () => {
  it.each(['POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'])('%s on a known path is 405 with Allow: GET, HEAD', async (method) => {
    const { url } = await serve();
    for (const path of ['/', '/api/status', '/api/events/stream', '/metrics']) {
      const answer = await request(`${url}${path}`, method);
      expect([path, answer.status, answer.headers.allow]).toEqual([path, 405, 'GET, HEAD']);
    }
  });

  it.each([
    '/../../etc/passwd',
    '/%2e%2e/',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/api/../../../etc/passwd',
    '/api/status/../../etc/passwd',
    '//etc/passwd',
    '/api/status/',
    '/index.html',
    '/api%2fstatus',
    '/metrics%00',
  ])('%s is 404 and never reaches a file', async (path) => {
    const { url } = await serve();
    const answer = await raw(url, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`);
    expect(answer.status).toBe(404);
    expect(answer.text).not.toContain('root:');
  });

  it('a query string does not change the route', async () => {
    const { url } = await serve();
    expect((await request(`${url}/healthz?x=../../etc/passwd`)).status).toBe(200);
  });

  it('oversize headers are cut off with 431', async () => {
    const { url } = await serve();
    const answer = await raw(url, `GET /api/status HTTP/1.1\r\nHost: x\r\nX-Padding: ${'a'.repeat(16 * 1024)}\r\n\r\n`);
    expect(answer.status).toBe(431);
  });

  it('a URL over 2 KiB is 414', async () => {
    const { url } = await serve();
    const answer = await raw(url, `GET /api/status?${'q'.repeat(3000)} HTTP/1.1\r\nHost: x\r\n\r\n`);
    expect(answer.status).toBe(414);
  });

  it('a client that never finishes its headers is cut off at the headers timeout', async () => {
    const { url } = await serve([healthyBond], { headersTimeoutMs: 300, requestTimeoutMs: 300, timeoutCheckMs: 50 });
    // No time limit asserted: the 408 itself says the server, not our deadline, ended it.
    const answer = await raw(url, 'GET /api/status HTTP/1.1\r\nHost: x\r\n', 5000);
    expect(answer.status).toBe(408);
  });

  it('event streams beyond the limit are refused with 503', async () => {
    const { url } = await serve([healthyBond], { maxStreams: 1 });
    const first = await openEventStream(`${url}/api/events/stream`);
    onTestFinished(() => first.close());
    const second = await request(`${url}/api/events/stream`);
    expect([second.status, second.headers['retry-after']]).toEqual([503, '5']);
  });

  it('an event stream gets heartbeats while nothing happens', async () => {
    const { url } = await serve([healthyBond], { heartbeatMs: 30 });
    const stream = await openEventStream(`${url}/api/events/stream`);
    onTestFinished(() => stream.close());
    await waitFor('two heartbeats', () => (stream.comments.filter((c) => c === 'heartbeat').length >= 2 ? true : undefined));
    expect(stream.events).toEqual([]);
  });
});

describe('what others on the LAN cannot do to the service', () => {
  it('300 slow connections from one machine do not lock another out: past its share they are closed at once, the rest time out', { timeout: 20_000 }, async () => {
    const { url } = await serve();
    const port = Number(new URL(url).port);
    const share = defaultLimits.maxConnectionsPerClient;
    const slow: Socket[] = [];
    const closedBy = new Map<Socket, string>();
    const trickle = setInterval(() => {
      for (const socket of slow) if (!closedBy.has(socket)) socket.write('x');
    }, 500);
    onTestFinished(() => {
      clearInterval(trickle);
      for (const socket of slow) socket.destroy();
    });
    await Promise.all(
      Array.from({ length: 300 }, () => new Promise<void>((resolve) => {
        const socket = connect({ port, host: '127.0.0.1', localAddress: '127.0.0.1' });
        slow.push(socket);
        let received = '';
        socket.setEncoding('latin1');
        socket.on('data', (chunk: string) => (received += chunk));
        socket.on('error', () => {});
        socket.on('close', () => {
          closedBy.set(socket, received.slice(0, 12));
          resolve();
        });
        // A request whose headers never end, a byte at a time.
        socket.once('connect', () => {
          socket.write('GET /api/status HTTP/1.1\r\nHost: x\r\nX-Slow: ');
          resolve();
        });
      })),
    );

    // Another machine's first try is answered (5 s: liveness on a busy test machine, not a timing claim).
    const answer = await Promise.race([
      request(`${url}/api/status`, 'GET', {}, '127.0.0.2'),
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no answer within 5 s')), 5000)),
    ]);
    expect(answer.status).toBe(200);
    expect((JSON.parse(answer.body) as StatusDocument).bonds[0]?.active_slave).toBe('eth0');

    // The slow machine kept only its share, and those are cut off by the headers timeout (408).
    await waitFor('the connections past the share closed', () => (closedBy.size >= 300 - share ? true : undefined));
    expect(slow.length - closedBy.size).toBeLessThanOrEqual(share);
    await waitFor('the rest timed out', () => (closedBy.size === 300 ? true : undefined), 15_000);
    expect([...closedBy.values()].filter((start) => start === 'HTTP/1.1 408')).toHaveLength(share);
  });

  it('a client at its share still gets its new connection in: its own oldest idle one is closed, never one being answered', async () => {
    const { url } = await serve([healthyBond], { maxConnectionsPerClient: 4, heartbeatMs: 50 });
    const port = Number(new URL(url).port);
    // One event stream (being answered all along), then three connections that never send a request.
    const stream = await openEventStream(`${url}/api/events/stream`);
    onTestFinished(() => stream.close());
    const idle = await Promise.all(
      Array.from({ length: 3 }, () => new Promise<{ socket: Socket; closed: Promise<void> }>((resolve) => {
        const socket = connect({ port, host: '127.0.0.1' });
        socket.on('error', () => {});
        const closed = new Promise<void>((done) => socket.on('close', () => done()));
        socket.once('connect', () => resolve({ socket, closed }));
      })),
    );
    onTestFinished(() => {
      for (const { socket } of idle) socket.destroy();
    });

    // The fifth connection from this address: answered, and the oldest idle one made room for it.
    expect((await request(`${url}/api/status`)).status).toBe(200);
    await idle[0]?.closed;
    expect(idle.map(({ socket }) => socket.destroyed)).toEqual([true, false, false]);
    const heartbeats = stream.comments.length;
    await waitFor('the stream to carry on', () => (stream.comments.length > heartbeats ? true : undefined));
  });

  it('a 20,000-slave report is refused with a note, and the service keeps answering', async () => {
    const { root, url } = await serve();
    writeFileSync(join(root, 'proc/net/bonding/bond0'), procReport(bondWithSlaves(20_000)));
    const doc = await waitFor('the refusal in /api/status', async () => {
      const status = await json<StatusDocument>(`${url}/api/status`);
      return status.bonds[0]?.error ? status : undefined;
    });
    expect(doc.bonds).toEqual([
      { name: 'bond0', addresses: [], error: '/proc/net/bonding/bond0: refused: larger than 32768 bytes', failovers: 0, last_failover: null, seconds_since_last_failover: null, last_heal: null, uplinks: null },
    ]);
    const answers = await Promise.all(['/healthz', '/api/status', '/metrics', '/'].map((path) => request(`${url}${path}`)));
    expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 200]);
    // Bounded: the answers hold a refusal, not 20,000 slaves.
    expect(answers[1]?.body.length).toBeLessThan(1024);
    expect(answers[2]?.body).not.toContain('slave="eth1"');
  });

  it('a FIFO in /proc/net/bonding is refused and reported, and the service keeps answering', async () => {
    const { root, url } = await serve();
    makeFifo(root, 'proc/net/bonding/bond0');
    const doc = await waitFor('the refusal in /api/status', async () => {
      const status = await json<StatusDocument>(`${url}/api/status`);
      return status.bonds[0]?.error ? status : undefined;
    });
    expect(doc.bonds[0]?.error).toBe('/proc/net/bonding/bond0: refused: not a regular file');
    expect((await request(`${url}/healthz`)).status).toBe(200);
  });
});

describe('a bond on the ARP monitor', () => {
  it('reports its ARP interval and targets, and the page describes the monitor with the terminal\'s words', async () => {
    const { root, url } = await serve();
    writeFileSync(join(root, 'proc/net/bonding/bond0'), readFileSync(join(import.meta.dirname, 'fixtures/proc/arp-monitor.txt')));
    const bond = await waitFor('the ARP monitor in /api/status', async () => {
      const status = await json<StatusDocument>(`${url}/api/status`);
      return status.bonds[0]?.arp_interval_ms ? status.bonds[0] : undefined;
    });
    expect([bond.miimon_ms, bond.arp_interval_ms, bond.arp_targets]).toEqual([0, 1000, ['192.168.1.1', '192.168.1.254']]);
    const page = (await request(`${url}/`)).body;
    expect(page).toContain(`const describeLinkMonitor = ${describeLinkMonitor.toString()};`);
    expect(page).toContain('describeLinkMonitor(b)');
    expect(page).not.toContain('show(b.miimon_ms)');
  });
});
