/**
 * The healer's hands on the kernel's addresses, routes and neighbours (main.ts's effects).
 */
import { type ChildProcessWithoutNullStreams, spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

/**
 * One `ip -o -force -batch -` for the process's life (`args` go first: `-n NAMESPACE` in the
 * tests), fed a switch's commands on its stdin: no process is started at a switch (forking Node
 * and starting ip cost 0.1-0.2 s of every switch under emulation). -force goes on past a failed
 * command (a route gone already), whose complaint is logged. ip answers `link show dev lo` with
 * one line and flushes it at once: that line after a batch says the batch is done.
 */
export class IpShell {
  readonly ip: ChildProcessWithoutNullStreams;
  private readonly done: (() => void)[] = [];

  constructor(complaint: (line: string) => void, args: string[] = []) {
    this.ip = spawn('ip', [...args, '-o', '-force', '-batch', '-']);
    createInterface({ input: this.ip.stdout }).on('line', (line) => {
      if (/^\d+:\s+lo:/.test(line)) this.done.shift()?.();
    });
    createInterface({ input: this.ip.stderr }).on('line', complaint);
  }

  run(commands: string[]): Promise<void> {
    return new Promise((resolve) => {
      this.done.push(resolve);
      this.ip.stdin.write(`${[...commands, 'link show dev lo'].join('\n')}\n`);
    });
  }
}
