import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { main } from '../../scripts/diff/cli.ts';
import { readComparedManifest } from '../../scripts/diff/inputs.ts';
import { type ComparedManifest, diffManifests, manifestsDiffer, renderManifestDiff } from '../../scripts/diff/manifests.ts';

const fixture = join(import.meta.dirname, 'fixtures', 'pibond-bookworm-arm64.manifest.json');

type FixtureManifest = ComparedManifest & { steps: unknown; rootfsCache: { key: string; fromCache?: boolean } };

async function manifest(): Promise<FixtureManifest> {
  return JSON.parse(await readFile(fixture, 'utf8')) as FixtureManifest;
}

describe('diffManifests', () => {
  it('finds nothing between a manifest and itself', async () => {
    const a = await manifest();
    expect(manifestsDiffer(diffManifests(a, a))).toBe(false);
    expect(renderManifestDiff(diffManifests(a, a))).toBe('');
  });

  it('leaves out how the build went: step timings and whether the root filesystem came from the cache', async () => {
    const a = await manifest();
    const b = await manifest();
    b.steps = [{ name: 'Bootstrap', seconds: 999 }];
    b.rootfsCache.fromCache = !a.rootfsCache.fromCache;
    expect(manifestsDiffer(diffManifests(a, b))).toBe(false);
  });

  it('names packages added, removed and changed, by name, old -> new', async () => {
    const a = await manifest();
    const b = await manifest();
    b.packages = b.packages.filter((p) => p.name !== 'ifenslave').map((p) => (p.name === 'bash' ? { ...p, version: '5.2.15-2+b14' } : p));
    b.packages.push({ name: 'vim-tiny', version: '2:9.0.1378-2', architecture: 'arm64' });
    const d = diffManifests(a, b);
    expect(d.packages).toEqual({
      added: [{ name: 'vim-tiny', to: '2:9.0.1378-2' }],
      removed: [{ name: 'ifenslave', from: '2.13' }],
      changed: [{ name: 'bash', from: '5.2.15-2+b13', to: '5.2.15-2+b14' }],
    });
    const text = renderManifestDiff(d);
    expect(text).toContain('Packages (1 added, 1 removed, 1 changed)');
    expect(text).toContain('~ bash 5.2.15-2+b13 -> 5.2.15-2+b14');
    expect(text).toContain('- ifenslave 2.13');
    expect(text).toContain('+ vim-tiny 2:9.0.1378-2');
  });

  it('matches a package installed for two architectures by name:architecture', async () => {
    const a = await manifest();
    const b = await manifest();
    a.packages.push({ name: 'libc6', version: '2.36-9+deb12u14', architecture: 'armhf' });
    b.packages.push({ name: 'libc6', version: '2.36-9+deb12u15', architecture: 'armhf' });
    expect(diffManifests(a, b).packages.changed).toEqual([{ name: 'libc6:armhf', from: '2.36-9+deb12u14', to: '2.36-9+deb12u15' }]);
  });

  it('names a definition field by its dotted path, and what the build started from', async () => {
    const a = await manifest();
    const b = await manifest();
    const value = b.definition.value as { bond: { primary: string }; uplink: { targets: string[] } };
    value.bond.primary = 'eth1';
    value.uplink.targets[2] = '9.9.9.10';
    b.sourceDateEpoch = 1_700_000_000;
    b.rootfsCache = { key: 'another' };
    const d = diffManifests(a, b);
    expect(d.definition).toEqual([
      { path: 'bond.primary', from: 'eth0', to: 'eth1' },
      { path: 'uplink.targets.2', from: '9.9.9.9', to: '9.9.9.10' },
    ]);
    expect(d.inputs.map((c) => c.path)).toEqual(['rootfsCache.key', 'sourceDateEpoch']);
    expect(renderManifestDiff(d)).toContain('bond.primary: "eth0" -> "eth1"');
  });

  it('compares a field a newer pibond adds to the manifest as one more input', async () => {
    const a = await manifest();
    const b = { ...(await manifest()), lock: { file: 'images/default.lock.json', sha256: 'ab' } };
    expect(diffManifests(a, b).inputs).toEqual([{ path: 'lock', from: undefined, to: { file: 'images/default.lock.json', sha256: 'ab' } }]);
    expect(renderManifestDiff(diffManifests(a, b))).toContain('lock: (absent) -> {"file":"images/default.lock.json","sha256":"ab"}');
  });

  it('names output files whose size or checksum differ, and sizes with their delta', async () => {
    const a = await manifest();
    const b = await manifest();
    const image = 'pibond-bookworm-arm64.img.zst';
    const before = a.files[image];
    if (!before) throw new Error(`the fixture lacks ${image}`);
    b.files[image] = { bytes: before.bytes + 10, sha256: 'f'.repeat(64) };
    b.sizes = { ...a.sizes, rootfsBytes: a.sizes.rootfsBytes + 2 * 1024 * 1024 };
    const d = diffManifests(a, b);
    expect(d.files.map((f) => f.file)).toEqual([image]);
    expect(d.sizes).toEqual([{ name: 'rootfsBytes', from: a.sizes.rootfsBytes, to: a.sizes.rootfsBytes + 2 * 1024 * 1024 }]);
    const text = renderManifestDiff(d);
    expect(text).toContain(`~ ${image}: ${before.bytes} -> ${before.bytes + 10} bytes, sha256 ${before.sha256?.slice(0, 12)} -> ffffffffffff`);
    expect(text).toMatch(/root filesystem: .* MiB -> .* MiB \(\+2\.0 MiB\)/);
    b.sizes.bootBytes -= 126;
    expect(renderManifestDiff(diffManifests(a, b))).toMatch(/boot partition files: .* \(-126 bytes\)/);
  });
});

