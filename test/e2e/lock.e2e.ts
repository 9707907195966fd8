/**
 * Locked builds, end to end: a lock holding a version no mirror has (bash 9.9-1) fails with the
 * list and the snapshot hint before the slow essential install, leaving nothing in the output
 * directory. (A build locked to the suite's own manifest, which must install that same package
 * list, is the reproducibility test's: reproducible.e2e.ts.)
 */
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { connectDocker } from '../../scripts/lib/docker.ts';
import { parseLock, renderLock } from '../../scripts/lib/lock.ts';
import { runPibond } from './_pibond.ts';

const name = 'pibond-bookworm-arm64';

export function describeLock(suiteOutDir: string): void {
  describe('locked builds (Docker)', { tags: ['slow'] }, () => {
    const suiteManifest = () => join(suiteOutDir, `${name}.manifest.json`);

    it('fails before installing when the mirror lacks a locked version, naming it and the snapshot to use', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'pibond-lock-'));
      // Its own cache volume: no cached root filesystem may answer, the real bootstrap must run.
      const volume = `pibond-lock-test-${process.pid}`;
      try {
        const { lock } = parseLock(await readFile(suiteManifest(), 'utf8'), suiteManifest(), '2025-03-01T12:34:56Z');
        const locked = join(dir, 'bad.lock.json');
        await writeFile(locked, renderLock({ ...lock, packages: lock.packages.map((p) => (p.name === 'bash' ? { ...p, version: '9.9-1' } : p)) }));
        const out = join(dir, 'out');
        const started = Date.now();
        const result = await runPibond(['build', 'images/default.yaml', '--locked', locked, '--out', out, '--cache-volume', volume]);
        const seconds = (Date.now() - started) / 1000;

        expect(result.code, result.stdout).toBe(1);
        expect(result.stdout + result.stderr).toContain(`Installing the locked package set from ${locked}`);
        expect(result.stdout + result.stderr).toContain('Bootstrapping Debian bookworm arm64');
        expect(result.stderr).toMatch(new RegExp(`pibond: the mirror cannot give the package set locked in ${locked}:\\n  bash: locked 9\\.9-1, the mirror has \\S+\\n`));
        // Only bash: every other locked version is in the mirror and pinned.
        expect(result.stderr.match(/^ {2}\S+: locked /gm)).toHaveLength(1);
        expect(result.stderr).toContain('mirror: http://snapshot.debian.org/archive/debian/20250301T123456Z/');
        // The essential install under qemu-user (minutes) never ran.
        expect(await readFile(join(out, `${name}.build.log`), 'utf8')).not.toContain('installing remaining packages inside the chroot');
        expect((await readdir(out)).filter((file) => file !== `${name}.build.log`)).toEqual([]);
        console.log(`lock: the build with a missing locked version failed after ${seconds.toFixed(0)} s`);
      } finally {
        await rm(dir, { recursive: true, force: true });
        await (await connectDocker()).getVolume(volume).remove().catch(() => {});
      }
    });
  });
}
