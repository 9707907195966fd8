/**
 * `pibond diff` on real images: sparse copies of the image describeBuild made, changed inside their
 * root file system with debugfs in the builder image (no mounts). A changed file must be named, and
 * only it; an image against itself, and against its own .zst, is identical; and where no file's
 * content, mode or owner differs (only an inode's ctime), the first differing byte must still be
 * traced to the file whose inode it is, which is what a reproducibility check prints.
 */
import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ensureBuilderImage } from '../../scripts/builder/builder-image.ts';
import { diffImages, renderImageDiff } from '../../scripts/diff/images.ts';
import { connectDocker, runContainer } from '../../scripts/lib/docker.ts';
import { parseMbr, readFirstSector, sectorBytes } from '../../scripts/lib/mbr.ts';
import { runPibond } from './_pibond.ts';

const run = promisify(execFile);
const mirror = 'http://deb.debian.org/debian';

/** Runs debugfs -w requests, one after another, on the root file system of `dir/image` (with /tmp/probe holding `probe`). */
async function changeRootFs(dir: string, image: string, requests: string[]): Promise<void> {
  const mbr = parseMbr(await readFirstSector(join(dir, image)));
  const root = mbr?.partitions[1];
  if (!root) throw new Error(`${image} has no root partition`);
  const device = `/work/${image}?offset=${root.startSector * sectorBytes}`;
  const docker = await connectDocker();
  const builder = await ensureBuilderImage(docker, mirror, () => {}, () => {});
  const script = 'printf "probe\\n" > /tmp/probe; device=$1; shift; for request; do debugfs -w -R "$request" "$device"; done';
  await runContainer(docker, {
    image: builder,
    cmd: ['bash', '-euo', 'pipefail', '-c', script, 'bash', device, ...requests],
    binds: [`${dir}:/work`],
    networkMode: 'none',
    sink: (line, stream) => stream === 'stderr' && !line.startsWith('debugfs 1.') && process.stderr.write(`  ${line}\n`),
  });
}

export function describeDiff(image: () => string): void {
  describe('pibond diff (Docker)', { tags: ['slow'] }, () => {
    let dir: string;
    const copy = async (name: string) => {
      await run('cp', ['--sparse=always', image(), join(dir, name)]);
      return join(dir, name);
    };

    beforeAll(async () => {
      dir = await mkdtemp(join(tmpdir(), 'pibond-diff-e2e-'));
    });
    afterAll(async () => {
      await rm(dir, { recursive: true, force: true });
    });

    it('says an image and its copy are identical, and exits 0', async () => {
      const a = await copy('a.img');
      const result = await runPibond(['diff', image(), a]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('The images are identical');
    });

    it('decompresses a .zst image (sparse, in the container) and finds it identical to the image', async () => {
      const compressed = `${image()}.zst`;
      if (!existsSync(compressed)) throw new Error(`${compressed} is missing: the e2e build writes it beside the image`);
      const result = await runPibond(['diff', compressed, await copy('z.img')]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain('The images are identical');
    });

    it('names exactly the file that was changed inside the root partition, and exits 1', async () => {
      const a = await copy('a.img');
      const b = await copy('b.img');
      await changeRootFs(dir, 'b.img', ['rm /etc/hostname', 'write /tmp/probe /etc/hostname']);
      const result = await runPibond(['diff', a, b]);
      expect(result.code, result.stderr).toBe(1);
      const listed = result.stdout.split('\n').filter((line) => /^ {2}[+~-] \//.test(line));
      expect(listed, result.stdout).toEqual([expect.stringMatching(/^ {2}~ \/etc\/hostname: content \d+ -> 6 bytes, sha256 /)]);
      expect(result.stdout).toContain('Files that differ (1, in root partition (2))');
    });

    it('traces a difference no file shows (an inode change time) to the file whose inode it is', async () => {
      const a = await copy('a.img');
      const c = await copy('c.img');
      await changeRootFs(dir, 'c.img', ['sif /etc/hostname ctime 20000101']);
      const docker = await connectDocker();
      const builder = await ensureBuilderImage(docker, mirror, () => {}, () => {});
      const started = Date.now();
      const d = await diffImages(docker, builder, a, c);
      const seconds = (Date.now() - started) / 1000;
      process.stderr.write(`${renderImageDiff(d)}(diffImages took ${seconds.toFixed(1)} s)\n`);
      expect(d.identical).toBe(false);
      expect(d.files).toEqual([]);
      expect(d.firstDifference).toMatchObject({ region: 'root partition (2)', owner: expect.stringMatching(/^inode table of block group \d+ \(inodes \d+-\d+\); differing: \/etc\/hostname \(inode \d+\)$/) });
      expect(renderImageDiff(d)).toContain('Every file agrees in root partition (2)');
    });
  });
}
