/**
 * Laying pibond onto a stock image (base.image), Node runtime included: issue 11's goal is <= 60 s
 * with no package downloads at build time. The bases are the look-alike stock images `npm test`
 * builds (out/e2e-stock/lookalikes/*.img.zst); each is laid twice: first compressing every frame
 * of the .img.zst, as a new image's first lay does, then as a rebuild. The builder image and the Node runtime's one download are made first and not counted.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pipeline } from 'node:stream/promises';
import { ensureBuilderImage } from '../builder/builder-image.ts';
import { build, defaultCacheVolume, defaultOverlaysDir } from '../image/index.ts';
import { ensureDockerEngine } from '../lib/host.ts';
import { Progress } from '../lib/log.ts';
import { readTimings } from '../lib/manifest.ts';
import { defaultRuntimeCacheDir, ensureNodeRuntime } from '../lib/node-runtime.ts';
import { DEFAULT_SOURCE_DATE_EPOCH } from '../lib/tar.ts';

const lookalikes = join(import.meta.dirname, '..', '..', 'out', 'e2e-stock', 'lookalikes');
/** Each look-alike's stack and admin, as its fixture definition (test/fixtures/stock) sets them. */
const bases: Record<string, { stack: string; admin: string }> = {
  raspios: { stack: 'networkmanager', admin: 'pi' },
  ubuntu: { stack: 'netplan', admin: 'ubuntu' },
};

export async function benchLay(): Promise<Record<string, number | string>> {
  const files = (await readdir(lookalikes).catch(() => [] as string[])).filter((file) => file.endsWith('.img.zst'));
  if (files.length === 0) return { skipped: `no look-alike stock images in ${lookalikes}: npm test builds them` };
  const docker = await ensureDockerEngine(() => {});
  await ensureBuilderImage(docker, 'http://deb.debian.org/debian', () => {}, (m) => process.stderr.write(`${m}\n`));
  const runtime = await ensureNodeRuntime({ cacheDir: defaultRuntimeCacheDir() });
  const figures: Record<string, number | string> = { 'Node runtime (MiB, laid where the image has no Node)': runtime.bytes / 1024 ** 2 };
  const work = await mkdtemp(join(tmpdir(), 'pibond-bench-lay-'));
  try {
    for (const file of files.sort()) {
      const kind = Object.keys(bases).find((name) => file.includes(name));
      const base = kind === undefined ? undefined : bases[kind];
      if (!kind || !base) continue;
      const definitionFile = join(work, `${kind}.yaml`);
      const image = join(lookalikes, file);
      await writeFile(definitionFile, `name: bench-${kind}\nbase: {image: ${image}, sha256: ${await sha256(image)}}\nadmin: {name: ${base.admin}}\nnetwork: {stack: ${base.stack}}\n`);
      // The first lay compresses every frame (--no-cache: the frames of an image laid before are
      // not reused), as a new stock image's first lay would; the second is a rebuild.
      for (const run of ['first', 'again']) {
        const options = {
          definitionFile,
          outDir: join(work, 'out'),
          cache: run === 'again',
          cacheVolume: defaultCacheVolume,
          overlaysDirs: [defaultOverlaysDir],
          sourceDateEpoch: DEFAULT_SOURCE_DATE_EPOCH,
        };
        const started = Date.now();
        await build(options, new Progress({ live: false, verbose: false }));
        const seconds = (Date.now() - started) / 1000;
        figures[`${kind}: laid, whole build (s, ${run}; goal <= 60)`] = seconds;
        if (run === 'first') {
          const timings = await readTimings(join(options.outDir, `bench-${kind}.timings.json`));
          for (const step of timings.steps) figures[`${kind}:   ${step.name} (s)`] = step.seconds;
        }
      }
    }
  } finally {
    await rm(work, { recursive: true, force: true });
  }
  return figures;
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  await pipeline(createReadStream(file), hash);
  return hash.digest('hex');
}
