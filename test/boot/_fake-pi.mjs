#!/usr/bin/env node
/**
 * A stand-in for the Pi in the test bed's container, so the test bed can be proven without QEMU: a
 * namespace with two NICs, eth0 on the main router's bridge and eth1 on the backup's (where QEMU's
 * taps go), and a tiny HTTP server on the status and SSH ports that says which interface and
 * address a request reached.
 *
 *   _fake-pi.mjs add BRIDGE0 BRIDGE1   make the namespace and start the server
 *   _fake-pi.mjs use eth0|eth1         that NIC alone up, with a DHCP lease and a default route; prints the lease as JSON
 *   _fake-pi.mjs remove
 *
 * One NIC at a time, as an active-backup bond uses them: in the same-subnet layout both routers
 * hand out the same address, which two NICs of one host could not both hold.
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdir, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { networkInterfaces } from 'node:os';
import { fileURLToPath } from 'node:url';
// zx's core alone: the full package loads twice as slowly, and every call pays it.
import { $ } from 'zx/core';

$.quiet = true;

const ns = 'pibond-pi';
const stateDir = '/run/pibond-fake-pi';
const dhcpScript = `${stateDir}/udhcpc.sh`;
const nics = ['eth0', 'eth1'];
// QEMU's NICs' MACs in scripts/boot/machine.ts, so the routers see what they will see from QEMU.
const macs = { eth0: '52:54:00:00:00:01', eth1: '52:54:00:00:00:02' };
const ports = [8080, 22];

const [command, ...args] = process.argv.slice(2);
switch (command) {
  case 'add':
    await add(args);
    break;
  case 'use':
    process.stdout.write(`${JSON.stringify(await use(args[0]))}\n`);
    break;
  case 'remove':
    await remove();
    break;
  case '_serve':
    serve();
    break;
  default:
    process.stderr.write('usage: _fake-pi.mjs add BRIDGE0 BRIDGE1 | use eth0|eth1 | remove\n');
    process.exit(2);
}

async function add(bridges) {
  await remove();
  await mkdir(stateDir, { recursive: true });
  // udhcpc hands the lease to a script; this one only reports it, and `use` applies it.
  await writeFile(dhcpScript, '#!/bin/sh\n[ "$1" = bound ] && echo "lease $ip $mask $router"\nexit 0\n', { mode: 0o755 });
  await $`ip netns add ${ns}`;
  await $`ip -n ${ns} link set lo up`;
  for (const [i, nic] of nics.entries()) {
    const port = `pi-${nic}`;
    await $`ip link add ${port} type veth peer name ${nic} netns ${ns}`;
    await $`ip link set ${port} master ${bridges[i]} up`;
    await $`ip -n ${ns} link set ${nic} address ${macs[nic]}`;
  }
  const log = openSync(`${stateDir}/serve.log`, 'a');
  const child = spawn('ip', ['netns', 'exec', ns, process.execPath, fileURLToPath(import.meta.url), '_serve'], { detached: true, stdio: ['ignore', log, log] });
  closeSync(log);
  child.unref();
  await writeFile(`${stateDir}/serve.pid`, String(child.pid));
}

async function use(nic) {
  if (!nics.includes(nic)) throw new Error(`use: no NIC ${nic}`);
  const others = nics.filter((n) => n !== nic);
  const batch = [...others.flatMap((n) => [`address flush dev ${n}`, `link set ${n} down`]), `address flush dev ${nic}`, `link set ${nic} up`];
  await $({ input: `${batch.join('\n')}\n` })`ip -n ${ns} -batch -`;
  const out = await $`ip netns exec ${ns} busybox udhcpc -i ${nic} -n -q -f -t 5 -T 1 -s ${dhcpScript}`.nothrow();
  const lease = out.stdout.match(/^lease (\S+) (\d+) (\S+)/m);
  if (!lease) throw new Error(`no DHCP lease on ${nic}:\n${out.stdout}${out.stderr}`);
  const [, address, prefix, router] = lease;
  await $`ip -n ${ns} address add ${`${address}/${prefix}`} dev ${nic}`;
  await $`ip -n ${ns} route replace default via ${router} dev ${nic}`;
  return { nic, mac: macs[nic], address, prefix: Number(prefix), router };
}

async function remove() {
  await $`sh -c ${`kill -TERM -$(cat ${stateDir}/serve.pid) 2>/dev/null || true`}`;
  await $`ip netns del ${ns}`.nothrow();
  for (const nic of nics) await $`ip link del ${`pi-${nic}`}`.nothrow();
  await rm(stateDir, { recursive: true, force: true });
}

/** Says which of this namespace's interfaces and addresses a request came in on, and from where. */
function serve() {
  for (const port of ports) {
    createServer((req, res) => {
      const address = req.socket.localAddress;
      const nic = Object.entries(networkInterfaces()).find(([, addrs]) => addrs?.some((a) => a.address === address))?.[0];
      res.setHeader('content-type', 'application/json');
      res.end(`${JSON.stringify({ nic, address, port, from: req.socket.remoteAddress })}\n`);
    }).listen(port, '0.0.0.0');
  }
}
