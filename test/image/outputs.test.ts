/**
 * Step 80 against the fake Docker engine: what it asks of outputs.mjs about the zstd frame cache,
 * and where the frame counts go (the timings, never the manifest, which must stay the same bytes
 * from build to build). outputs.mjs itself runs in the builder image: outputs.e2e.ts.
 */
import type { EngineInfo } from '../../scripts/lib/engine.ts';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type BuildContext, paths } from '../../scripts/image/context.ts';
import { container } from '../../scripts/image/steps/20-container.ts';
import { type OutputsReport, outputs, zstdFrameCache } from '../../scripts/image/steps/80-outputs.ts';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { diskLayout } from '../../scripts/lib/layout.ts';
import { Progress } from '../../scripts/lib/log.ts';
import { readTimings } from '../../scripts/lib/manifest.ts';
import { FakeEngine } from '../lib/_fake-engine.ts';

/** The engine of this machine (a unix socket), on amd64: staging bind-mounted, arm64 emulated. */
const localEngine: EngineInfo = { endpoint: { options: undefined, words: 'the local socket /var/run/docker.sock', local: true, named: false }, arch: 'amd64' };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pibond-outputs-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

const report: OutputsReport = {
  compressSeconds: 1.5,
  bmapSeconds: 0.5,
  checksums: { 't.img': 'a'.repeat(64), 't.img.zst': 'b'.repeat(64), 't.img.xz': 'b'.repeat(64) },
  packages: [{ name: 'bash', version: '5.2', architecture: 'arm64' }],
  sizes: { rootfsBytes: 3, kernelModulesBytes: 2, bootBytes: 1 },
};

/** Runs step 80 on a fake engine whose outputs.mjs prints `printed`; returns its argument and the staging directory. */
async function runOutputs(opts: { compression: 'zstd' | 'xz'; cache: boolean; printed: object }) {
  const argumentsSeen: unknown[] = [];
  const engine = new FakeEngine({
    container: () => ({}),
    exec: (cmd) => {
      if (cmd[0] !== `${paths.tools}/outputs.mjs`) return {};
      argumentsSeen.push(JSON.parse(cmd[1]!));
      return { output: [['stdout', `${JSON.stringify(opts.printed)}\n`]] };
    },
  });
  const def = parseDefinition(`name: t\ndisk: {compression: ${opts.compression}}\nadmin: {name: pi, authorized_keys: ["ssh-ed25519 AAAA me@laptop"]}\n`, 't.yaml');
  const stagingDir = join(dir, 'out', '.staging');
  await mkdir(stagingDir, { recursive: true });
  const ctx: BuildContext = {
    def,
    definitionHash: 'hash',
    options: { definitionFile: 't.yaml', outDir: join(dir, 'out'), cache: opts.cache, cacheVolume: 'pibond-cache', overlaysDirs: [], sourceDateEpoch: 1704067200 },
    layout: diskLayout(def),
    progress: new Progress({ live: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WriteStream }),
    stagingDir,
    docker: engine.docker,
    builderImage: 'pibond-builder:test',
    engine: localEngine,
  };
  await container.run(ctx);
  ctx.card = { file: 'pibond-card.yaml', offset: 4_210_688, bytes: 65536 };
  for (const file of ['t.img', `t.img.${opts.compression === 'zstd' ? 'zst' : 'xz'}`, 't.img.sha256']) await writeFile(join(stagingDir, file), file);
  await writeFile(join(stagingDir, '.bmap-ranges.json'), JSON.stringify({ imageSize: 5, blockSize: 4096, ranges: [{ first: 0, last: 0, sha256: 'c'.repeat(64) }] }));
  await outputs.run(ctx);
  return { argument: argumentsSeen[0], stagingDir };
}

describe('80-outputs and the zstd frame cache', () => {
  it('hands outputs.mjs the frame cache in the cache volume, reused unless --no-cache', async () => {
    for (const cache of [true, false]) {
      const { argument } = await runOutputs({ compression: 'zstd', cache, printed: report });
      expect(argument).toMatchObject({ compression: 'zstd', frames: { dir: zstdFrameCache, reuse: cache } });
      expect(zstdFrameCache).toBe(`${paths.cache}/zstd-frames`);
    }
  });

  it('puts the frame counts and the level in the timings, not in the manifest', async () => {
    const { stagingDir } = await runOutputs({ compression: 'zstd', cache: true, printed: { ...report, framesReused: 44, framesCompressed: 2, level: 10 } });
    const timings = await readTimings(join(stagingDir, 't.timings.json'));
    expect(timings.compression).toEqual({ framesReused: 44, framesCompressed: 2, level: 10 });
    expect(timings.steps.slice(-2)).toEqual([{ name: 'Compress', seconds: 1.5 }, { name: 'Block map', seconds: 0.5 }]);
    const manifest = await readFile(join(stagingDir, 't.manifest.json'), 'utf8');
    expect(manifest).not.toMatch(/frames|compressSeconds/);
  });

  it('xz: no frame cache asked for, no compression counts in the timings', async () => {
    const { argument, stagingDir } = await runOutputs({ compression: 'xz', cache: true, printed: report });
    expect(argument).not.toHaveProperty('frames');
    expect(await readTimings(join(stagingDir, 't.timings.json'))).not.toHaveProperty('compression');
  });
});
