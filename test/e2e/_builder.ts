/** Looking into build outputs with the builder image's tools (mtools, e2fsprogs, bmaptool), for the end-to-end tests. */
import { ensureBuilderImage } from '../../scripts/builder/builder-image.ts';
import { type Docker, connectDocker, runContainer } from '../../scripts/lib/docker.ts';

/**
 * Runs a bash script (-euo pipefail) in the builder image with `outDir` at /out, read-only, and
 * `devices` passed in. Returns its standard output lines, and its standard error's too where
 * `keepStderr` (tools that report there, like bmaptool); standard error is echoed either way.
 */
export async function inBuilder(outDir: string, script: string, opts: { devices?: string[]; keepStderr?: boolean } = {}): Promise<string[]> {
  return runInBuilder([`${outDir}:/out:ro`], script, opts);
}

/** Runs a bash script in the builder image with a Docker volume (a build's cache) mounted at `at`, on `docker` (this machine's engine by default). */
export async function inBuilderWithVolume(volume: string, at: string, script: string, docker?: Docker): Promise<string[]> {
  return runInBuilder([`${volume}:${at}`], script, { docker });
}

async function runInBuilder(binds: string[], script: string, opts: { devices?: string[]; keepStderr?: boolean; docker?: Docker }): Promise<string[]> {
  const docker = opts.docker ?? (await connectDocker());
  const image = await ensureBuilderImage(docker, 'http://deb.debian.org/debian', () => {}, () => {});
  const lines: string[] = [];
  await runContainer(docker, {
    image,
    cmd: ['bash', '-euo', 'pipefail', '-c', script],
    binds,
    devices: opts.devices ?? [],
    sink: (line, stream) => {
      if (stream === 'stdout' || opts.keepStderr) lines.push(line);
      if (stream === 'stderr') process.stderr.write(`  ${line}\n`);
    },
  });
  return lines;
}
