#!/usr/bin/env node
/**
 * The test bed's in-container half: two real routers and an "internet", each a network namespace,
 * inside the container's own network namespace (which has nothing but loopback to start with, so
 * nothing can leave the machine). Run as root with NET_ADMIN and SYS_ADMIN (creating a namespace
 * needs the latter) and /dev/net/tun.
 *
 *   testbed.mjs up LAYOUT      build it from the plan in $TESTBED_PLAN (JSON; its layout must be LAYOUT)
 *   testbed.mjs fail-wan R     cut router R's line at the ISP's end; its LAN side stays up
 *   testbed.mjs restore-wan R
 *   testbed.mjs hang R         router R's LAN port stays up, but nothing goes in or out (not even ARP)
 *   testbed.mjs unhang R
 *   testbed.mjs loss R PERCENT  drop PERCENT (0-100, 0 = none) of what crosses router R's WAN, each way:
 *                               a bad line that still carries most of the traffic
 *   testbed.mjs status         the whole state as JSON on stdout
 *   testbed.mjs down           remove everything `up` made; fine when nothing is up
 *
 * With `proberSocket` in the plan, `up` also starts the prober: the host's hands and eyes on the
 * internet side (the host has no network into this container, but a unix socket in a bind-mounted
 * directory crosses network namespaces). It is an HTTP server on that socket, run in the internet
 * namespace, that
 *   GET http://ADDRESS:PORT/PATH   fetches that URL from the internet's client (a forward proxy),
 *                                  on a fresh connection, within the x-timeout-ms header's time
 *   GET /banner?host=&port=&timeoutMs=   the first line a TCP server there sends (sshd's banner)
 *   POST /record/start             starts recording what the user would see, in epoch ms:
 *                                  a TCP connect every 20 ms through each router's status forward
 *                                  (the times of those that were answered), and every echo request
 *                                  arriving from the Pi's pinger (to the last target), with the router (WAN address) it came through;
 *                                  with ?macs=A,B (the Pi's NICs) also every frame the Pi sends into
 *                                  each router's LAN: the bond's own switch, seen on the wire
 *   GET /record                    what was recorded so far; POST /record/stop ends it
 *
 * The plan (addresses, MACs, ports) comes from the host (scripts/boot/testbed/index.ts), which
 * holds the one table of layouts; `up` keeps it in the state directory for the later commands.
 */
