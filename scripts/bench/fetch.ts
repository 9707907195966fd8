/**
 * Outputs from an engine that does not share this machine's files (issue 13, "any Docker engine"):
 * how fast send-file.mjs and fetchFile move an image shaped like the default one (2 GiB, ~0.7 GiB
 * of data in a few extents, half of it incompressible) out of a build container, and that the copy
 * is the same bytes with the same holes. It runs against the engine DOCKER_HOST names (this
 * machine's by default: the path through exec is the same; only the wire differs).
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ensureBuilderImage } from '../builder/builder-image.ts';
import { paths } from '../image/context.ts';
import { execIn, removeContainer, startContainer } from '../lib/docker.ts';
import { fetchFile } from '../lib/fetch-file.ts';
import { ensureDockerEngine } from '../lib/host.ts';

const MiB = 1024 * 1024;

export async function benchFetch(): Promise<Record<string, number | string>> {
  const docker = await ensureDockerEngine(() => {});
  const image = await ensureBuilderImage(docker, 'http://deb.debian.org/debian', () => {}, (m) => process.stderr.write(`${m}\n`));
  const running = await startContainer(docker, { image, cmd: ['sleep', 'infinity'], volumes: ['/out'], init: true });
  const work = await mkdtemp(join(tmpdir(), 'pibond-bench-fetch-'));
  try {
    // 2 GiB with data at the FAT's place (text-like), the root's (random), and the end.
    const script = [
      'set -eu',
      'f=/out/bench.img',
      'truncate -s 2G $f',
      'yes "a line of the boot partition" | head -c 64M | dd of=$f bs=1M seek=4 conv=notrunc status=none',
      'head -c 320M /dev/urandom | dd of=$f bs=1M seek=260 conv=notrunc status=none',
      'yes "usr/share/doc/some-package/copyright" | head -c 320M | dd of=$f bs=1M seek=600 conv=notrunc status=none',
      'head -c 1M /dev/urandom | dd of=$f bs=1M seek=2040 conv=notrunc status=none',
      'sha256sum $f | cut -d" " -f1',
    ].join('\n');
    const lines: string[] = [];
    await execIn(docker, running.container, ['bash', '-c', script], { sink: (line, stream) => stream === 'stdout' && lines.push(line) });
    const inside = lines.at(-1) ?? '';
    const to = join(work, 'bench.img');
    const started = performance.now();
    const { size, written } = await fetchFile(running.container, `${paths.tools}/send-file.mjs`, '/out/bench.img', to, () => {});
    const seconds = (performance.now() - started) / 1000;
    const here = await sha256(to);
    const onDisk = (await stat(to)).blocks * 512;
    return {
      'fetched image: size (MiB)': size / MiB,
      'fetched image: data sent (MiB)': written / MiB,
      'fetched image: seconds': seconds,
      'fetched image: MB/s of data': written / 1e6 / seconds,
      'fetched image: room taken here (MiB)': onDisk / MiB,
      'fetched image: the same sha256 as in the container': here === inside ? 'yes' : `NO (${here} here, ${inside} there)`,
    };
  } finally {
    await removeContainer(running.container);
    await rm(work, { recursive: true, force: true });
  }
}

async function sha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk as Buffer);
  return hash.digest('hex');
}
