/**
 * Which Docker engine pibond talks to, and what kind it is. Like the docker CLI: DOCKER_HOST first
 * (docker-modem reads it, with DOCKER_TLS_VERIFY and DOCKER_CERT_PATH, and ssh://), else the
 * current Docker context (DOCKER_CONTEXT, or `currentContext` in ~/.docker/config.json), else the
 * local socket.
 *
 * An engine is local when it is reached through a unix socket: it then shares this machine's file
 * system, and a build may bind-mount its output directory. Any other engine (tcp, ssh, even on
 * 127.0.0.1: a tunnel looks the same) gets its inputs and gives its outputs through the API only.
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { join } from 'node:path';
import type Docker from 'dockerode';
import { UserError } from './errors.ts';

/** Where the engine is, as dockerode takes it, and in words for messages. */
export interface EngineEndpoint {
  /** undefined: dockerode's own choice (DOCKER_HOST, or the local socket). */
  options: Docker.DockerOptions | undefined;
  /** "DOCKER_HOST=tcp://10.0.0.5:2375", "the Docker context pi5 (ssh://me@pi5)", "the local socket /var/run/docker.sock". */
  words: string;
  local: boolean;
  /** Who named it: the user (DOCKER_HOST, a context), or nobody (the default socket, which pibond may start). */
  named: boolean;
}

export interface EngineInfo {
  endpoint: EngineEndpoint;
  /** The engine's CPU as Debian names it (amd64, arm64, armhf...), from its `Architecture`. */
  arch: string;
}

const defaultSocket = '/var/run/docker.sock';

/**
 * The engine this environment names. `env` and `home` are injectable for tests; a context that is
 * named but missing, or unreadable, is a UserError naming the file.
 */
export function engineEndpoint(env: NodeJS.ProcessEnv = process.env, home = homedir()): EngineEndpoint {
  const dockerHost = env['DOCKER_HOST'];
  if (dockerHost) return { options: undefined, words: `DOCKER_HOST=${dockerHost}`, local: isUnix(dockerHost), named: true };
  const configDir = env['DOCKER_CONFIG'] || join(home, '.docker');
  const context = env['DOCKER_CONTEXT'] || currentContext(configDir);
  if (context && context !== 'default') return contextEndpoint(configDir, context, Boolean(env['DOCKER_CONTEXT']));
  return { options: undefined, words: `the local socket ${defaultSocket}`, local: true, named: false };
}

/** Debian's name for an engine's `Architecture` (Go's or uname's spelling). */
export function debianArch(engineArch: string): string {
  const names: Record<string, string> = { x86_64: 'amd64', amd64: 'amd64', aarch64: 'arm64', arm64: 'arm64', armv7l: 'armhf', armhf: 'armhf', arm: 'armhf' };
  const arch = names[engineArch];
  if (!arch) throw new UserError(`the Docker engine runs on ${engineArch}; pibond builds on amd64, arm64 or armhf engines`);
  return arch;
}

/** What the engine is: its architecture, asked once. */
export async function describeEngine(docker: Docker, endpoint: EngineEndpoint): Promise<EngineInfo> {
  const info = (await docker.info()) as { Architecture?: string };
  return { endpoint, arch: debianArch(info.Architecture ?? 'unknown') };
}

/**
 * Whether a build for `target` (a Debian architecture) needs qemu-user on this engine: not when
 * the engine's CPU runs it natively (an arm64 engine runs arm64 and, in 32-bit mode, armhf).
 */
export function needsEmulation(engineArch: string, target: string): boolean {
  if (engineArch === target) return false;
  return !(engineArch === 'arm64' && target === 'armhf');
}

function isUnix(host: string): boolean {
  return host.startsWith('unix://') || host.startsWith('npipe://');
}

function currentContext(configDir: string): string | undefined {
  const file = join(configDir, 'config.json');
  if (!existsSync(file)) return undefined;
  try {
    const config = JSON.parse(readFileSync(file, 'utf8')) as { currentContext?: unknown };
    return typeof config.currentContext === 'string' ? config.currentContext : undefined;
  } catch (err) {
    throw new UserError(`cannot read the Docker client's configuration ${file}: ${(err as Error).message}`);
  }
}

/** The docker CLI stores a context's endpoint under the sha256 of its name. */
function contextEndpoint(configDir: string, name: string, fromEnv: boolean): EngineEndpoint {
  const id = createHash('sha256').update(name).digest('hex');
  const meta = join(configDir, 'contexts', 'meta', id, 'meta.json');
  const chosen = fromEnv ? `DOCKER_CONTEXT=${name}` : `the current Docker context "${name}" (${join(configDir, 'config.json')})`;
  if (!existsSync(meta)) throw new UserError(`${chosen} names a context that does not exist: no ${meta}. List them with \`docker context ls\`.`);
  let host: unknown;
  try {
    const parsed = JSON.parse(readFileSync(meta, 'utf8')) as { Endpoints?: { docker?: { Host?: unknown } } };
    host = parsed.Endpoints?.docker?.Host;
  } catch (err) {
    throw new UserError(`cannot read Docker context "${name}" (${meta}): ${(err as Error).message}`);
  }
  if (typeof host !== 'string' || !host) throw new UserError(`Docker context "${name}" (${meta}): field Endpoints.docker.Host is missing; it must be a unix://, tcp:// or ssh:// address`);
  const words = `the Docker context "${name}" (${host})`;
  const url = new URL(host);
  if (url.protocol === 'unix:') return { options: { socketPath: url.pathname }, words, local: true, named: true };
  if (url.protocol === 'ssh:') {
    const ssh = { protocol: 'ssh' as const, host: url.hostname, port: url.port || 22, username: url.username || undefined, sshOptions: { agent: process.env['SSH_AUTH_SOCK'] } };
    return { options: ssh, words, local: false, named: true };
  }
  if (url.protocol !== 'tcp:') throw new UserError(`Docker context "${name}" (${meta}): Endpoints.docker.Host is ${host}; pibond reaches unix://, tcp:// and ssh:// engines`);
  const tls = join(configDir, 'contexts', 'tls', id, 'docker');
  const pem = (file: string) => (existsSync(join(tls, file)) ? readFileSync(join(tls, file)) : undefined);
  const [ca, cert, key] = [pem('ca.pem'), pem('cert.pem'), pem('key.pem')];
  const secure = Boolean(cert && key) || Boolean(ca);
  return {
    options: { protocol: secure ? 'https' : 'http', host: url.hostname, port: url.port || (secure ? 2376 : 2375), ca, cert, key },
    words,
    local: false,
    named: true,
  };
}
