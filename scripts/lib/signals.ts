/**
 * SIGINT (Ctrl-C), SIGTERM (`kill`, a CI job's timeout) and SIGHUP (the terminal was closed) all
 * mean "stop": a command that holds something (a container, QEMU, a temporary directory) listens
 * for the three with one handler, lets go of what it holds, and exits with 128 + the signal's
 * number, as a shell reports a process that a signal ended.
 */
import { constants } from 'node:os';

export const stopSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

export interface StopListener {
  /** Aborted at the first stop signal; its reason names the signal. */
  readonly signal: AbortSignal;
  /** The first stop signal received, if any. */
  readonly received: NodeJS.Signals | undefined;
  /** Stops listening (the default action, ending the process, applies again). */
  dispose(): void;
}

/**
 * Listens for SIGINT, SIGTERM and SIGHUP until disposed. The first calls `onStop` and aborts
 * `signal`; later ones are swallowed, so a second Ctrl-C cannot cut the cleanup short (every
 * cleanup is bounded, so the process still ends).
 */
export function listenForStop(onStop: (signal: NodeJS.Signals) => void = () => {}): StopListener {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (signal === 'SIGHUP') ignoreLostTerminal();
    if (received) return;
    received = signal;
    try {
      onStop(signal);
    } finally {
      controller.abort(new Error(`stopped by ${signal}`));
    }
  };
  for (const name of stopSignals) process.on(name, handler);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    dispose() {
      for (const name of stopSignals) process.off(name, handler);
    },
  };
}

/** The exit status of a process a signal stopped: 128 + its number (SIGHUP 129, SIGINT 130, SIGTERM 143). */
export function exitCodeFor(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/**
 * After SIGHUP the terminal is gone: writing to it fails (EIO), and an unhandled stream error
 * would end the process before its cleanup has run.
 */
function ignoreLostTerminal(): void {
  for (const stream of [process.stdin, process.stdout, process.stderr]) {
    if (stream.listenerCount('error') === 0) stream.on('error', () => {});
  }
}
