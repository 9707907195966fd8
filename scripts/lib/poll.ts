/**
 * The one way pibond waits for something to become true: try, and if it is not there yet, wait a
 * moment and try again, until a deadline. Every wait is bounded, can be aborted, and its timeout
 * names what was awaited and the last thing that went wrong.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { errorMessage } from './errors.ts';

export interface PollOptions {
  /** What is awaited, in the user's words: "the status service on 127.0.0.1:8080". */
  what: string;
  /** Give up this many milliseconds after the first try. */
  timeoutMs: number;
  /** Milliseconds between tries. */
  intervalMs: number;
  signal?: AbortSignal;
  /**
   * An error that must not be retried (a refused input, a bug) is thrown at once when this says
   * so; by default every error is retried until the deadline.
   */
  retryable?: (err: unknown) => boolean;
}

export class PollTimeout extends Error {
  override name = 'PollTimeout';
  constructor(
    readonly what: string,
    readonly timeoutMs: number,
    readonly lastProblem: string | undefined,
  ) {
    super(`timed out after ${formatMs(timeoutMs)} waiting for ${what}${lastProblem ? ` (last: ${lastProblem})` : ''}`);
  }
}

/**
 * Calls `attempt` until it returns a value other than `undefined`, and returns that value.
 * A thrown error counts as "not yet" (unless `retryable` says otherwise) and is remembered for the
 * timeout's message. Waits `intervalMs` between tries; throws PollTimeout after `timeoutMs`.
 */
export async function poll<T>(attempt: () => Promise<T | undefined> | T | undefined, options: PollOptions): Promise<T> {
  const { signal } = options;
  const deadline = Date.now() + options.timeoutMs;
  let lastProblem: string | undefined;
  for (;;) {
    signal?.throwIfAborted();
    try {
      const value = await attempt();
      if (value !== undefined) return value;
      lastProblem = undefined;
    } catch (err) {
      if (signal?.aborted) throw err;
      if (options.retryable && !options.retryable(err)) throw err;
      lastProblem = errorMessage(err);
    }
    if (Date.now() >= deadline) throw new PollTimeout(options.what, options.timeoutMs, lastProblem);
    await sleep(Math.min(options.intervalMs, Math.max(0, deadline - Date.now())), undefined, { signal }).catch((err: unknown) => {
      // Abort with the caller's reason (Ctrl-C, a failed sibling), not the timer's generic AbortError.
      signal?.throwIfAborted();
      throw err;
    });
  }
}

/**
 * Settles like `work`, or resolves to `fallback` after `ms`: for waits that must not hold up a
 * cleanup (a `finally` may wait, but never forever).
 */
export async function bounded<T>(work: Promise<T>, ms: number, fallback: T): Promise<T> {
  const timer = new AbortController();
  try {
    return await Promise.race([work, sleep(ms, fallback, { signal: timer.signal })]);
  } finally {
    timer.abort();
  }
}

function formatMs(ms: number): string {
  return ms >= 1000 ? `${ms / 1000} s` : `${ms} ms`;
}

/** Settles like `work`, or rejects with the signal's reason as soon as it is aborted. */
export function untilAborted<T>(work: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (!signal) return work;
  let onAbort = () => {};
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  return Promise.race([work, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}
