import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Progress, formatSeconds } from '../../scripts/lib/log.ts';

describe('Progress (plain lines, as in CI)', () => {
  it('marks each step, times it, and copies every line to the log file', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pibond-log-'));
    try {
      let printed = '';
      const progress = new Progress({ live: false, verbose: false, stream: { write: (s: string) => (printed += s) } as unknown as NodeJS.WriteStream });
      progress.logTo(join(dir, 'build.log'));
      await progress.step('Root filesystem', async () => progress.sink('I: downloading', 'stdout'));
      await expect(progress.step('Disk', async () => Promise.reject(new Error('boom')))).rejects.toThrow('boom');
      await progress.close();
      expect(printed).toMatch(/^==> Root filesystem\n<== Root filesystem \(\d+\.\ds\)\n==> Disk\n!!! Disk \(\d+\.\ds\)\n$/);
      expect(progress.timings.map((t) => t.name)).toEqual(['Root filesystem', 'Disk']);
      const log = await readFile(join(dir, 'build.log'), 'utf8');
      // Each output line with the seconds since the build started.
      expect(log).toMatch(/## Root filesystem\n\[ *\d+\.\d\] I: downloading\n## done: Root filesystem/);
      expect(log).toContain('## FAILED: Disk');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('formatSeconds', () => {
  it('shows seconds below a minute and minutes above', () => {
    expect(formatSeconds(4.26)).toBe('4.3s');
    expect(formatSeconds(246)).toBe('4m06s');
  });
});
