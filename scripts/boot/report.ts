/** The failover report: its figures for people (printed) and whole for machines (JSON). */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

export const goals = { bootToReadySeconds: 45, failoverMs: 300, failbackMs: 300 };

/** One check as it ran: the report's `checks` rows. */
export interface CheckResult {
  name: string;
  ok: boolean;
  detail: string;
  seconds: number;
}

export interface Figures {
  /** QEMU started -> the status service answered through the primary router. */
  bootToReadySeconds: number | null;
  /** set_link off on the primary's NIC -> the service reports the backup slave active. */
  failoverMs: number | null;
  /** set_link on on the primary's NIC -> the service reports the primary active again. */
  failbackMs: number | null;
  /** The same two figures for every flap of the primary. */
  flaps: { failoverMs: number; failbackMs: number }[];
  /** device_add of the backup NIC -> the service lists it as a slave again, up, as the backup. */
  reenslaveMs: number | null;
}

export interface GoalsMet {
  bootToReady: boolean | null;
  failover: boolean | null;
  failback: boolean | null;
}

export interface BootReport {
  image: string;
  name: string;
  diskId: string;
  startedAt: string;
  verdict: 'pass' | 'fail';
  figures: Figures;
  goals: typeof goals;
  goalsMet: GoalsMet;
  checks: CheckResult[];
  error?: string;
  /** The guest kernel's bonding messages from the serial console (the first 40). */
  bondingLog: string[];
  /** Where the whole serial log was kept, when the run failed. */
  serialLog?: string;
  ports?: { nic: string; status: number; ssh: number }[];
}

export async function writeReport(report: BootReport, file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
}

export function formatFigures(report: BootReport): string {
  const { figures, goals, goalsMet } = report;
  const mark = (met: boolean | null) => (met === null ? '' : met ? '  (goal met)' : '  (goal MISSED)');
  const value = (n: number | null, unit: string) => (n === null ? 'not measured' : `${n} ${unit}`);
  const flapTimes = figures.flaps.flatMap((f) => [f.failoverMs, f.failbackMs]);
  const lines = [
    `boot to ready   ${value(figures.bootToReadySeconds, 's').padEnd(14)} goal <= ${goals.bootToReadySeconds} s${mark(goalsMet.bootToReady)}`,
    `failover        ${value(figures.failoverMs, 'ms').padEnd(14)} goal <= ${goals.failoverMs} ms${mark(goalsMet.failover)}`,
    `failback        ${value(figures.failbackMs, 'ms').padEnd(14)} goal <= ${goals.failbackMs} ms${mark(goalsMet.failback)}`,
  ];
  if (flapTimes.length) {
    const sorted = [...flapTimes].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    lines.push(`flap switches   ${flapTimes.length}: median ${median} ms, min ${sorted[0]} ms, max ${sorted.at(-1)} ms`);
  }
  if (figures.reenslaveMs !== null) lines.push(`re-enslave      ${figures.reenslaveMs} ms after the backup NIC was plugged back in`);
  return lines.join('\n');
}

export function formatVerdict(report: BootReport): string {
  const failed = report.checks.find((c) => !c.ok);
  if (report.verdict === 'pass') return `PASS: ${report.checks.length} checks passed`;
  if (failed) return `FAIL: ${failed.name}: ${failed.detail}`;
  return `FAIL: ${report.error?.split('\n')[0] ?? 'unknown error'}`;
}
