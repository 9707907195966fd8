/**
 * The bundle as the device runs it: render() output written to disk and started with plain `node`,
 * no TypeScript loader, no node_modules next to it.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { runInNewContext, Script } from 'node:vm';
import { afterAll, beforeAll, describe, expect, it, onTestFinished } from 'vitest';
import { render, type OverlayFile } from '../../overlays/20-bond-status/render.ts';
import type { FailoverEvent } from '../../overlays/20-bond-status/src/failover.ts';
import type { StatusDocument } from '../../overlays/20-bond-status/src/status.ts';
import { definitionSchema } from '../../scripts/lib/definition.ts';
import { uplinksFile } from '../../overlays/20-bond-status/src/uplinks.ts';
import { json, request } from './_http-client.ts';
import { eth0, eth1, healthyBond, makeFakeRoot, makeFifo, waitFor, writeBonds } from './fake-root.ts';

const recorded = join(import.meta.dirname, 'fixtures/recorded');
const definition = definitionSchema.parse({ name: 'test', base: {}, bond: { name: 'bond0' }, status_service: { listen: '127.0.0.1', port: 9090 } });

let files: OverlayFile[];
let dir: string;
let bundle: string;

beforeAll(async () => {
  files = await render(definition);
  // Outside the repository, so nothing can be resolved from its node_modules.
  dir = mkdtempSync(join(tmpdir(), 'bond-status-bundle-'));
  bundle = join(dir, 'bond-status.js');
  writeFileSync(bundle, fileAt('usr/lib/pibond/bond-status.js').content);
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function fileAt(path: string): OverlayFile {
  const file = files.find((f) => f.path === path);
  if (!file) throw new Error(`render() made no ${path}`);
  return file;
}

interface Running {
  child: ChildProcessWithoutNullStreams;
  url: string;
  output: () => string;
}

async function startBundle(root: string): Promise<Running> {
  const child = spawn(process.execPath, [bundle, 'serve', '--root', root, '--listen', '127.0.0.1', '--port', '0'], { cwd: dir });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  onTestFinished(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  const url = await waitFor('the listening line', () => /listening on (http:\/\/\S+),/.exec(output)?.[1], 5000);
  return { child, url, output: () => output };
}

function run(args: string[]): Promise<{ code: number | null; stdout: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [bundle, ...args], { cwd: dir });
    let stdout = '';
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout }));
  });
}

describe('render()', () => {
  it('makes the bundle and the configuration from the definition', () => {
    expect(files.map((f) => [f.path, f.mode])).toEqual([
      ['usr/lib/pibond/bond-status.js', 0o644],
      ['etc/pibond/bond-status.json', 0o644],
    ]);
    expect(JSON.parse(String(fileAt('etc/pibond/bond-status.json').content))).toEqual({ listen: '127.0.0.1', port: 9090, bonds: ['bond0'] });
  });

  it('is deterministic and holds no path of the build machine', async () => {
    const again = await render(definition);
    expect(Buffer.compare(Buffer.from(again[0]?.content ?? ''), Buffer.from(fileAt('usr/lib/pibond/bond-status.js').content))).toBe(0);
    expect(String(fileAt('usr/lib/pibond/bond-status.js').content)).not.toContain(import.meta.dirname.split('/test/')[0] ?? '/');
  });

  it('bundles only node built-ins', () => {
    const requires = [...String(fileAt('usr/lib/pibond/bond-status.js').content).matchAll(/require\("([^"]+)"\)/g)].map((m) => m[1]);
    expect(requires.length).toBeGreaterThan(0);
    for (const name of requires) expect(name).toMatch(/^node:/);
  });
});

describe('the bundle under plain node', () => {
  it('serves the API, sees a failover played on the files, and stops cleanly on SIGTERM', async () => {
    const root = makeFakeRoot([healthyBond]);
    const service = await startBundle(root);
    expect((await json<StatusDocument>(`${service.url}/api/status`)).bonds[0]?.active_slave).toBe('eth0');

    writeBonds(root, [{ ...healthyBond, active: 'eth1', slaves: [{ ...eth0, mii: 'down', failures: 1 }, eth1] }]);
    const events = await waitFor('the failover in /api/events', async () => {
      const list = (await json<{ events: FailoverEvent[] }>(`${service.url}/api/events`)).events;
      return list.length > 0 ? list : undefined;
    });
    expect(events.map((e) => [e.bond, e.from, e.to, e.cause])).toEqual([['bond0', 'eth0', 'eth1', 'link_down']]);
    // The journal line, with the warning priority journald reads from the prefix.
    await waitFor('the journal line', () => (service.output().includes('<4>bond0: failover from eth0 to eth1 (link_down)\n') ? true : undefined));

    const exited = new Promise<number | null>((resolve) => service.child.on('exit', (code) => resolve(code)));
    service.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(service.output()).toContain('<6>stopping\n');
  });

  it("shows pibond-uplink's report, and the page's script, with the words it shares with the terminal, runs as bundled", async () => {
    const root = makeFakeRoot([{ ...healthyBond, primary: 'eth1', active: 'eth1' }]);
    const report = readFileSync(join(import.meta.dirname, 'fixtures/uplinks/primary-line-down.json'), 'utf8');
    mkdirSync(dirname(join(root, uplinksFile)), { recursive: true });
    writeFileSync(join(root, uplinksFile), report);
    const service = await startBundle(root);
    const bond = (await json<StatusDocument>(`${service.url}/api/status`)).bonds[0];
    expect(bond?.uplinks).toEqual(JSON.parse(report));

    const script = /<script>\n([\s\S]*)<\/script>/.exec((await request(`${service.url}/`)).body)?.[1] ?? '';
    expect(() => new Script(script)).not.toThrow();
    const words = /^const uplinkCells = [\s\S]*?^const explainActiveSlave = [\s\S]*?;$(?=\nconst show)/m.exec(script)?.[0];
    expect(words).toBeDefined();
    const said = runInNewContext(`${words ?? ''}; [uplinkCells(bond.uplinks.uplinks[0]), explainActiveSlave(bond)]`, { bond }) as [string[], string];
    expect(said).toEqual([
      ['eth0', 'DOWN (the router answers, the internet does not)', '0.84 ms', '0 of 3 answered', ''],
      'eth1 is active: the uplink of the primary, eth0, is down (eth0: 3 rounds without an answer from 1.1.1.1, 8.8.8.8, 9.9.9.9)',
    ]);
  });

  it('starts and answers with a FIFO where the bond report should be, reporting it instead of waiting on it', async () => {
    const root = makeFakeRoot([healthyBond]);
    makeFifo(root, 'proc/net/bonding/bond0');
    const service = await startBundle(root);
    const status = await json<StatusDocument>(`${service.url}/api/status`);
    expect(status.bonds.map((b) => [b.name, b.error])).toEqual([['bond0', '/proc/net/bonding/bond0: refused: not a regular file']]);
    await waitFor('the journal line', () => (service.output().includes('<3>/proc/net/bonding/bond0: refused: not a regular file\n') ? true : undefined));
  });

  it('status prints the bonds from the files, and the history from the running service', async () => {
    const root = makeFakeRoot([healthyBond]);
    const service = await startBundle(root);
    writeBonds(root, [{ ...healthyBond, active: 'eth1', slaves: [{ ...eth0, mii: 'down', speed: null, duplex: null, failures: 1 }, eth1] }]);
    await waitFor('the failover', async () => ((await json<{ events: unknown[] }>(`${service.url}/api/events`)).events.length > 0 ? true : undefined));

    const port = new URL(service.url).port;
    const config = join(dir, 'config.json');
    writeFileSync(config, JSON.stringify({ listen: '127.0.0.1', port: Number(port), bonds: ['bond0'] }));
    const { code, stdout } = await run(['status', '--root', root, '--config', config]);
    expect(code).toBe(0);
    expect(stdout).toContain('bond0: active-backup, MII up, MII polled every 100 ms');
    expect(stdout).toContain('active slave: eth1    primary: eth0 (reselect always)');
    expect(stdout).toMatch(/failovers since the service started: 1, last \d+ s ago: eth0 -> eth1 \(link_down\)/);
    expect(stdout).toMatch(/^ {5}eth0 +backup +down +no +unknown +unknown +1 +52:54:00:00:00:01$/m);
    expect(stdout).toMatch(/^ {2}\* +eth1 +active +up +yes +100 Mbps +full +0 +52:54:00:00:00:02$/m);
    expect(stdout).toMatch(/eth0 -> eth1 {2}link_down$/m);
  });

  it('status still reads the bonds when the service is down, says so, and exits 1 for a missing bond', async () => {
    const config = join(dir, 'nobody.json');
    // Port 9 (discard) on loopback: nothing listens there in a test environment.
    writeFileSync(config, JSON.stringify({ listen: '127.0.0.1', port: 9, bonds: ['bond0', 'bond7'] }));
    const { code, stdout } = await run(['status', '--root', recorded, '--config', config]);
    expect(code).toBe(1);
    expect(stdout).toContain('active slave: eth0');
    expect(stdout).toContain('bond7: ERROR bond7 does not exist');
    expect(stdout).toContain('Failover history: the service at http://127.0.0.1:9 did not answer');
  });

  it('refuses a bad configuration with one line and exit code 2', async () => {
    const config = join(dir, 'bad.json');
    writeFileSync(config, JSON.stringify({ listen: 'everywhere', port: 8080 }));
    const child = spawn(process.execPath, [bundle, 'serve', '--config', config], { cwd: dir });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code).toBe(2);
    expect(stderr).toBe(`bond-status: ${config}: listen must be an IP address, got "everywhere"\n`);
  });
});
