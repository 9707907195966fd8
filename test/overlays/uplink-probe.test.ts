/**
 * The probe helper (overlays/16-bond-uplink/rootfs/usr/lib/pibond/uplink-probe) against real
 * kernels, over its stdin/stdout protocol. A Pi namespace whose eth1 has no address (like a bond
 * slave: the helper alone speaks on it), a router namespace on the other end of eth1, and an
 * "internet" namespace behind the router owning the two targets. Documentation addresses only and
 * no default route anywhere: nothing leaves the machine. Needs root (namespaces, packet sockets).
 */
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const helperPath = join(import.meta.dirname, '../../overlays/16-bond-uplink/rootfs/usr/lib/pibond/uplink-probe');

const router = '192.168.8.1';
const source = '192.168.8.100'; // the Pi's address on the router's LAN, configured nowhere
const targets = ['192.0.2.1', '192.0.2.2'];
const missingTarget = '192.0.2.9';
const wan = { router: '198.51.100.1', inet: '198.51.100.2' };
const timeoutMs = 1000;

/**
 * pi: eth1 (no address) -- router: lan 192.168.8.1/24, wan 198.51.100.1/30, forwarding --
 * inet: isp 198.51.100.2/30, 192.0.2.1/32 and 192.0.2.2/32 on lo. Namespace names are unique per
 * run; remove() deletes them (and with them every veth), also after a half-done set-up.
 */
class TestNet {
  readonly tag = `pbp-${randomBytes(3).toString('hex')}`;
  readonly pi = `${this.tag}-pi`;
  readonly router = `${this.tag}-router`;
  readonly inet = `${this.tag}-inet`;

  constructor() {
    try {
      for (const ns of [this.pi, this.router, this.inet]) execFileSync('ip', ['netns', 'add', ns]);
      this.ip(this.pi, 'link', 'add', 'eth1', 'type', 'veth', 'peer', 'name', 'lan', 'netns', this.router);
      this.ip(this.router, 'link', 'add', 'wan', 'type', 'veth', 'peer', 'name', 'isp', 'netns', this.inet);
      this.ip(this.pi, 'link', 'set', 'eth1', 'up');
      this.ip(this.router, 'address', 'add', `${router}/24`, 'dev', 'lan');
      this.ip(this.router, 'address', 'add', `${wan.router}/30`, 'dev', 'wan');
      this.ip(this.router, 'link', 'set', 'lan', 'up');
      this.ip(this.router, 'link', 'set', 'wan', 'up');
      this.ip(this.router, 'route', 'add', '192.0.2.0/24', 'via', wan.inet);
      // Forwarding; and a question about a neighbour that nobody answers fails after 100 ms, not 3 s.
      this.exec(this.router, 'sysctl', '-qw', 'net.ipv4.ip_forward=1', 'net.ipv4.neigh.lan.mcast_solicit=1', 'net.ipv4.neigh.lan.retrans_time_ms=100');
      this.ip(this.inet, 'address', 'add', `${wan.inet}/30`, 'dev', 'isp');
      for (const target of targets) this.ip(this.inet, 'address', 'add', `${target}/32`, 'dev', 'lo');
      this.ip(this.inet, 'link', 'set', 'lo', 'up');
      this.connectWan();
    } catch (err) {
      this.remove();
      throw err;
    }
  }

