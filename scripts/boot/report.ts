/** The failover report: its figures for people (printed) and whole for machines (JSON). */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BootReport } from './scenario.ts';

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
