/**
 * Reproducible rebuilds, end to end, and builds on any Docker engine. The default definition is
 * built on a second Docker engine (its own data root, reached over TCP: another machine, as far as
 * pibond can tell) from an empty cache volume, locked to the package set of the suite's own build
 * (so this also proves a locked build installs exactly that list). Then again on that engine, with
 * the root filesystem from its cache and the root file system's base image made anew from that
 * restored tree. The two give the same image, compressed image, block map, Imager entry and
 * manifest, byte for byte; and the same image, compressed image, block map and Imager entry as the
 * suite's unlocked build on this machine's engine. A difference is reported by `pibond diff`,
 * which names the first differing file inside the image.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectDocker } from '../../scripts/lib/docker.ts';
import { readManifest, readTimings } from '../../scripts/lib/manifest.ts';
import { inBuilderWithVolume } from './_builder.ts';
import { runPibond } from './_pibond.ts';
import { startSecondEngine } from './_second-engine.ts';

const name = 'pibond-bookworm-arm64';
/** The outputs that must be identical: what a user flashes, downloads and compares. */
const outputs = [`${name}.img`, `${name}.img.zst`, `${name}.img.bmap`, `${name}.rpi-imager.json`];
const manifest = `${name}.manifest.json`;

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

/** Each compared output's sha256, by file name. */
async function fingerprints(dir: string, files: readonly string[]): Promise<Record<string, string>> {
  const sums: Record<string, string> = {};
  for (const file of files) sums[file] = await sha256(join(dir, file));
  return sums;
}

/** Fails with what `pibond diff` says of the two builds when their outputs differ. */
async function expectSameBuild(a: string, b: string, what: string, files: readonly string[]): Promise<void> {
  const [left, right] = [await fingerprints(a, files), await fingerprints(b, files)];
  if (JSON.stringify(left) === JSON.stringify(right)) return;
  const manifests = await runPibond(['diff', join(a, `${name}.manifest.json`), join(b, `${name}.manifest.json`)]);
  const images = await runPibond(['diff', join(a, `${name}.img`), join(b, `${name}.img`)]);
  expect.fail(
    `${what}: the outputs differ\n${JSON.stringify({ [a]: left, [b]: right }, null, 2)}\n` +
      `pibond diff of the manifests:\n${manifests.stdout}${manifests.stderr}\npibond diff of the images:\n${images.stdout}${images.stderr}`,
  );
}

export function describeReproducible(suiteOutDir: string): void {
  describe('reproducible builds on another Docker engine (Docker)', { tags: ['slow'] }, () => {
    it('gives the same bytes on a second engine, cold and from its cache, as the suite build here', async () => {
      const engine = await startSecondEngine();
      const volume = `pibond-repro-test-${process.pid}`;
      const cold = await mkdtemp(join(tmpdir(), 'pibond-cold-'));
      const cached = await mkdtemp(join(tmpdir(), 'pibond-cached-'));
      try {
        // pibond as a user with a remote engine runs it: DOCKER_HOST names the engine, and nothing
        // of this machine's files reaches it but through the API.
        const onEngine2 = { DOCKER_HOST: engine.host };
        const locked = ['--locked', join(suiteOutDir, manifest), '--cache-volume', volume];
        const first = await runPibond(['build', 'images/default.yaml', '--out', cold, ...locked], onEngine2);
        expect(first.code, `${first.stderr}\n(the second engine's log: ${engine.log})`).toBe(0);
        const said = first.stdout + first.stderr;
        expect(said).toContain(`Docker engine: DOCKER_HOST=${engine.host}, amd64, elsewhere (not a local socket): the outputs come back through its API`);
        expect(await readFile(join(cold, `${name}.build.log`), 'utf8')).toMatch(/fetched the outputs from the engine: \d+\.\d MB of data/);
        expect((await readTimings(join(cold, `${name}.timings.json`))).rootfsFromCache).toBe(false);
        // The build ran there: its cache volume is the second engine's, not this machine's.
        expect((await engine.docker.listVolumes()).Volumes.map((v) => v.Name)).toContain(volume);
        expect(((await (await connectDocker()).listVolumes()).Volumes ?? []).map((v) => v.Name)).not.toContain(volume);
        const [ours, suite] = [await readManifest(join(cold, manifest)), await readManifest(join(suiteOutDir, manifest))];
        expect(ours.packages).toEqual(suite.packages);

        // The second build restores the root filesystem from the volume's cache; without the base
        // image the first build left there, it makes that anew from the restored tree.
        await inBuilderWithVolume(volume, '/cache', 'rm -f /cache/root-base/*.ext4', engine.docker);
        const second = await runPibond(['build', 'images/default.yaml', '--out', cached, ...locked], onEngine2);
        expect(second.code, second.stderr).toBe(0);
        expect((await readTimings(join(cached, `${name}.timings.json`))).rootfsFromCache).toBe(true);
        expect(second.stdout + second.stderr).toContain("Made the root file system's base image");
        await expectSameBuild(cold, cached, 'a cold build and a build from the cached root filesystem', [...outputs, manifest]);

        // And the suite's own build: this machine's engine, another bootstrap, unlocked. Only the
        // manifest may differ (it records the lock, and the cache key that includes it).
        await expectSameBuild(cold, suiteOutDir, 'a locked build on the second engine and the unlocked suite build on this one', outputs);
      } finally {
        await rm(cold, { recursive: true, force: true });
        await rm(cached, { recursive: true, force: true });
        await engine.docker.getVolume(volume).remove().catch(() => {});
        await engine.stop();
      }
    });
  });
}
