/**
 * Progress and logs for long steps, mkosi-style: each step runs in a timed scope. On a terminal a
 * live spinner shows the step, its elapsed time and the latest output line; elsewhere (CI, pipes)
 * plain lines mark each step's start and end. Every output line also goes to the log file.
 */
import { createWriteStream, type WriteStream } from 'node:fs';
import ora, { type Ora } from 'ora';
import type { LineSink } from './docker.ts';

export interface StepTiming {
  name: string;
  seconds: number;
}

export class Progress {
  readonly timings: StepTiming[] = [];
  private spinner: Ora | undefined;
  private current: { name: string; started: number; lastLine: string } | undefined;
  private ticker: NodeJS.Timeout | undefined;
  private file: WriteStream | undefined;
  private readonly started = Date.now();

  constructor(
    private readonly options: { live: boolean; verbose: boolean; stream?: NodeJS.WriteStream } = { live: false, verbose: false },
  ) {}

  /** Starts copying every line to a log file (appending a fresh run header). */
  logTo(path: string): void {
    this.file = createWriteStream(path, { flags: 'w' });
    this.file.write(`# pibond build log, started ${new Date().toISOString()}\n`);
  }

  /** A line for the user, kept in the log too. */
  say = (message: string): void => {
    this.file?.write(`# ${message}\n`);
    if (this.spinner) this.spinner.clear();
    (this.options.stream ?? process.stderr).write(`${message}\n`);
    this.spinner?.render();
  };

  /**
   * Where container and tool output goes. In the log each line carries the seconds since the build
   * started, so the log shows where a long step's minutes went (mmdebstrap's phases, say).
   */
  sink: LineSink = (line) => {
    this.file?.write(`[${((Date.now() - this.started) / 1000).toFixed(1).padStart(6)}] ${line}\n`);
    if (this.current) this.current.lastLine = line;
    if (this.options.verbose) this.say(`  ${line}`);
  };

  /** Runs one step in a timed scope and records its duration. */
  async step<T>(name: string, run: () => Promise<T>): Promise<T> {
    const started = Date.now();
    this.current = { name, started, lastLine: '' };
    this.file?.write(`## ${name}\n`);
    if (this.options.live) {
      this.spinner = ora({ text: name, stream: this.options.stream ?? process.stderr }).start();
      this.ticker = setInterval(() => this.refresh(), 250);
    } else {
      (this.options.stream ?? process.stderr).write(`==> ${name}\n`);
    }
    try {
      const result = await run();
      this.finish(true);
      return result;
    } catch (err) {
      this.finish(false);
      throw err;
    }
  }

  close(): Promise<void> {
    this.stopTicker();
    const file = this.file;
    this.file = undefined;
    return new Promise((resolve) => (file ? file.end(resolve) : resolve()));
  }

  private refresh(): void {
    if (!this.spinner || !this.current) return;
    const width = (this.options.stream ?? process.stderr).columns ?? 100;
    const head = `${this.current.name}  ${formatSeconds((Date.now() - this.current.started) / 1000)}`;
    const line = this.current.lastLine.replace(/\s+/g, ' ').trim();
    const room = width - head.length - 8;
    this.spinner.text = line && room > 10 ? `${head}  ${line.slice(0, room)}` : head;
  }

  private finish(ok: boolean): void {
    this.stopTicker();
    if (!this.current) return;
    const seconds = (Date.now() - this.current.started) / 1000;
    this.timings.push({ name: this.current.name, seconds });
    const line = `${this.current.name} (${formatSeconds(seconds)})`;
    this.file?.write(`## ${ok ? 'done' : 'FAILED'}: ${line}\n`);
    if (this.spinner) {
      if (ok) this.spinner.succeed(line);
      else this.spinner.fail(line);
      this.spinner = undefined;
    } else {
      (this.options.stream ?? process.stderr).write(`${ok ? '<==' : '!!!'} ${line}\n`);
    }
    this.current = undefined;
  }

  private stopTicker(): void {
    if (this.ticker) clearInterval(this.ticker);
    this.ticker = undefined;
  }
}

export function formatSeconds(seconds: number): string {
  if (seconds < 60) return `${seconds.toFixed(1)}s`;
  return `${Math.floor(seconds / 60)}m${String(Math.round(seconds % 60)).padStart(2, '0')}s`;
}
