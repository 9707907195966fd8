/**
 * Build benchmark: a cold build (empty caches: a fresh cache volume), a rebuild after changing only
 * an overlay, and one after changing only the host name, with the image's sizes and where the cold
 * build's minutes went (mmdebstrap's phases, read from the build log's timestamps). Issue 13's
 * goals: cold <= 4 min, overlay rebuild <= 15 s, host name rebuild <= 10 s, .img.zst <= 150 MB.
 * The builder image is made first (once per recipe) and not counted in any figure.
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
    const coldPhases = bootstrapPhases(await readFile(join(options.outDir, `${def.name}.build.log`), 'utf8'));
    const coldTimings = await readTimings(join(options.outDir, `${def.name}.timings.json`));

    await mkdir(join(extraOverlays, '90-bench', 'rootfs', 'etc'), { recursive: true });
    await writeFile(join(extraOverlays, '90-bench', 'rootfs', 'etc', 'pibond-bench'), `${Date.now()}\n`);
    started = Date.now();
    const rebuild = await build(options, progress());
    const rebuildSeconds = (Date.now() - started) / 1000;
    if (!rebuild.rootfsFromCache) throw new Error('the rebuild did not reuse the cached root filesystem');

    // The same definition under another host name (the image keeps its name, so its outputs too).
    const renamedFile = join(work, 'renamed.yaml');
    const original = await readFile(definitionFile, 'utf8');
    if (!/^hostname: \S+$/m.test(original)) throw new Error(`${definitionFile} has no top-level hostname line to change`);
    await writeFile(renamedFile, original.replace(/^hostname: \S+$/m, 'hostname: bench-renamed'));
    started = Date.now();
    const renamed = await build({ ...options, definitionFile: renamedFile }, progress());
    const renamedSeconds = (Date.now() - started) / 1000;

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
      'cold: root filesystem (s)': coldTimings.steps.find((step) => step.name === 'Root filesystem')?.seconds ?? 'none',
      ...Object.fromEntries(coldPhases.map((phase) => [`cold: ${phase.name} (s)`, phase.seconds])),
      'build rebuild after overlay change (s)': rebuildSeconds,
      'build rebuild after host name change (s)': renamedSeconds,
      'image raw (MiB)': mib(files[`${def.name}.img`]?.bytes ?? 0),
      'image compressed (MB)': compressedName ? Math.round((files[compressedName]?.bytes ?? 0) / 1e5) / 10 : 'none',
      'image mapped by the .bmap (MiB)': mib(mappedBytes(bmap)),
      'image used by its file systems (MiB)': mib((await usedBlocks(image)) * bmap.blockSize),
      'block map (s)': timings.steps.find((s) => s.name === 'Block map')?.seconds ?? 'none',
      'root filesystem (MiB)': mib(manifest.sizes.rootfsBytes),
      'kernel modules (MiB)': mib(manifest.sizes.kernelModulesBytes),
      '/boot (MiB)': mib(manifest.sizes.bootBytes),
      'rebuild steps': rebuild.timings.map((t) => `${t.name} ${t.seconds.toFixed(1)}s`).join(', '),
      'host name rebuild steps': renamed.timings.map((t) => `${t.name} ${t.seconds.toFixed(1)}s`).join(', '),
    };
  } finally {
    await rm(work, { recursive: true, force: true });
    await docker.getVolume(cacheVolume).remove().catch(() => {});
  }
}

/**
 * mmdebstrap's phases in a cold build ("I: downloading packages with apt...", "I: installing
 * remaining packages inside the chroot...", and the "I: pibond hook, ..." lines bootstrap-rootfs's
 * slow hooks print), each with its seconds, read from the build log, whose
 * output lines carry the seconds since the build started ("[ 123.4] line"). A phase ends where the
 * next begins, the last where the root filesystem step's output ends.
 */
export function bootstrapPhases(log: string): { name: string; seconds: number }[] {
  const step = log.split('\n## Root filesystem\n')[1]?.split('\n## ')[0] ?? '';
  const marks: { name: string; at: number }[] = [];
  let last = 0;
  for (const line of step.split('\n')) {
    const stamped = /^\[\s*(\d+(?:\.\d+)?)\] (.*)$/.exec(line);
    if (!stamped) continue;
    last = Number(stamped[1]);
    const phase = /^I: ([a-z][^.:]*?)(?:\.\.\.|:|$)/.exec(stamped[2] ?? '');
    if (phase?.[1] && /^(running|downloading|extracting|installing|cleaning|creating tarball|pibond hook)/.test(phase[1])) marks.push({ name: phase[1], at: last });
  }
  // A phase that recurs (one "running --customize-hook" per hook) is one row, its times summed.
  const phases = new Map<string, number>();
  marks.forEach((mark, i) => phases.set(mark.name, (phases.get(mark.name) ?? 0) + (marks[i + 1]?.at ?? last) - mark.at));
  return [...phases].map(([name, seconds]) => ({ name: `mmdebstrap: ${name}`, seconds: Math.round(seconds * 10) / 10 }));
}

if (import.meta.url === `file://${process.argv[1]}`) {
  console.table(await benchBuild());
}
