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
import { poll } from './poll.ts';

export type Say = (message: string) => void;

const dockerdLog = '/var/log/pibond-dockerd.log';

export async function ensureDockerEngine(say: Say): Promise<Docker> {
  try {
    return await connectDocker();
  } catch (err) {
    if (process.env['DOCKER_HOST'] || process.getuid?.() !== 0 || !(await isDebianLike())) throw dockerUnreachable(err);
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
    throw dockerUnreachable(err);
  }
}

async function isDebianLike(): Promise<boolean> {
  const osRelease = await readFile('/etc/os-release', 'utf8').catch(() => '');
  return /^(ID|ID_LIKE)=.*\b(debian|ubuntu)\b/m.test(osRelease);
}

function systemdRuns(): boolean {
  return existsSync('/run/systemd/system');
}