describe('pibond diff on manifests', () => {
  let dir: string;
  let out: string;
  let err: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'pibond-diff-'));
    out = '';
    err = '';
    vi.spyOn(process.stdout, 'write').mockImplementation((chunk) => ((out += String(chunk)), true));
    vi.spyOn(process.stderr, 'write').mockImplementation((chunk) => ((err += String(chunk)), true));
  });
  afterEach(async () => {
    vi.restoreAllMocks();
    await rm(dir, { recursive: true, force: true });
  });

  async function write(name: string, value: unknown): Promise<string> {
    const file = join(dir, name);
    await writeFile(file, typeof value === 'string' ? value : JSON.stringify(value));
    return file;
  }

  it('exits 0 when the manifests agree and 1 when they differ, printing what differs', async () => {
    const a = await manifest();
    const b = await manifest();
    b.packages = b.packages.filter((p) => p.name !== 'apt');
    const fileA = await write('a.manifest.json', a);
    expect(await main([fileA, await write('same.manifest.json', a)])).toBe(0);
    expect(out).toContain('The manifests agree.');
    expect(await main([fileA, await write('b.manifest.json', b)])).toBe(1);
    expect(out).toContain('- apt 2.6.1');
  });

  it('exits 2 on bad usage and on bad input, naming the file and what was expected', async () => {
    const a = await write('a.manifest.json', await manifest());
    expect(await main([a])).toBe(2);
    expect(err).toContain('diff takes two files, got 1');
    expect(await main([a, a, '--limit', 'many'])).toBe(2);
    expect(await main([a, join(dir, 'missing.manifest.json')])).toBe(2);
    expect(err).toContain(`${join(dir, 'missing.manifest.json')}: no such file; expected a build manifest`);
    expect(await main([a, await write('notes.txt', 'hello')])).toBe(2);
    expect(err).toContain('notes.txt: expected a build manifest (<name>.manifest.json) or an image');
    expect(await main([a, await write('broken.manifest.json', { name: 'x', definition: { value: {} }, files: {}, sizes: {} })])).toBe(2);
    expect(err).toContain('broken.manifest.json is not a build manifest (pibond build writes <name>.manifest.json): field "sizes.rootfsBytes"');
  });

  it('will not set a manifest against an image that has none beside it', async () => {
    const a = await write('a.manifest.json', await manifest());
    const image = await write('lonely.img', 'not really an image');
    expect(await main([a, image])).toBe(2);
    expect(err).toContain(`${image} has no manifest beside it (${join(dir, 'lonely.manifest.json')})`);
  });

  it('reads the manifest beside an image', async () => {
    const image = await write('x.img.zst', '');
    await write('x.manifest.json', await manifest());
    await expect(readComparedManifest(join(dir, 'x.manifest.json'))).resolves.toMatchObject({ name: 'pibond-bookworm-arm64' });
    expect(image).toMatch(/x\.img\.zst$/);
  });
});