import { spawn } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { chmod, mkdir, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { createServer, request } from 'node:http';
import { connect } from 'node:net';
import { Buffer } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import { clearInterval, setInterval } from 'node:timers';
import { fileURLToPath } from 'node:url';
// zx's core alone: the full package loads twice as slowly, and every command of the test bed pays it.
import { $ } from 'zx/core';

const stateDir = '/run/pibond-testbed';
const planFile = `${stateDir}/plan.json`;
const self = fileURLToPath(import.meta.url);

// Quiet: a failed command's stderr is in its error; the expected failures of `down` say nothing.
$.quiet = true;

class UsageError extends Error {}

async function main(argv) {
  const [command, arg] = argv;
  switch (command) {
    case 'up':
      return up(parsePlan(process.env.TESTBED_PLAN, arg));
    case 'down':
      return down();
    case 'fail-wan':
      return setWan(await router(arg), false);
    case 'restore-wan':
      return setWan(await router(arg), true);
    case 'hang':
      return setHung(await router(arg), true);
    case 'unhang':
      return setHung(await router(arg), false);
    case 'loss':
      return setLoss(await router(arg), percent(argv[2]));
    case 'status':
      process.stdout.write(`${JSON.stringify(await status(), null, 2)}\n`);
      return;
    // Internal: the internet's answering service, started by `up` inside the internet namespace.
    case '_whoami':
      return whoami(argv.slice(1));
    // Internal: the host's prober, started by `up` inside the internet namespace.
    case '_prober':
      return prober(await loadPlan(), arg);
    default:
      throw new UsageError(`usage: testbed.mjs up LAYOUT | down | fail-wan ROUTER | restore-wan ROUTER | hang ROUTER | unhang ROUTER | loss ROUTER PERCENT | status`);
  }
}

function parsePlan(json, layout) {
  if (!json) throw new UsageError('up: TESTBED_PLAN (the plan as JSON) is not set');
  const plan = JSON.parse(json);
  if (plan.layout !== layout) throw new UsageError(`up: the plan is for layout ${plan.layout}, not ${layout}`);
  return plan;
}

async function loadPlan() {
  try {
    return JSON.parse(await readFile(planFile, 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT') throw new UsageError('the test bed is not up');
    throw err;
  }
}

async function router(name) {
  const plan = await loadPlan();
  const found = plan.routers.find((r) => r.name === name);
  if (!found) throw new UsageError(`no router ${name}; the routers are ${plan.routers.map((r) => r.name).join(', ')}`);
  return found;
}

async function up(plan) {
  await down();
  await mkdir(stateDir, { recursive: true });
  await writeFile(planFile, JSON.stringify(plan, null, 2));
  const { internet, routers } = plan;
  const namespaces = [internet.namespace, ...routers.map((r) => r.namespace)];

  // One `ip -batch` per namespace rather than a process per setting: `up` is on every test's path.
  await ipBatch(undefined, [
    ...namespaces.map((ns) => ['netns', 'add', ns]),
    ...routers.flatMap((r) => [
      // LAN: a bridge in the container's own namespace is the router's switch; QEMU's tap for the
      // Pi's NIC (in tests, a fake Pi's veth) is plugged into it next to the router's LAN port.
      ['link', 'add', r.bridge, 'type', 'bridge', 'stp_state', '0', 'forward_delay', '0'],
      ['link', 'set', r.bridge, 'up'],
      // A tap owned by QEMU's user can be opened without NET_ADMIN (QEMU may run as the invoking user).
      ['tuntap', 'add', 'dev', r.tap, 'mode', 'tap', ...(plan.tapOwner ? ['user', String(plan.tapOwner.uid), 'group', String(plan.tapOwner.gid)] : [])],
      ['link', 'set', r.tap, 'master', r.bridge, 'up'],
      ['link', 'add', r.lan.port, 'type', 'veth', 'peer', 'name', 'lan', 'netns', r.namespace],
      ['link', 'set', r.lan.port, 'master', r.bridge, 'up'],
      // WAN: a line into the internet, whose end of it plays the ISP.
      ['link', 'add', r.wan.peer, 'netns', internet.namespace, 'type', 'veth', 'peer', 'name', 'wan', 'netns', r.namespace],
    ]),
  ]);
  for (const ns of namespaces) await sysctls(ns);
  // Owning a tap is not enough to open it: the tun device itself must be open to that user. The
  // node is the container's own copy (the host's stays as it is), and hosts ship it 0600 or 0666.
  if (plan.tapOwner) await chmod('/dev/net/tun', 0o666);

  await ipBatch(internet.namespace, [
    ['link', 'set', 'lo', 'up'],
    // The probe targets and the client are addresses the internet owns, on its loopback so no
    // link going down takes them away (and a dummy device needs a module some kernels lack).
    ...[...internet.targets, internet.client, internet.watcher].map((address) => ['address', 'add', `${address}/32`, 'dev', 'lo']),
    ...routers.flatMap((r) => [
      ['link', 'set', r.wan.peer, 'address', r.wan.peerMac, 'up'],
      ['address', 'add', `${r.wan.gateway}/${r.wan.prefix}`, 'dev', r.wan.peer],
      // Replies to a client's inbound connection leave from the client's address, not the ISP end's.
      ['route', 'replace', r.wan.subnet, 'dev', r.wan.peer, 'src', internet.client],
    ]),
  ]);

  for (const r of routers) {
    await ipBatch(r.namespace, [
      ['link', 'set', 'lo', 'up'],
      ['link', 'set', 'lan', 'address', r.lan.mac, 'up'],
      ['address', 'add', `${r.lan.address}/${r.lan.prefix}`, 'dev', 'lan'],
      ['link', 'set', 'wan', 'address', r.wan.mac, 'up'],
      ['address', 'add', `${r.wan.address}/${r.wan.prefix}`, 'dev', 'wan'],
      // No default route anywhere: a router reaches only the documentation ranges, all owned by
      // the internet namespace, so even a Pi that sends to a real address gets "unreachable" back.
      ...plan.documentationRanges.filter((range) => range !== r.wan.subnet).map((range) => ['route', 'add', range, 'via', r.wan.gateway, 'dev', 'wan']),
    ]);
    await $({ input: routerRules(r) })`ip netns exec ${r.namespace} nft -f -`;
    await startDhcp(r);
  }

  // The internet's answering service: tells a caller which address it came from, so a probe can
  // see a router's NAT (the Pi's traffic must arrive from that router's WAN address).
  for (const target of internet.targets) {
    await startDaemon(`whoami-${target}`, ['ip', 'netns', 'exec', internet.namespace, process.execPath, self, '_whoami', target, String(internet.whoamiPort)]);
  }
  await waitFor(`the internet's answering service`, async () => {
    for (const target of internet.targets) {
      const r = await $`ip netns exec ${internet.namespace} curl -s -o /dev/null --max-time 1 ${`http://${target}:${internet.whoamiPort}/`}`.nothrow();
      if (r.exitCode !== 0) return false;
    }
    return true;
  });
  if (plan.proberSocket) {
    await rm(plan.proberSocket, { force: true });
    await startDaemon('prober', ['ip', 'netns', 'exec', internet.namespace, process.execPath, self, '_prober', plan.proberSocket]);
    await waitFor('the prober', async () => (await $`curl -s -o /dev/null --max-time 1 --unix-socket ${plan.proberSocket} http://prober/record`.nothrow()).exitCode === 0);
  }
}

/**
 * Runs `ip` commands (each an argv without `ip`) in one process, in a namespace or the container's
 * own. The batch is split on whitespace, so a word with any in it is refused, not mangled.
 */
async function ipBatch(ns, commands) {
  for (const word of commands.flat()) {
    if (!/^[\w.:/@-]+$/.test(word)) throw new Error(`ip -batch: refusing the word ${JSON.stringify(word)}`);
  }
  const input = `${commands.map((words) => words.join(' ')).join('\n')}\n`;
  await (ns ? $({ input })`ip -n ${ns} -batch -` : $({ input })`ip -batch -`);
}

/** What a home router does: masquerade the LAN behind its WAN address, forward a few ports to the Pi, drop the rest. */
function routerRules(r) {
  const forwards = r.forwards.map((f) => `    iifname "wan" tcp dport ${f.wanPort} dnat to ${r.lan.pi}:${f.piPort}`).join('\n');
  return `
table ip router {
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
${forwards}
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "wan" masquerade
  }
  chain forward {
    type filter hook forward priority filter; policy accept;
    iifname "wan" ct state established,related accept
    iifname "wan" ct status dnat accept
    iifname "wan" drop
  }
}
`;
}

async function startDhcp(r) {
  const leases = `${stateDir}/${r.name}.leases`;
  await writeFile(leases, '');
  await startDaemon(`dnsmasq-${r.name}`, [
    'ip', 'netns', 'exec', r.namespace,
    'dnsmasq', '--keep-in-foreground', '--conf-file=/dev/null', '--user=root',
    // DHCP only: the test bed has no names to serve, and DNS would be one more way out to reason about.
    '--port=0', '--no-resolv', '--no-hosts',
    '--interface=lan', '--bind-interfaces',
    `--dhcp-range=${r.lan.pool[0]},${r.lan.pool[1]},${r.lan.netmask},${r.lan.leaseTime}`,
    `--dhcp-option=option:router,${r.lan.address}`,
    // Like a real router, NAK a request for an address from another subnet, so a Pi that moved
    // between the different-subnets routers is told at once instead of timing out.
    '--dhcp-authoritative',
    // dnsmasq pings an address for 3 s before it first hands it out; with a one-address pool that
    // is only ever the Pi, and the wait would be counted as the Pi's outage at its first switch.
    '--no-ping',
    `--dhcp-leasefile=${leases}`,
    `--log-facility=${stateDir}/dnsmasq-${r.name}.log`, '--log-dhcp',
  ]);
  await waitFor(`router ${r.name}'s DHCP server`, async () =>
    (await $`ip netns exec ${r.namespace} ss -Hlun sport = :67`.nothrow()).stdout.trim() !== '');
}

/**
 * ip_forward and friends for a namespace. /proc/sys is read-only in a container; `ip netns exec`
 * runs its command in a mount namespace of its own, where remounting it writable touches nothing else.
 */
async function sysctls(ns) {
  const settings = [
    // Routers route, and so does the internet between them (a Pi may reach the other router's WAN).
    ['net/ipv4/ip_forward', 1],
    // A router answers ARP only for its own LAN address on its LAN port, as real ones do.
    ['net/ipv4/conf/all/arp_ignore', 1],
    ['net/ipv4/conf/all/rp_filter', 0],
  ];
  const script = ['mount -o remount,rw /proc/sys', ...settings.map(([key, value]) => `echo ${value} > /proc/sys/${key}`)].join(' && ');
  await $`ip netns exec ${ns} sh -c ${script}`;
}

/** Starts a process that outlives this command, its output in the state directory, its pid kept there. */
function startDaemon(name, argv) {
  const log = openSync(`${stateDir}/${name}.log`, 'a');
  const child = spawn(argv[0], argv.slice(1), { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  return writeFile(`${stateDir}/${name}.pid`, String(child.pid));
}

async function waitFor(what, ready, timeoutMs = 10_000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await ready())) {
    if (Date.now() > deadline) throw new Error(`${what} did not come up within ${timeoutMs / 1000} s`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function down() {
  // Processes first: a dnsmasq on a deleted namespace would linger bound to nothing.
  const pidFiles = (await readdir(stateDir).catch(() => [])).filter((name) => name.endsWith('.pid'));
  for (const file of pidFiles) {
    const pid = await readFile(`${stateDir}/${file}`, 'utf8');
    try {
      // Each daemon leads its own process group (spawned detached): `ip netns exec` and what it ran.
      process.kill(-Number(pid), 'SIGTERM');
    } catch {
      // already gone
    }
  }
  let plan;
  try {
    plan = JSON.parse(await readFile(planFile, 'utf8'));
  } catch {
    plan = undefined;
  }
  const namespaces = plan ? [plan.internet.namespace, ...plan.routers.map((r) => r.namespace)] : [];
  // Deleting a namespace deletes its veths, and with them their peers in the other namespaces.
  for (const ns of namespaces) await $`ip netns del ${ns}`.nothrow();
  for (const r of plan?.routers ?? []) {
    for (const link of [r.tap, r.lan.port, r.bridge]) await $`ip link del ${link}`.nothrow();
  }
  await rm(stateDir, { recursive: true, force: true });
}

async function setWan(r, up) {
  const plan = await loadPlan();
  // The ISP's end of the line goes away: the router loses carrier on its WAN port (like a DSL line
  // losing sync), while its LAN, DHCP and ARP keep going, so the Pi's own link sees nothing wrong.
  await $`ip -n ${plan.internet.namespace} link set ${r.wan.peer} ${up ? 'up' : 'down'}`;
  if (up) {
    await $`ip -n ${plan.internet.namespace} route replace ${r.wan.subnet} dev ${r.wan.peer} src ${plan.internet.client}`;
    // A line that comes back starts afresh (a DSL modem's new session): neighbour entries left
    // INCOMPLETE or FAILED while it was down would otherwise turn the first new packets away with
    // "host unreachable" when their old resolution gives up, a moment after the line is back.
    await $`ip -n ${r.namespace} neigh flush dev wan`;
    await $`ip -n ${plan.internet.namespace} neigh flush dev ${r.wan.peer}`;
  }
}

async function setHung(r, hung) {
  // Dropped at the LAN port's netdev hooks, before ARP or IP see anything, and on the way out: the
  // link stays up, but the router neither answers nor says anything, as a frozen one would.
  if (hung) {
    await $({ input: `
table netdev hang {
  chain ingress { type filter hook ingress device "lan" priority 0; policy drop; }
  chain egress { type filter hook egress device "lan" priority 0; policy drop; }
}
` })`ip netns exec ${r.namespace} nft -f -`;
  } else {
    await $`ip netns exec ${r.namespace} nft delete table netdev hang`.nothrow();
  }
}

function percent(word) {
  const value = Number(word);
  if (word === undefined || !Number.isInteger(value) || value < 0 || value > 100) throw new UsageError(`loss: PERCENT must be a whole number from 0 to 100, not ${word}`);
  return value;
}

async function setLoss(r, lossPercent) {
  // Random drops in the router's forward path on its WAN port, in both directions: the LAN, ARP,
  // DHCP and the router itself are untouched, as on a DSL line with errors. nft's numgen, not
  // netem: that needs sch_netem, a module not every host kernel has.
  await $`ip netns exec ${r.namespace} nft delete table inet loss`.nothrow();
  if (lossPercent === 0) return;
  await $({ input: `
table inet loss {
  chain forward {
    type filter hook forward priority -10; policy accept;
    oifname "wan" numgen random mod 100 < ${lossPercent} drop
    iifname "wan" numgen random mod 100 < ${lossPercent} drop
  }
}
` })`ip netns exec ${r.namespace} nft -f -`;
}

async function status() {
  const plan = await loadPlan();
  const inet = plan.internet.namespace;
  const routers = {};
  for (const r of plan.routers) {
    const [lan, wan, isp, hang, loss, dhcp, leases] = await Promise.all([
      link(r.namespace, 'lan'),
      link(r.namespace, 'wan'),
      link(inet, r.wan.peer),
      $`ip netns exec ${r.namespace} nft list table netdev hang`.nothrow(),
      $`ip netns exec ${r.namespace} nft list table inet loss`.nothrow(),
      alive(`dnsmasq-${r.name}`),
      readLeases(r.name),
    ]);
    routers[r.name] = {
      namespace: r.namespace,
      lan: { ...lan, address: r.lan.address, prefix: r.lan.prefix, bridge: r.bridge, tap: r.tap },
      wan: { ...wan, address: r.wan.address, gateway: r.wan.gateway },
      wanFailed: !isp.up,
      hung: hang.exitCode === 0,
      lossPercent: loss.exitCode === 0 ? Number(/ < (\d+) drop/.exec(loss.stdout)?.[1] ?? 0) : 0,
      dhcp: { running: dhcp, pool: r.lan.pool, leases },
      forwards: r.forwards,
    };
  }
  return {
    layout: plan.layout,
    internet: { namespace: inet, targets: plan.internet.targets, client: plan.internet.client, whoamiPort: plan.internet.whoamiPort },
    routers,
    taps: Object.fromEntries(await Promise.all(plan.routers.map(async (r) => [r.tap, await link(undefined, r.tap)]))),
  };
}

async function link(ns, name) {
  const r = await (ns ? $`ip -j -n ${ns} link show dev ${name}` : $`ip -j link show dev ${name}`).nothrow();
  const [info] = r.exitCode === 0 ? JSON.parse(r.stdout) : [];
  if (!info) return { exists: false, up: false };
  return { exists: true, mac: info.address, up: info.flags.includes('UP'), carrier: info.flags.includes('LOWER_UP'), operstate: info.operstate };
}

async function alive(name) {
  try {
    process.kill(Number(await readFile(`${stateDir}/${name}.pid`, 'utf8')), 0);
    return true;
  } catch {
    return false;
  }
}

/** dnsmasq's lease file: `expiry mac ip hostname client-id`, one lease a line. */
async function readLeases(name) {
  const text = await readFile(`${stateDir}/${name}.leases`, 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((line) => {
    const [expires, mac, address] = line.split(' ');
    return { mac, address, expires: Number(expires) };
  });
}

/** Answers every request with the caller's address and port, as seen here: after any NAT on the way. */
function whoami([address, port]) {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(`${JSON.stringify({ from: req.socket.remoteAddress, fromPort: req.socket.remotePort, to: req.socket.localAddress })}\n`);
  });
  server.listen(Number(port), address);
  return new Promise(() => {});
}

/** The prober: see the header. Runs in the internet namespace; every connection leaves from the client's address. */
function prober(plan, socketPath) {
  const client = plan.internet.client;
  let recording;
  const server = createServer((req, res) => {
    const reply = (status, body) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify(body)}\n`);
    };
    const url = new URL(req.url, 'http://prober');
    if (req.url.startsWith('http://')) return proxy(req, res, client);
    if (req.method === 'GET' && url.pathname === '/banner') {
      return banner(url.searchParams.get('host'), Number(url.searchParams.get('port')), Number(url.searchParams.get('timeoutMs') ?? 3000), client).then(
        (line) => reply(200, { line }),
        (err) => reply(502, { error: err.message }),
      );
    }
    if (req.method === 'POST' && url.pathname === '/record/start') {
      recording?.stop();
      // The Pi's NICs' MACs, for the bond's own switch seen on the wire.
      recording = record(plan, (url.searchParams.get('macs') ?? '').split(',').filter((mac) => /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(mac)));
      return recording.ready.then(() => reply(200, { started: recording.started }), (err) => reply(500, { error: err.message }));
    }
    if (req.method === 'POST' && url.pathname === '/record/stop') {
      recording?.stop();
      const last = recording?.result();
      recording = undefined;
      return reply(200, last ?? null);
    }
    if (req.method === 'GET' && url.pathname === '/record') return reply(200, recording?.result() ?? null);
    return reply(404, { error: `no ${req.method} ${url.pathname}` });
  });
  server.listen(socketPath);
  return new Promise(() => {});
}

/** An epoch time with sub-millisecond resolution: the host and this container share the kernel's clock. */
const epochMs = () => performance.timeOrigin + performance.now();

/** Fetches an absolute URL on a fresh connection from `client`; a failure or timeout is a 502 with its reason. */
function proxy(req, res, client) {
  const timeoutMs = Number(req.headers['x-timeout-ms'] ?? 1500);
  const target = new URL(req.url);
  const upstream = request({ host: target.hostname, port: target.port || 80, path: `${target.pathname}${target.search}`, localAddress: client, agent: false, headers: { connection: 'close' } });
  const fail = (err) => {
    if (res.headersSent) return res.destroy();
    res.writeHead(502, { 'content-type': 'application/json', 'x-prober-error': '1' });
    res.end(`${JSON.stringify({ error: err.message })}\n`);
  };
  const timer = setTimeout(() => upstream.destroy(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  upstream.on('error', (err) => {
    clearTimeout(timer);
    fail(err);
  });
  upstream.on('response', (answer) => {
    const chunks = [];
    answer.on('data', (c) => chunks.push(c));
    answer.on('error', fail);
    answer.on('end', () => {
      clearTimeout(timer);
      res.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'application/octet-stream' });
      res.end(Buffer.concat(chunks));
    });
  });
  // The host gave up on this request: so does the prober.
  res.on('close', () => {
    clearTimeout(timer);
    upstream.destroy();
  });
  upstream.end();
}

function banner(host, port, timeoutMs, client) {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, localAddress: client });
    let received = '';
    socket.setTimeout(timeoutMs, () => socket.destroy(new Error(`no banner within ${timeoutMs} ms`)));
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (received.includes('\n')) {
        socket.destroy();
        resolve(received.split(/\r?\n/)[0]);
      }
    });
    socket.on('error', reject);
    socket.on('close', () => reject(new Error('closed without a line')));
  });
}

/** Polling interval and the life of each connect: a fresh connect every 20 ms, each given 500 ms. */
const recordEveryMs = 20;
const connectLifeMs = 500;

/**
 * Records what a user on the internet sees: inbound, which routers' status forwards accept a TCP
 * connection (answered by the Pi's kernel, through that router's NAT both ways), and outbound, the
 * echo requests the Pi's pinger sends to the internet's last target, each with the router it came through.
 */
function record(plan, macs) {
  const started = epochMs();
  const inbound = Object.fromEntries(plan.routers.map((r) => [r.name, []]));
  const outbound = [];
  const routerOf = new Map(plan.routers.map((r) => [r.wan.address, r.name]));
  const timers = plan.routers.map((r) => {
    const forward = r.forwards.find((f) => f.service === 'status');
    return setInterval(() => {
      const socket = connect({ host: r.wan.address, port: forward.wanPort, localAddress: plan.internet.watcher });
      socket.setTimeout(connectLifeMs, () => socket.destroy());
      socket.on('connect', () => {
        inbound[r.name].push(Math.round(epochMs() * 10) / 10);
        socket.destroy();
      });
      socket.on('error', () => {});
    }, recordEveryMs);
  });
  // The test boot's pinger only (the last target): the image's uplink probes go to the others.
  const filter = `icmp[icmptype] == icmp-echo and dst host ${plan.internet.targets.at(-1)}`;
  const pings = capture(['-i', 'any', '-Q', 'in', filter], (line) => {
    const match = /^(\d+\.\d+) .*\bIP (\d+\.\d+\.\d+\.\d+) > /.exec(line);
    if (match) outbound.push({ at: Math.round(Number(match[1]) * 10_000) / 10, via: routerOf.get(match[2]) ?? match[2] });
  });
  const captures = [pings];
  // The bond itself, seen on the wire: the frames the Pi sends into each router's LAN (on the taps,
  // in the container's own namespace). An active-backup bond sends on its active slave only.
  const lan = [];
  if (macs.length) {
    const pi = macs.map((mac) => `ether src ${mac}`).join(' or ');
    for (const r of plan.routers) {
      // One capture per tap: on `any`, tcpdump's cooked frames cannot be filtered by MAC.
      const onLine = (line) => {
        const match = /^(\d+\.\d+) /.exec(line);
        if (match) lan.push({ at: Math.round(Number(match[1]) * 10_000) / 10, via: r.name });
      };
      captures.push(capture(['-i', r.tap, '-Q', 'in', pi], onLine, ['nsenter', '--net=/proc/1/ns/net']));
    }
  }
  return {
    started,
    ready: Promise.all(captures.map((c) => c.ready)),
    stop() {
      for (const timer of timers) clearInterval(timer);
      for (const c of captures) c.process.kill();
    },
    result: () => ({ started, now: epochMs(), inbound, outbound, lan }),
  };
}

/** tcpdump (behind `prefix`, e.g. nsenter) with these arguments, each line of its output to `onLine`; ready once it listens. */
function capture(args, onLine, prefix = []) {
  const argv = [...prefix, 'tcpdump', '-n', '-l', '--immediate-mode', '-tt', ...args];
  const child = spawn(argv[0], argv.slice(1), { stdio: ['ignore', 'pipe', 'pipe'] });
  let rest = '';
  child.stdout.on('data', (chunk) => {
    const lines = (rest + chunk.toString()).split('\n');
    rest = lines.pop() ?? '';
    for (const line of lines) onLine(line);
  });
  const ready = new Promise((resolve, reject) => {
    let said = '';
    child.stderr.on('data', (chunk) => {
      said += chunk.toString();
      if (/listening on/.test(said)) resolve();
    });
    child.on('exit', (code) => reject(new Error(`tcpdump exited (${code}): ${said.trim()}`)));
    setTimeout(() => reject(new Error(`tcpdump did not start within 5 s: ${said.trim()}`)), 5000);
  });
  return { process: child, ready };
}

try {
  await main(process.argv.slice(2));
} catch (err) {
  if (err instanceof UsageError) {
    process.stderr.write(`testbed: ${err.message}\n`);
    process.exit(2);
  }
  throw err;
}
