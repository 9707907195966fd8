/**
 * The monitor's lines, handed to the healer one after the other: a failover's flush must finish
 * before the neighbour lines after it count.
 *
 * Under load (a first boot, a flapping cable, a Pi busy with its own services) lines arrive faster
 * than the healer's commands run, and several failovers of the bond can wait in the queue at once.
 * Healing each in turn would flush the neighbours once per switch long after the switches were
 * over, each flush throwing away what the newest switch's traffic had just resolved: seen under
 * QEMU as three flushes after the last switch of a flap, and seconds of lost connections. So a
 * failover whose line is reached while a later failover of the same bond waits behind it is
 * `overtaken`: only the newest is healed.
 */
import { parseMonitorLine } from './monitor-lines.ts';
import type { Healer } from './healer.ts';

export class LineQueue {
  private tail: Promise<void> = Promise.resolve();
  /** Failover lines of the bond pushed and not yet handed over. */
  private failoversWaiting = 0;

  constructor(
    private readonly healer: Pick<Healer, 'event' | 'overtaken'>,
    private readonly bond: string,
    private readonly onError: (err: unknown) => void,
  ) {}

  push(line: string): void {
    const event = parseMonitorLine(line);
    if (event === null) return;
    const failover = event.kind === 'failover' && event.bond === this.bond;
    if (failover) this.failoversWaiting++;
    this.then(async () => {
      if (!failover) return this.healer.event(event);
      this.failoversWaiting--;
      if (this.failoversWaiting > 0) this.healer.overtaken();
      else await this.healer.event(event);
    });
  }

  /** Runs `task` after everything pushed so far (the check at start). */
  then(task: () => Promise<void> | void): void {
    this.tail = this.tail.then(task).catch(this.onError);
  }

  /** Settles when everything pushed so far has been handled (tests). */
  idle(): Promise<void> {
    return this.tail;
  }
}
