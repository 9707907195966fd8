/**
 * A second Docker engine on this machine, for the tests of builds on "any engine": its own data
 * root, exec root and containerd, reached only over TCP on the loopback, so pibond must treat it as
 * remote (nothing of this machine's files is shared through bind mounts).
 *
 * Its containers sit on a bridge of their own (pibond-engine2, 10.213.0.0/24) with NAT out, as the
 * first engine's do: builds fetch packages from the Debian mirror. The engine is told to leave
 * iptables alone (two engines would fight over the DOCKER chains), so the NAT and the FORWARD
 * accepts are added here and removed again by stop(). Its data root persists between runs (like
 * the first engine's /var/lib/docker): a run's volumes are its own, named per run.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdir, open } from 'node:fs/promises';
import Docker from 'dockerode';
import { $ } from 'zx';
import { poll } from '../../scripts/lib/poll.ts';

const bridge = 'pibond-engine2';
const gateway = '10.213.0.1/24';
const subnet = '10.213.0.0/24';
const dataRoot = '/var/lib/pibond-engine2';
const execRoot = '/run/pibond-engine2';
export const secondEnginePort = 23751;
export const secondEngineHost = `tcp://127.0.0.1:${secondEnginePort}`;

const natRule = ['-t', 'nat', 'POSTROUTING', '-s', subnet, '!', '-o', bridge, '-j', 'MASQUERADE'];
const forwardRules = [
  ['FORWARD', '-i', bridge, '-j', 'ACCEPT'],
  ['FORWARD', '-o', bridge, '-m', 'conntrack', '--ctstate', 'RELATED,ESTABLISHED', '-j', 'ACCEPT'],
];

export interface SecondEngine {
  docker: Docker;
  /** DOCKER_HOST for pibond. */
  host: string;
  /** Where its log is. */
  log: string;
  stop(): Promise<void>;
}

export async function startSecondEngine(): Promise<SecondEngine> {
  const sh = $({ quiet: true });
  await sh`ip link add ${bridge} type bridge`.nothrow();
  await sh`ip addr replace ${gateway} dev ${bridge}`;
  await sh`ip link set ${bridge} up`;
  await addRule(natRule);
  for (const rule of forwardRules) await addRule(rule);
  await mkdir(dataRoot, { recursive: true });
  const log = '/var/log/pibond-engine2.log';
  const logFile = await open(log, 'a');
  let daemon: ChildProcess;
  try {
    daemon = spawn(
      'dockerd',
      [
        `--host=${secondEngineHost}`,
        `--data-root=${dataRoot}`,
        `--exec-root=${execRoot}`,
        `--pidfile=${execRoot}.pid`,
        `--bridge=${bridge}`,
        '--iptables=false',
        '--ip6tables=false',
        '--ip-masq=false',
      ],
      // Its own session: a Ctrl-C meant for the tests reaches it through stop() only.
      { stdio: ['ignore', logFile.fd, logFile.fd], detached: true },
    );
  } finally {
    await logFile.close();
  }
  const exited = new Promise<number | null>((resolve) => daemon.on('exit', resolve));
  const docker = new Docker({ host: '127.0.0.1', port: secondEnginePort, protocol: 'http' });
  const stop = async () => {
    if (daemon.exitCode === null) daemon.kill('SIGTERM');
    await Promise.race([exited, new Promise((resolve) => setTimeout(resolve, 30_000))]);
    if (daemon.exitCode === null) daemon.kill('SIGKILL');
    for (const rule of [natRule, ...forwardRules]) await deleteRule(rule);
    await sh`ip link del ${bridge}`.nothrow();
  };
  try {
    const answers = async (): Promise<true> => {
      if (daemon.exitCode !== null) throw new Error(`dockerd exited with ${daemon.exitCode}; see ${log}`);
      await docker.ping();
      return true;
    };
    await poll(answers, {
      what: `the second Docker engine on ${secondEngineHost}`,
      timeoutMs: 60_000,
      intervalMs: 500,
      retryable: () => daemon.exitCode === null,
    });
  } catch (err) {
    await stop();
    throw err;
  }
  return { docker, host: secondEngineHost, log, stop };
}

/** iptables' rules as [table options..., chain, match...]: added once (checked first), deleted whole. */
function split(rule: string[]): { table: string[]; chain: string; spec: string[] } {
  const table = rule[0] === '-t' ? rule.slice(0, 2) : [];
  const [chain = '', ...spec] = rule.slice(table.length);
  return { table, chain, spec };
}

async function addRule(rule: string[]): Promise<void> {
  const { table, chain, spec } = split(rule);
  const present = await $({ quiet: true })`iptables ${table} -C ${chain} ${spec}`.nothrow();
  if (present.exitCode !== 0) await $({ quiet: true })`iptables ${table} -I ${chain} ${spec}`;
}

async function deleteRule(rule: string[]): Promise<void> {
  const { table, chain, spec } = split(rule);
  await $({ quiet: true })`iptables ${table} -D ${chain} ${spec}`.nothrow();
}
