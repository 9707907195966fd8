/**
 * Build benchmark: a cold build (empty caches: a fresh cache volume), then a rebuild after
 * changing only an overlay, with the image's sizes. Goals: cold <= 10 min, rebuild <= 60 s.
 * The builder image is made first (once per recipe) and not counted in either figure.
 */
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilderImage } from '../builder/builder-image.ts';
import { build, defaultOverlaysDir } from '../image/index.ts';
import { mappedBytes, parseBmap, usedBlocks } from '../lib/bmap.ts';
import { loadDefinition } from '../lib/definition.ts';
import { ensureDockerEngine } from '../lib/host.ts';
import { Progress } from '../lib/log.ts';
import { readManifest, readTimings } from '../lib/manifest.ts';
import { DEFAULT_SOURCE_DATE_EPOCH } from '../lib/tar.ts';

const definitionFile = join(import.meta.dirname, '..', '..', 'images', 'default.yaml');

export async function benchBuild(): Promise<Record<string, number | string>> {
  const def = await loadDefinition(definitionFile);
  const docker = await ensureDockerEngine(() => {});
  await ensureBuilderImage(docker, def.mirror, () => {}, (m) => process.stderr.write(`${m}\n`));
  const cacheVolume = `pibond-bench-${process.pid}`;
  const work = await mkdtemp(join(tmpdir(), 'pibond-bench-'));
  const extraOverlays = join(work, 'overlays');
  const options = {
    definitionFile,
    outDir: join(work, 'out'),
    cache: true,
    cacheVolume,
    overlaysDirs: [defaultOverlaysDir, extraOverlays],
    sourceDateEpoch: DEFAULT_SOURCE_DATE_EPOCH,
  };
  try {
    await mkdir(extraOverlays);
    await mkdir(options.outDir);
    const progress = () => new Progress({ live: false, verbose: false });

    let started = Date.now();
    await build(options, progress());
    const coldSeconds = (Date.now() - started) / 1000;

    await mkdir(join(extraOverlays, '90-bench', 'rootfs', 'etc'), { recursive: true });
    await writeFile(join(extraOverlays, '90-bench', 'rootfs', 'etc', 'pibond-bench'), `${Date.now()}\n`);
    started = Date.now();
    const rebuild = await build(options, progress());
    const rebuildSeconds = (Date.now() - started) / 1000;
    if (!rebuild.rootfsFromCache) throw new Error('the rebuild did not reuse the cached root filesystem');

    const manifest = await readManifest(join(options.outDir, `${def.name}.manifest.json`));
    const timings = await readTimings(join(options.outDir, `${def.name}.timings.json`));
    const files = manifest.files;
    const mib = (bytes: number) => Math.round((bytes / 1024 ** 2) * 10) / 10;
    const compressedName = Object.keys(files).find((f) => /\.img\.(zst|xz)$/.test(f));
    const image = join(options.outDir, `${def.name}.img`);
    const bmapFile = `${image}.bmap`;
    const bmap = parseBmap(await readFile(bmapFile, 'utf8'), bmapFile);
    return {
      'build cold (s)': coldSeconds,
      'build rebuild after overlay change (s)': rebuildSeconds,
      'image raw (MiB)': mib(files[`${def.name}.img`]?.bytes ?? 0),
      'image compressed (MiB)': compressedName ? mib(files[compressedName]?.bytes ?? 0) : 'none',
      'image mapped by the .bmap (MiB)': mib(mappedBytes(bmap)),
      'image used by its file systems (MiB)': mib((await usedBlocks(image)) * bmap.blockSize),
      'block map (s)': timings.steps.find((s) => s.name === 'Block map')?.seconds ?? 'none',
      'root filesystem (MiB)': mib(manifest.sizes.rootfsBytes),
      'kernel modules (MiB)': mib(manifest.sizes.kernelModulesBytes),
      '/boot (MiB)': mib(manifest.sizes.bootBytes),
      'rebuild steps': rebuild.timings.map((t) => `${t.name} ${t.seconds.toFixed(1)}s`).join(', '),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
    await docker.getVolume(cacheVolume).remove().catch(() => {});
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.table(await benchBuild());
}
