/** One handler for SIGINT, SIGTERM and SIGHUP; exit statuses as a shell reports them. */
import { afterEach, describe, expect, it } from 'vitest';
import { type StopListener, exitCodeFor, listenForStop, stopSignals } from '../../scripts/lib/signals.ts';

let listener: StopListener | undefined;
afterEach(() => listener?.dispose());

describe('listenForStop', () => {
  it.each(stopSignals)('aborts on %s, names it, and calls the handler once', (name) => {
    const seen: string[] = [];
    listener = listenForStop((signal) => seen.push(signal));
    process.emit(name, name);
    process.emit('SIGINT', 'SIGINT');
    expect(seen).toEqual([name]);
    expect(listener.received).toBe(name);
    expect(listener.signal.aborted).toBe(true);
    expect((listener.signal.reason as Error).message).toBe(`stopped by ${name}`);
  });

  it('keeps listening until disposed, so a second signal cannot cut the cleanup short', () => {
    const before = process.listenerCount('SIGHUP');
    listener = listenForStop();
    process.emit('SIGHUP', 'SIGHUP');
    expect(process.listenerCount('SIGHUP')).toBe(before + 1);
    listener.dispose();
    expect(stopSignals.map((name) => process.listenerCount(name))).toEqual(stopSignals.map(() => before));
  });
  it('takes an error on the terminal (it is gone, EIO) for SIGHUP, instead of dying of it', () => {
    listener = listenForStop();
    process.stdout.emit('error', Object.assign(new Error('write EIO'), { code: 'EIO' }));
    expect(listener.received).toBe('SIGHUP');
  });
});

describe('exitCodeFor', () => {
  it('is 128 + the signal number', () => {
    expect(stopSignals.map(exitCodeFor)).toEqual([130, 143, 129]);
  });
});
