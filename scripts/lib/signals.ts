/**
 * SIGINT (Ctrl-C), SIGTERM (`kill`, a CI job's timeout) and SIGHUP (the terminal was closed) all
 * mean "stop": a command that holds something (a container, QEMU, a temporary directory) listens
 * for the three with one handler, lets go of what it holds, and exits with 128 + the signal's
 * number, as a shell reports a process that a signal ended.
 */
import { constants } from 'node:os';

export const stopSignals = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;

/** The first stop signal any listener received in this process. */
let lastStop: NodeJS.Signals | undefined;

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
 * cleanup is bounded, so the process still ends). A write or read error on stdio counts as SIGHUP:
 * the terminal is gone (it may show before the signal does), and an unhandled stream error would
 * end the process before its cleanup has run.
 */
export function listenForStop(onStop: (signal: NodeJS.Signals) => void = () => {}): StopListener {
  const controller = new AbortController();
  let received: NodeJS.Signals | undefined;
  const handler = (signal: NodeJS.Signals) => {
    if (received) return;
    received = signal;
    lastStop = signal;
    try {
      onStop(signal);
    } finally {
      controller.abort(new Error(`stopped by ${signal}`));
    }
  };
  const terminalGone = () => handler('SIGHUP');
  const stdio = [process.stdin, process.stdout, process.stderr];
  for (const name of stopSignals) process.on(name, handler);
  for (const stream of stdio) stream.on('error', terminalGone);
  return {
    signal: controller.signal,
    get received() {
      return received;
    },
    dispose() {
      for (const name of stopSignals) process.off(name, handler);
      // Writes after the cleanup (the last messages) may still fail: never fatal.
      for (const stream of stdio) {
        stream.off('error', terminalGone);
        if (stream.listenerCount('error') === 0) stream.on('error', () => {});
      }
    },
  };
}

/** The exit status of a process a signal stopped: 128 + its number (SIGHUP 129, SIGINT 130, SIGTERM 143). */
export function exitCodeFor(signal: NodeJS.Signals): number {
  return 128 + (constants.signals[signal] ?? 0);
}

/**
 * Ends the process the way the last stop signal asked, once the command returned (its cleanups
 * done). After SIGHUP on a terminal, Node's own exit would abort while restoring the terminal's
 * mode (nodejs/node#42433: the terminal is gone): the process then ends by SIGHUP itself, which a
 * shell reports as the same status, 129. Otherwise the exit code the command returned stands.
 */
export function endAsStopped(): void {
  if (lastStop !== 'SIGHUP' || ![process.stdin, process.stdout, process.stderr].some((stream) => stream.isTTY)) return;
  process.removeAllListeners('SIGHUP');
  process.kill(process.pid, 'SIGHUP');
}
