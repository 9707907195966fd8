import { describe, expect, it } from 'vitest';
import { PollTimeout, bounded, poll } from '../../scripts/lib/poll.ts';

describe('poll', () => {
  it('returns the first defined value, retrying undefined and errors', async () => {
    let tries = 0;
    const value = await poll(
      () => {
        tries += 1;
        if (tries === 1) return undefined;
        if (tries === 2) throw new Error('not yet');
        return 'ready';
      },
      { what: 'the thing', timeoutMs: 5000, intervalMs: 1 },
    );
    expect(value).toBe('ready');
    expect(tries).toBe(3);
  });

  it('times out naming what it waited for and the last problem', async () => {
    const err = await poll(
      () => {
        throw new Error('connection refused');
      },
      { what: 'the status service', timeoutMs: 20, intervalMs: 5 },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(PollTimeout);
    expect((err as Error).message).toBe('timed out after 20 ms waiting for the status service (last: connection refused)');
  });

  it('throws an error that is not retryable at once', async () => {
    let tries = 0;
    const err = await poll(
      () => {
        tries += 1;
        throw new TypeError('a bug');
      },
      { what: 'x', timeoutMs: 5000, intervalMs: 1, retryable: (e) => !(e instanceof TypeError) },
    ).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(TypeError);
    expect(tries).toBe(1);
  });

  it('stops when aborted', async () => {
    const controller = new AbortController();
    let tries = 0;
    const waiting = poll(
      () => {
        tries += 1;
        if (tries === 3) controller.abort(new Error('interrupted'));
        return undefined;
      },
      { what: 'x', timeoutMs: 60_000, intervalMs: 1, signal: controller.signal },
    );
    await expect(waiting).rejects.toThrow('interrupted');
    expect(tries).toBe(3);
  });
});

describe('bounded', () => {
  it('gives the work its value when it settles in time', async () => {
    expect(await bounded(Promise.resolve('done'), 1000, 'late')).toBe('done');
  });

  it('gives the fallback when the work never settles', async () => {
    expect(await bounded(new Promise<string>(() => {}), 10, 'late')).toBe('late');
  });
});
