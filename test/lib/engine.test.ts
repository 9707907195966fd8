import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { debianArch, engineEndpoint, needsEmulation } from '../../scripts/lib/engine.ts';

let home: string;
beforeEach(async () => {
  home = await mkdtemp(join(tmpdir(), 'pibond-engine-'));
});
afterEach(async () => {
  await rm(home, { recursive: true, force: true });
});

/** A Docker context as `docker context create NAME --docker host=HOST` stores it, with TLS files if given. */
async function context(name: string, host: string, tls: string[] = []): Promise<void> {
  const id = createHash('sha256').update(name).digest('hex');
  await mkdir(join(home, '.docker', 'contexts', 'meta', id), { recursive: true });
  await writeFile(join(home, '.docker', 'contexts', 'meta', id, 'meta.json'), JSON.stringify({ Name: name, Endpoints: { docker: { Host: host, SkipTLSVerify: false } } }));
  if (tls.length) await mkdir(join(home, '.docker', 'contexts', 'tls', id, 'docker'), { recursive: true });
  for (const file of tls) await writeFile(join(home, '.docker', 'contexts', 'tls', id, 'docker', file), `${file}\n`);
}

async function useContext(name: string): Promise<void> {
  await mkdir(join(home, '.docker'), { recursive: true });
  await writeFile(join(home, '.docker', 'config.json'), JSON.stringify({ auths: {}, currentContext: name }));
}

describe('engineEndpoint', () => {
  it('is the local socket when nothing names an engine, and pibond may start that one', () => {
    expect(engineEndpoint({}, home)).toEqual({ options: undefined, words: 'the local socket /var/run/docker.sock', local: true, named: false });
  });

  it('takes DOCKER_HOST first (docker-modem reads it); only a unix socket is local', async () => {
    await useContext('elsewhere');
    expect(engineEndpoint({ DOCKER_HOST: 'unix:///run/user/1000/docker.sock' }, home)).toMatchObject({ local: true, named: true, options: undefined });
    expect(engineEndpoint({ DOCKER_HOST: 'tcp://127.0.0.1:2375' }, home)).toMatchObject({ local: false, named: true, words: 'DOCKER_HOST=tcp://127.0.0.1:2375' });
    expect(engineEndpoint({ DOCKER_HOST: 'ssh://me@pi5' }, home)).toMatchObject({ local: false });
  });

  it("follows the current context of the docker CLI's config, and DOCKER_CONTEXT over it", async () => {
    await context('build-box', 'tcp://10.0.0.5:2376', ['ca.pem', 'cert.pem', 'key.pem']);
    await context('pi5', 'ssh://me@pi5.lan:2222');
    await context('rootless', 'unix:///run/user/1000/docker.sock');
    await useContext('build-box');
    const tcp = engineEndpoint({}, home);
    expect(tcp).toMatchObject({ local: false, named: true, words: 'the Docker context "build-box" (tcp://10.0.0.5:2376)' });
    expect(tcp.options).toMatchObject({ protocol: 'https', host: '10.0.0.5', port: '2376', ca: Buffer.from('ca.pem\n'), key: Buffer.from('key.pem\n') });
    expect(engineEndpoint({ DOCKER_CONTEXT: 'pi5' }, home).options).toMatchObject({ protocol: 'ssh', host: 'pi5.lan', port: '2222', username: 'me' });
    expect(engineEndpoint({ DOCKER_CONTEXT: 'rootless' }, home)).toMatchObject({ local: true, options: { socketPath: '/run/user/1000/docker.sock' } });
    expect(engineEndpoint({ DOCKER_CONTEXT: 'default' }, home)).toMatchObject({ local: true, named: false });
  });

  it('says which context is missing or broken, and where it looked', async () => {
    await useContext('gone');
    expect(() => engineEndpoint({}, home)).toThrow(/the current Docker context "gone" .*config\.json\) names a context that does not exist: no .*meta\.json/);
    await context('odd', 'fd://3');
    expect(() => engineEndpoint({ DOCKER_CONTEXT: 'odd' }, home)).toThrow(/Endpoints\.docker\.Host is fd:\/\/3; pibond reaches unix:\/\/, tcp:\/\/ and ssh:\/\/ engines/);
    await writeFile(join(home, '.docker', 'config.json'), '{not json');
    expect(() => engineEndpoint({}, home)).toThrow(/cannot read the Docker client's configuration .*config\.json/);
  });
});

describe('architectures', () => {
  it("names the engine's CPU as Debian does, and refuses one pibond cannot build on", () => {
    expect(['x86_64', 'aarch64', 'armv7l'].map(debianArch)).toEqual(['amd64', 'arm64', 'armhf']);
    expect(() => debianArch('s390x')).toThrow('the Docker engine runs on s390x; pibond builds on amd64, arm64 or armhf engines');
  });

  it('emulates only what the engine cannot run: nothing for arm64 on arm64', () => {
    expect(needsEmulation('amd64', 'arm64')).toBe(true);
    expect(needsEmulation('arm64', 'arm64')).toBe(false);
    expect(needsEmulation('arm64', 'armhf')).toBe(false);
    expect(needsEmulation('armhf', 'arm64')).toBe(true);
  });
});