  ip(ns: string, ...args: string[]): string {
    return execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });
  }

  exec(ns: string, ...command: string[]): string {
    return execFileSync('ip', ['netns', 'exec', ns, ...command], { encoding: 'utf8' });
  }

  mac(ns: string, dev: string): string {
    return this.exec(ns, 'cat', `/sys/class/net/${dev}/address`).trim();
  }

  /**
   * Brings inet's end of the WAN up; taking it down dropped the route back to the Pi's LAN. The
   * router may still be asking for inet in vain, once a second: a fresh question gets answered at once.
   */
  connectWan(): void {
    this.ip(this.inet, 'link', 'set', 'isp', 'up');
    this.ip(this.inet, 'route', 'replace', '192.168.8.0/24', 'via', wan.router);
    this.ip(this.router, 'neigh', 'flush', 'dev', 'wan');
  }

  /**
   * Waits until every link passes frames. Set up is not enough: until the kernel's linkwatch
   * (rate-limited to once a second) has seen the carrier, the link's qdisc drops all it is given.
   * It sets operstate UP at the same time.
   */
  async linksUp(): Promise<void> {
    const ends: [string, string][] = [[this.pi, 'eth1'], [this.router, 'lan'], [this.router, 'wan'], [this.inet, 'isp']];
    for (const [ns, dev] of ends) {
      await waitFor(`${dev} in ${ns} to be UP`, () => (JSON.parse(this.ip(ns, '-json', 'link', 'show', 'dev', dev)) as { operstate: string }[])[0]?.operstate === 'UP');
    }
  }

  /** The router's neighbour entry for `address` on its LAN, if it has one. */
  neighbour(address: string): { lladdr?: string; state: string[] } | undefined {
    const entries = JSON.parse(this.ip(this.router, '-json', 'neigh', 'show', address, 'dev', 'lan')) as { lladdr?: string; state: string[] }[];
    return entries[0];
  }

  /** Datagrams the router has forwarded so far (ForwDatagrams in its /proc/net/snmp). */
  forwarded(): number {
    const [names = '', values = ''] = this.exec(this.router, 'cat', '/proc/net/snmp').split('\n').filter((line) => line.startsWith('Ip:'));
    return Number(values.split(/\s+/)[names.split(/\s+/).indexOf('ForwDatagrams')]);
  }

  /** Puts hand-made Ethernet frames on the wire of `dev` in `ns`, through a packet socket. */
  sendFrames(ns: string, dev: string, frames: Buffer[]): void {
    this.exec(ns, 'perl', '-e', sendFramesScript, dev, ...frames.map((frame) => frame.toString('hex')));
  }

  remove(): void {
    for (const ns of [this.pi, this.router, this.inet]) {
      try {
        execFileSync('ip', ['netns', 'delete', ns], { stdio: 'ignore' });
      } catch {
        // Never created (a half-done set-up), or gone already.
      }
    }
  }
}

const sendFramesScript = `
  my ($dev, @frames) = @ARGV;
  open(my $file, '<', "/sys/class/net/$dev/ifindex") or die "$dev: $!";
  chomp(my $ifindex = <$file>);
  socket(my $socket, 17, 3, 0) or die "socket: $!";
  bind($socket, pack('S n i S C C a8', 17, 0, $ifindex, 0, 0, 0, '')) or die "bind: $!";
  defined send($socket, pack('H*', $_), 0) or die "send: $!" for @frames;
`;

interface ProbeResult {
  id: string;
  routerMac: string | null;
  routerRttMs: number | null;
  /** Each target's RTT (null: no answer), in the request's order. */
  targets: [string, number | null][];
  bytes: number;
}

const rtt = String.raw`(?:\d+\.\d\d|-)`;
const resultLine = new RegExp(String.raw`^result (\S+) ((?:[0-9a-f]{2}:){5}[0-9a-f]{2}|-) (${rtt})((?: [\d.]+=${rtt})*) (\d+)$`);

/** Parses a `result` line by the protocol's exact format; throws on anything else. */
function parseResult(line: string): ProbeResult {
  const match = resultLine.exec(line);
  if (match === null) throw new Error(`not a result line: ${line}`);
  const [, id = '', mac = '-', routerRtt = '-', answers = '', bytes = ''] = match;
  const ms = (text: string) => (text === '-' ? null : Number(text));
  return {
    id,
    routerMac: mac === '-' ? null : mac,
    routerRttMs: ms(routerRtt),
    targets: answers.trim() === '' ? [] : answers.trim().split(' ').map((answer) => {
      const [target = '', time = '-'] = answer.split('=');
      return [target, ms(time)];
    }),
    bytes: Number(bytes),
  };
}

/** One helper process, `uplink-probe eth1` in the Pi's namespace, driven line by line. */
class Helper {
  readonly child: ChildProcessWithoutNullStreams;
  readonly exited: Promise<number | null>;
  private readonly lines: string[] = [];
  private wake: (() => void) | null = null;
  private stderr = '';

