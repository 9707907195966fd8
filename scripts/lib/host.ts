/**
 * Host set-up: pibond needs only Docker and Node on the host. When no engine answers and we run
 * as root on Debian or Ubuntu, install docker.io and start the daemon, saying so; otherwise say
 * exactly what to do.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { $ } from 'zx';
import { type Docker, connectDocker, dockerUnreachable } from './docker.ts';
import { engineEndpoint } from './engine.ts';
import { UserError } from './errors.ts';
import { poll } from './poll.ts';

export type Say = (message: string) => void;

const dockerdLog = '/var/log/pibond-dockerd.log';

export async function ensureDockerEngine(say: Say): Promise<Docker> {
  const endpoint = engineEndpoint();
  try {
    return await connectDocker(endpoint);
  } catch (err) {
    // An engine the user named (DOCKER_HOST, a context) is theirs to start.
    if (endpoint.named || process.getuid?.() !== 0 || !(await isDebianLike())) throw dockerUnreachable(err, endpoint);
  }
  const sh = $({ quiet: true, env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  if (!existsSync('/usr/sbin/dockerd') && !existsSync('/usr/bin/dockerd')) {
    say('No Docker engine here: installing Debian\'s docker.io with apt-get (about a minute)');
    await sh`apt-get update -qq`;
    await sh`apt-get install -y -qq docker.io`;
  }
  if (systemdRuns()) {
    say('Starting the Docker engine: systemctl start docker');
    await sh`systemctl start docker`;
  } else {
    say(`Starting the Docker engine: dockerd in the background, its log in ${dockerdLog}`);
    const log = openSync(dockerdLog, 'a');
    try {
      spawn('dockerd', [], { detached: true, stdio: ['ignore', log, log] }).unref();
    } finally {
      // dockerd holds its own copy of the descriptor.
      closeSync(log);
    }
  }
  try {
    return await poll(connectDocker, { what: 'the Docker engine just started to answer', timeoutMs: 60_000, intervalMs: 500 });
  } catch (err) {
    throw dockerUnreachable(err, endpoint);
  }
}

/**
 * The engine, which must share this machine's file system: test boots and image diffs bind-mount
 * the image (and QEMU's QMP socket, and use this machine's network for the port forwards).
 */
export async function ensureLocalDockerEngine(say: Say, what: string): Promise<Docker> {
  const endpoint = engineEndpoint();
  if (!endpoint.local) {
    throw new UserError(
      `${what} needs the Docker engine of this machine, and ${endpoint.words} is not on a local socket: the image, QEMU's control socket and its port forwards are reached through this machine's files and network. ` +
        'Run it on the engine\'s machine, or unset DOCKER_HOST (or `docker context use default`) here. Builds work with any engine.',
    );
  }
  return ensureDockerEngine(say);
}

async function isDebianLike(): Promise<boolean> {
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(osRelease);
}

function systemdRuns(): boolean {
  return existsSync('/run/systemd/system');
}
