import { PassThrough } from 'node:stream';
import { describe, expect, it } from 'vitest';
import { figures, progressView } from '../../scripts/flash/progress.ts';

const mib = 1024 * 1024;

describe('flash progress', () => {
  it('tells bytes, share, rate and time left; the time taken at the end', () => {
    expect(figures({ phase: 'write', done: 100 * mib, total: 400 * mib }, 0, 2_000)).toBe('100.0 MiB of 400.0 MiB (25%), 50.0 MiB/s, 6 s left');
    expect(figures({ phase: 'verify', done: 400 * mib, total: 400 * mib }, 0, 1_000)).toBe('400.0 MiB of 400.0 MiB (100%), 400.0 MiB/s, 1.0 s');
    expect(figures({ phase: 'write', done: 3 * mib, total: undefined }, 0, 1_000)).toBe('3.0 MiB, 3.0 MiB/s');
  });

  it('off a terminal: one plain line per phase at its end (and every 5 s), no bar', () => {
    const stream = new PassThrough();
    let text = '';
    stream.on('data', (data: Buffer) => (text += data.toString()));
    const view = progressView(stream as unknown as NodeJS.WriteStream, false);
    for (let done = 4; done <= 12; done += 4) view.update({ phase: 'write', done: done * mib, total: 12 * mib });
    view.update({ phase: 'verify', done: 12 * mib, total: 12 * mib });
    view.stop();
    const lines = text.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toMatch(/^write: 12\.0 MiB of 12\.0 MiB \(100%\), [\d.]+ MiB\/s/);
    expect(lines[1]).toMatch(/^verify: 12\.0 MiB of 12\.0 MiB \(100%\)/);
    expect(text).not.toContain('\u2588');
  });
});