  constructor(ns: string) {
    // `ip netns exec` execs perl in place: child.pid is the helper's.
    this.child = spawn('ip', ['netns', 'exec', ns, 'perl', helperPath, 'eth1'], { stdio: ['pipe', 'pipe', 'pipe'] });
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      this.lines.push(line);
      this.wake?.();
    });
    this.child.stderr.on('data', (chunk: Buffer) => void (this.stderr += chunk.toString()));
    this.exited = new Promise((resolve) => this.child.on('exit', (code) => {
      resolve(code);
      this.wake?.();
    }));
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('the helper did not start');
    return this.child.pid;
  }

  send(line: string): void {
    this.child.stdin.write(`${line}\n`);
  }

  async nextLine(withinMs = 5000): Promise<string> {
    const deadline = Date.now() + withinMs;
    for (;;) {
      const line = this.lines.shift();
      if (line !== undefined) return line;
      if (this.child.exitCode !== null) throw new Error(`the helper exited (${this.child.exitCode}): ${this.stderr}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no line from the helper within ${withinMs} ms; stderr: ${this.stderr}`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this.wake = null;
    }
  }

  /** Sends one probe request and waits for its result; elapsedMs runs from the request to the answer. */
  async probe(id: string, request: { source?: string; router?: string; sourceMac: string; count?: number; targets: string[] }): Promise<ProbeResult & { elapsedMs: number }> {
    const started = performance.now();
    this.send(['probe', id, request.sourceMac, request.source ?? source, request.router ?? router, timeoutMs, request.count ?? 2, ...request.targets].join(' '));
    const result = parseResult(await this.nextLine(timeoutMs + 2000));
    if (result.id !== id) throw new Error(`the answer to probe ${id} came as ${result.id}`);
    return { ...result, elapsedMs: performance.now() - started };
  }

  stop(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** Polls `read` until it gives a value, for at most `withinMs`. */
async function waitFor<T>(what: string, read: () => T | undefined | null | false, withinMs = 2000): Promise<T> {
  const deadline = Date.now() + withinMs;
  for (;;) {
    const value = read();
    if (value !== undefined && value !== null && value !== false) return value;
    if (Date.now() > deadline) throw new Error(`timed out after ${withinMs} ms waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Bytes queued on the helper's packet socket: Rmem in its namespace's /proc/net/packet. */
function queuedBytes(pid: number): number {
  // sk RefCnt Type Proto Iface R Rmem User Inode; the helper owns the only packet socket there.
  const rows = readFileSync(`/proc/${pid}/net/packet`, 'utf8').trim().split('\n').slice(1);
  if (rows.length !== 1) throw new Error(`expected the helper's packet socket alone:\n${rows.join('\n')}`);
  return Number(rows[0]?.trim().split(/\s+/)[6]);
}

const octets = (address: string) => Buffer.from(address.split('.').map(Number));
const macBytes = (mac: string) => Buffer.from(mac.replaceAll(':', ''), 'hex');

function ethernet(dst: string, src: string, type: number, payload: Buffer, vlan?: number): Buffer {
  const tag = vlan === undefined ? [] : [Buffer.from([0x81, 0x00, vlan >> 8, vlan & 0xff])];
  return Buffer.concat([macBytes(dst), macBytes(src), ...tag, Buffer.from([type >> 8, type & 0xff]), payload]);
}

/** An IPv4 packet (no checksum: the Pi's kernel drops it either way, the socket filter never looks). */
function ipv4(protocol: number, src: string, dst: string, payload: Buffer): Buffer {
  const header = Buffer.alloc(20);
  header.writeUInt8(0x45, 0);
  header.writeUInt16BE(20 + payload.length, 2);
  header.writeUInt8(64, 8);
  header.writeUInt8(protocol, 9);
  octets(src).copy(header, 12);
  octets(dst).copy(header, 16);
  return Buffer.concat([header, payload]);
}

const echoRequest = Buffer.from('0800f7ff00000000', 'hex');

/** An ICMP echo reply (no checksum: the helper does not check it) with 16 bytes of payload. */
function echoReply(id: number, seq: number): Buffer {
  const icmp = Buffer.alloc(8 + 16);
  icmp.writeUInt16BE(id, 4);
  icmp.writeUInt16BE(seq, 6);
  return icmp;
}

const isRoot = process.getuid?.() === 0;

describe.skipIf(!isRoot)('uplink-probe (skipped unless root: it builds network namespaces and opens packet sockets)', () => {
  let net: TestNet;
  let helper: Helper;
  let piMac: string;
  let routerMac: string;

  beforeAll(async () => {
    net = new TestNet();
    await net.linksUp();
    piMac = net.mac(net.pi, 'eth1');
    routerMac = net.mac(net.router, 'lan');
    helper = new Helper(net.pi);
  });

  afterAll(() => {
    helper?.stop();
    net?.remove();
  });

  it("says ready with eth1's MAC", async () => {
    expect(await helper.nextLine()).toBe(`ready eth1 ${piMac}`);
  });

  // First, before any probe: later the router's neighbour probing (ARP) would count as traffic here.
  it('lets only ARP and echo replies to its own id through its socket filter, and goes on working after other traffic', async () => {
    const toPi = (type: number, payload: Buffer, vlan?: number) => ethernet(piMac, routerMac, type, payload, vlan);
    const ours = helper.pid & 0xffff;
    const icmp = toPi(0x0800, ipv4(1, router, '192.168.8.50', echoReply(ours, 1)));
    const unrelated = [
      toPi(0x0800, ipv4(1, router, '192.168.8.50', echoRequest)), // an echo request (someone pinging the Pi)
      toPi(0x0800, ipv4(1, router, '192.168.8.50', echoReply(ours ^ 0x8000, 1))), // another pinger's reply
      toPi(0x0800, ipv4(17, router, '192.168.8.50', Buffer.from('0009000900080000', 'hex'))), // UDP
      toPi(0x86dd, Buffer.concat([Buffer.from('6000000000083a40', 'hex'), Buffer.alloc(32, 0x20), Buffer.from('8000000000000000', 'hex')])), // IPv6 ICMPv6
      toPi(0x0800, ipv4(1, router, '192.168.8.50', echoReply(ours, 2)), 10), // ours, but on VLAN 10 on top of eth1
    ];
    // Stopped, the helper reads nothing: whatever passes the filter stays queued on its socket.
    process.kill(helper.pid, 'SIGSTOP');
    try {
      net.sendFrames(net.router, 'lan', [icmp]);
      const oneFrame = await waitFor('the ICMP frame queued', () => queuedBytes(helper.pid) || undefined);
      process.kill(helper.pid, 'SIGCONT');
      await waitFor('the helper to drain its socket', () => queuedBytes(helper.pid) === 0);
      process.kill(helper.pid, 'SIGSTOP');
      // Each frame is through the Pi's receive path when its send() returns: the ICMP frame last
      // is the sign that all went by.
      net.sendFrames(net.router, 'lan', [...unrelated, ...unrelated, icmp]);
      await waitFor('the ICMP frame queued', () => queuedBytes(helper.pid) > 0);
      expect(queuedBytes(helper.pid), 'only our echo reply is queued: no echo request, other id, UDP, IPv6 or VLAN frame').toBe(oneFrame);
    } finally {
      process.kill(helper.pid, 'SIGCONT');
    }
    const result = await helper.probe('filter', { sourceMac: piMac, targets });
    expect(result.targets.map(([, ms]) => ms === null)).toEqual([false, false]);
  });

  // Echo replies made up in the router's namespace: a fresh helper numbers its echo requests from
  // 1, in the order of the targets, so the replies can aim at one sequence number exactly.
  it('counts only its own echo replies: its id, the sequence number of a request to that target, from that target', async () => {
    const fresh = new Helper(net.pi);
    try {
      expect(await fresh.nextLine()).toMatch(/^ready eth1 /);
      const id = fresh.pid & 0xffff;
      const [answering, silent] = ['192.0.2.9', '192.0.2.8']; // both missing: only made-up replies come
      const reply = (from: string, icmpId: number, seq: number) => ethernet(piMac, routerMac, 0x0800, ipv4(1, from, source, echoReply(icmpId, seq)));
      const forwarded = net.forwarded();
      fresh.send(['probe', 'made-up', piMac, source, router, timeoutMs, 1, answering, silent].join(' '));
      await waitFor('both echo requests through the router', () => net.forwarded() >= forwarded + 2);
      const sequences = Array.from({ length: 64 }, (_, seq) => seq);
      net.sendFrames(net.router, 'lan', [
        ...sequences.map((seq) => reply(silent, id ^ 0x8000, seq)), // another pinger's
        reply(silent, id, 1), // ours, but from the other target (1 went to `answering`)
        reply(answering, id, 2), // ours, but from the other target (2 went to `silent`)
        reply(answering, id, 1), // ours: counted
      ]);
      const result = parseResult(await fresh.nextLine(timeoutMs + 2000));
      expect(result.targets[0]?.[1], `${answering} answered sequence number 1`).toBeGreaterThan(0);
      expect(result.targets[1], 'no reply of ours came from 192.0.2.8').toEqual([silent, null]);
    } finally {
      fresh.stop();
    }
  });

  it('hears the router and both targets, each with an RTT, and ends as soon as all answered', async () => {
    const result = await helper.probe('1', { sourceMac: piMac, targets });
    expect(result.routerMac).toBe(routerMac);
    expect(result.routerRttMs).toBeGreaterThan(0);
    expect(result.targets.map(([target]) => target)).toEqual(targets);
    for (const [target, ms] of result.targets) expect(ms, target).toBeGreaterThan(0);
    // ARP request and reply, 4 echo requests and up to 4 replies: some 600 bytes.
    expect(result.bytes).toBeGreaterThan(0);
    expect(result.bytes).toBeLessThan(2000);
    expect(result.elapsedMs, 'not waiting for the deadline').toBeLessThan(timeoutMs * 0.9);
  });

  it('gives a target that does not answer as TARGET=-, at the deadline', async () => {
    const result = await helper.probe('2', { sourceMac: piMac, targets: [targets[0] ?? '', missingTarget] });
    expect(result.routerMac).toBe(routerMac);
    expect(result.targets[0]?.[1]).toBeGreaterThan(0);
    expect(result.targets[1]).toEqual([missingTarget, null]);
    expect(result.elapsedMs).toBeGreaterThanOrEqual(timeoutMs - 10);
    expect(result.elapsedMs).toBeLessThan(timeoutMs + 500);
  });

  it('gives - - and no target for a router that does not answer (its address is gone)', async () => {
    net.ip(net.router, 'address', 'delete', `${router}/24`, 'dev', 'lan');
    // Nor may the router ask for the Pi (its neighbour probing) and count as this probe's traffic.
    net.ip(net.router, 'neigh', 'flush', 'dev', 'lan');
    try {
      const result = await helper.probe('hung', { sourceMac: piMac, targets });
      expect(result.routerMac).toBeNull();
      expect(result.routerRttMs).toBeNull();
      expect(result.targets).toEqual(targets.map((target) => [target, null]));
      expect(result.bytes, 'its ARP requests alone (3 over the timeout), padded to 60 bytes each').toBe(180);
    } finally {
      net.ip(net.router, 'address', 'add', `${router}/24`, 'dev', 'lan');
    }
  });

  it('asks the router again when its first ARP request goes unanswered: one lost frame is no hung router', async () => {
    // The router has no address when the first request comes, and has it again well before the
    // second (a third of the timeout later). Only ip and the helper: no nft on a fresh host.
    net.ip(net.router, 'address', 'delete', `${router}/24`, 'dev', 'lan');
    let restored = false;
    try {
      const probing = helper.probe('retry', { sourceMac: piMac, targets });
      await new Promise((resolve) => setTimeout(resolve, timeoutMs / 10));
      net.ip(net.router, 'address', 'add', `${router}/24`, 'dev', 'lan');
      restored = true;
      const result = await probing;
      expect(result.routerMac).toBe(routerMac);
      // The RTT is from the request that was answered, not the first.
      expect(result.routerRttMs).toBeLessThan(timeoutMs / 3);
      expect(result.targets.map(([, ms]) => ms === null)).toEqual([false, false]);
    } finally {
      if (!restored) net.ip(net.router, 'address', 'add', `${router}/24`, 'dev', 'lan');
    }
  });

  it("hears the router but no target when the router's WAN is cut", async () => {
    net.ip(net.inet, 'link', 'set', 'isp', 'down');
    try {
      const result = await helper.probe('line', { sourceMac: piMac, targets });
      expect(result.routerMac).toBe(routerMac);
      expect(result.targets).toEqual(targets.map((target) => [target, null]));
    } finally {
      net.connectWan();
      await net.linksUp();
    }
  });

  it('asks the router alone with SRC_IP 0.0.0.0 (an RFC 5227 probe), and ends when it answered', async () => {
    const result = await helper.probe('dad', { source: '0.0.0.0', sourceMac: piMac, targets });
    expect(result.routerMac).toBe(routerMac);
    expect(result.routerRttMs).toBeGreaterThan(0);
    expect(result.targets).toEqual(targets.map((target) => [target, null]));
    expect(result.bytes, 'the ARP request and reply, no echo request').toBeLessThanOrEqual(60 + 60);
    expect(result.elapsedMs).toBeLessThan(timeoutMs * 0.9);
  });

  it('answers a malformed request with error, and the next probe still works', async () => {
    const bad: [string, RegExp][] = [
      ['hello', /^error - /],
      ['', /^error - /],
      ['probe', /^error - /],
      ['probe 7 zz:zz 1 2 3 4', /^error 7 bad SRC_MAC/],
      [`probe 8 ${piMac} 192.168.8.300 ${router} 1000 2`, /^error 8 bad SRC_IP/],
      [`probe 9 ${piMac} ${source} router.lan 1000 2`, /^error 9 bad ROUTER_IP/],
      [`probe 10 ${piMac} ${source} ${router} 0 2`, /^error 10 TIMEOUT_MS/],
      [`probe 11 ${piMac} ${source} ${router} 1000 two`, /^error 11 COUNT/],
      [`probe 12 ${piMac} ${source} ${router} 1000 2 ${missingTarget} ${missingTarget}`, /^error 12 TARGET .* twice/],
      [`probe 13 ff:ff:ff:ff:ff:ff ${source} ${router} 1000 2`, /^error 13 .*not unicast/],
      ['\u0000\u00ff probe \u001b[31m', /^error - /],
      [`probe ${'x'.repeat(10_000)}`, /^error - request longer than/],
    ];
    for (const [line] of bad) helper.send(line);
    for (const [line, answer] of bad) expect(await helper.nextLine(), JSON.stringify(line.slice(0, 40))).toMatch(answer);
    const result = await helper.probe('after-errors', { sourceMac: piMac, targets });
    expect(result.targets.map(([, ms]) => ms === null)).toEqual([false, false]);
  });

  // The router learns the Pi from the probe's own ARP request, so a flush before a probe proves
  // nothing: the router has to forget the Pi while the probe is open and ask again.
  it('answers ARP requests for SRC_IP while a probe is open, and only then', async () => {
    const neighbourOfPi = () => net.neighbour(source);
    const routerSendsToPi = () => net.exec(net.router, 'bash', '-c', `echo > /dev/udp/${source}/9`);
    net.ip(net.router, 'neigh', 'flush', 'dev', 'lan');
    // The missing target holds the probe open until its deadline.
    helper.send(['probe', 'arp', piMac, source, router, timeoutMs, 1, missingTarget].join(' '));
    await waitFor('the router to learn the Pi from the probe', neighbourOfPi);
    net.ip(net.router, 'neigh', 'delete', source, 'dev', 'lan');
    routerSendsToPi();
    const entry = await waitFor('the router to resolve the Pi again', () => neighbourOfPi()?.state.includes('REACHABLE') && neighbourOfPi(), timeoutMs / 2);
    expect(entry.lladdr).toBe(piMac);
    const result = parseResult(await helper.nextLine(timeoutMs + 2000));
    expect(result.id).toBe('arp');
    expect(result.routerMac).toBe(routerMac);

    // Probe over: the same question goes unanswered (nothing else in the Pi has the address).
    net.ip(net.router, 'neigh', 'delete', source, 'dev', 'lan');
    routerSendsToPi();
    await waitFor('the router to give up on the Pi', () => neighbourOfPi()?.state.includes('FAILED'));
  });

  it('answers the last request after EOF on stdin, then exits 0', async () => {
    helper.send(['probe', 'last', piMac, source, router, timeoutMs, 1, ...targets].join(' '));
    helper.child.stdin.end();
    expect(parseResult(await helper.nextLine()).id).toBe('last');
    expect(await helper.exited).toBe(0);
  });
});
