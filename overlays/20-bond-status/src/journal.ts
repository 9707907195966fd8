/**
 * Log lines for the journal. Under systemd, stdout is a journald stream that reads a leading `<N>`
 * as the syslog priority (sd-daemon(3), SyslogLevelPrefix= defaults to yes), so a failover can be
 * found with `journalctl -u bond-status -p warning` without any journald library.
 */
import type { Writable } from 'node:stream';

export interface Journal {
  error(message: string): void;
  warning(message: string): void;
  notice(message: string): void;
  info(message: string): void;
}

const priorities = { error: 3, warning: 4, notice: 5, info: 6 } as const;

export function createJournal(out: Pick<Writable, 'write'>): Journal {
  // One write per line, newlines inside a message flattened: journald splits entries on newlines.
  const line = (priority: number) => (message: string) => void out.write(`<${priority}>${message.replace(/\n/g, ' ')}\n`);
  return {
    error: line(priorities.error),
    warning: line(priorities.warning),
    notice: line(priorities.notice),
    info: line(priorities.info),
  };
}

/** For tests and the terminal command: a journal that keeps nothing. */
export const silentJournal: Journal = { error() {}, warning() {}, notice() {}, info() {} };
