/**
 * What the user sees while a card is written and read back: on a terminal a bar per phase with
 * bytes, rate and time left (cli-progress); elsewhere (CI, a pipe, a log) a plain line every few
 * seconds and one at the end of each phase.
 */
import cliProgress from 'cli-progress';
import type { Phase, Progress } from './writer.ts';

const phaseNames: Record<Phase, string> = { write: 'write ', verify: 'verify' };
const plainEveryMs = 5_000;

export interface ProgressView {
  update(progress: Progress): void;
  /** Ends the current phase's bar (or line), e.g. before a message. */
  stop(): void;
}

export function progressView(stream: NodeJS.WriteStream, live = stream.isTTY === true): ProgressView {
  return live ? barView(stream) : plainView(stream);
}

function barView(stream: NodeJS.WriteStream): ProgressView {
  let bar: cliProgress.SingleBar | undefined;
  let phase: Phase | undefined;
  const started = { at: 0 };
  const stop = () => {
    bar?.stop();
    bar = undefined;
    phase = undefined;
  };
  return {
    update(progress) {
      if (progress.phase !== phase) {
        stop();
        phase = progress.phase;
        started.at = performance.now();
        bar = new cliProgress.SingleBar(
          {
            stream,
            format: (_options, params, payload: { line: string }) => `${phaseNames[progress.phase]} [${barOf(params.progress)}] ${payload.line}`,
            hideCursor: true,
            fps: 5,
          },
          cliProgress.Presets.shades_classic,
        );
        bar.start(progress.total ?? 0, 0, { line: '' });
      }
      bar?.update(progress.done, { line: figures(progress, started.at) });
    },
    stop,
  };
}

function plainView(stream: NodeJS.WriteStream): ProgressView {
  let phase: Phase | undefined;
  let last = { progress: undefined as Progress | undefined, printedAt: 0, startedAt: 0 };
  const print = () => {
    if (last.progress) stream.write(`${phaseNames[last.progress.phase].trim()}: ${figures(last.progress, last.startedAt)}\n`);
  };
  return {
    update(progress) {
      const now = performance.now();
      if (progress.phase !== phase) {
        if (phase !== undefined) print();
        phase = progress.phase;
        last = { progress, printedAt: now, startedAt: now };
      }
      last.progress = progress;
      if (now - last.printedAt >= plainEveryMs) {
        print();
        last.printedAt = now;
      }
    },
    stop() {
      print();
      last.progress = undefined;
      phase = undefined;
    },
  };
}

/** "412.0 MiB of 680.2 MiB (61%), 95.3 MiB/s, 3 s left". */
export function figures(progress: Progress, startedAt: number, now = performance.now()): string {
  const seconds = (now - startedAt) / 1000;
  const rate = seconds > 0 ? progress.done / seconds : 0;
  const parts = [progress.total === undefined ? mib(progress.done) : `${mib(progress.done)} of ${mib(progress.total)} (${Math.floor((100 * progress.done) / Math.max(progress.total, 1))}%)`];
  parts.push(`${mib(rate)}/s`);
  if (progress.total !== undefined && rate > 0) parts.push(progress.done >= progress.total ? `${seconds.toFixed(1)} s` : `${Math.ceil((progress.total - progress.done) / rate)} s left`);
  return parts.join(', ');
}

function barOf(fraction: number, width = 30): string {
  const full = Math.round(Math.min(1, Math.max(0, fraction)) * width);
  return '\u2588'.repeat(full) + '\u2591'.repeat(width - full);
}

function mib(bytes: number): string {
  return `${(bytes / 1024 ** 2).toFixed(1)} MiB`;
}
