/** The failover report: its figures for people (printed) and whole for machines (JSON). */
import { mkdir, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { BootKernel } from './boot-kernel.ts';
import type { Endpoint } from './status-api.ts';

/** The uplink scenario's goals (issue: uplink-aware failover), as benchmark figures. */
export const uplinkGoals = { detectAndSwitchMs: 5000, backMs: 30_000, probeBytesPerSecond: 1000 };

export const goals = { bootToReadySeconds: 45, failoverMs: 300, failbackMs: 300, outageMedianMs: 500, outageWorstMs: 1000 };

/** One switch seen from the test bed's internet (see testbed/prober.ts); null: not resumed within the window. */
export interface SwitchOutage {
  switch: 'failover' | 'failback';
  inboundMs: number | null;
  outboundMs: number | null;
  /** The bond's own switch seen on the wire (the Pi's first frame into the new router's LAN); secondary. */
  bondMs?: number | null;
  /** How the image's pibond-heal healed the switch, as its failover event says (flush, reuse, renew); null: not (yet) healed. */
  healAction?: string | null;
  /** Why a switch has no heal: pibond-heal's outcome (not_healed, superseded), or null when it recorded none. */
  healOutcome?: string | null;
}

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
  /** QEMU started -> the service said the boot had finished, first-boot work included (absent: not reported). */
  bootFinishedSeconds?: number;
  /** set_link off on the primary's NIC -> the service reports the backup slave active. */
  failoverMs: number | null;
  /** set_link on on the primary's NIC -> the service reports the primary active again. */
  failbackMs: number | null;
  /** The same two figures for every flap of the primary. */
  flaps: { failoverMs: number; failbackMs: number }[];
  /** device_add of the backup NIC -> the service lists it as a slave again, up, as the backup. */
  reenslaveMs: number | null;
  /** On the test bed: every switch's outage as the internet saw it, in order. */
  outages: SwitchOutage[];
  /** The uplink scenario's figures (scenario: uplink). */
  uplink?: UplinkFigures;
}

/** The uplink figures: each failure's outage as the internet saw it, and the tracker's own costs. */
export interface UplinkFigures {
  /** The main router's WAN cut -> traffic through the backup; and restored -> through the main again. */
  wanCut?: SwitchOutageFigure;
  wanBack?: SwitchOutageFigure;
  /** The main router hung (link up, nothing answers) -> through the backup; and back. */
  hang?: SwitchOutageFigure;
  unhang?: SwitchOutageFigure;
  /** Seconds of loss on the main WAN, and the switches the tracker made meanwhile (the goal: none). */
  loss?: { percent: number; seconds: number; switches: number };
  /** Probe traffic per uplink at the defaults, bytes per second (Ethernet, both ways). */
  probeBytesPerSecond?: Record<string, number>;
}

/** An outage seen from the internet after a change (see testbed/prober.ts); null: never within the window. */
export interface SwitchOutageFigure {
  inboundMs: number | null;
  outboundMs: number | null;
  bondMs?: number | null;
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
  /** The routers the NICs were on: `user` (QEMU's user-mode networks) or `testbed:LAYOUT`. */
  routers?: string;
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
  /** The kernel that booted: the image's own, or the builder's Debian kernel and why (absent: reports older than it). */
  kernel?: BootKernel;
  /** Where each router's forwards were reached: host ports, or (on the test bed) WAN addresses and ports. */
  ports?: { nic: string; status: Endpoint; ssh: Endpoint }[];
}

export async function writeReport(report: BootReport, file: string): Promise<void> {
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, `${JSON.stringify(report, null, 2)}\n`);
}

/** The outside figures, per direction and kind of switch: median and worst, a never-resumed switch the worst of all. */
export function outageTable(outages: SwitchOutage[]): { direction: 'inbound' | 'outbound'; switch: 'failover' | 'failback'; count: number; median: number | null; worst: number | null; never: number }[] {
  return (['inbound', 'outbound'] as const).flatMap((direction) =>
    (['failover', 'failback'] as const).map((which) => {
      const values = outages.filter((o) => o.switch === which).map((o) => (direction === 'inbound' ? o.inboundMs : o.outboundMs));
      return { direction, switch: which, count: values.length, ...summarise(values) };
    }),
  );
}

/** The median and the worst of some outages; a null (never resumed) counts as longer than any. */
export function summarise(values: (number | null)[]): { median: number | null; worst: number | null; never: number } {
  const measured = values.filter((v): v is number => v !== null).sort((a, b) => a - b);
  const never = values.length - measured.length;
  const sorted: (number | null)[] = [...measured, ...values.filter((v) => v === null)];
  return { median: sorted[Math.floor((sorted.length - 1) / 2)] ?? null, worst: never || measured.length === 0 ? null : (measured.at(-1) ?? null), never };
}

function formatOutages(report: BootReport): string[] {
  const rows = outageTable(report.figures.outages).filter((row) => row.count > 0);
  if (rows.length === 0) return [];
  const ms = (value: number | null, never: boolean) => (value === null ? (never ? 'never' : '-') : `${value} ms`);
  return [
    `outage seen from the internet (${report.routers ?? 'test bed'}), median / worst, goal <= ${report.goals.outageMedianMs} / ${report.goals.outageWorstMs} ms:`,
    ...rows.map(
      (row) =>
        `  ${row.direction.padEnd(8)} ${row.switch.padEnd(8)} ${ms(row.median, row.never > 0).padStart(9)} / ${ms(row.worst, row.never > 0).padStart(9)}` +
        `   (${row.count} switches${row.never ? `, ${row.never} never resumed` : ''})`,
    ),
  ];
}

export function formatFigures(report: BootReport): string {
  const { figures, goals, goalsMet } = report;
  const mark = (met: boolean | null) => (met === null ? '' : met ? '  (goal met)' : '  (goal MISSED)');
  const value = (n: number | null, unit: string) => (n === null ? 'not measured' : `${n} ${unit}`);
  const flapTimes = figures.flaps.flatMap((f) => [f.failoverMs, f.failbackMs]);
  // On the test bed the bond's own switch is timed on the wire; on user-mode networks, by the service's answer.
  const onWire = figures.outages.length > 0;
  const bondWords = { failover: onWire ? 'bond failover   ' : 'failover        ', failback: onWire ? 'bond failback   ' : 'failback        ' };
  const lines = [
    // What the user sees leads; the bond's own switch times follow.
    ...formatOutages(report),
    ...(report.kernel?.from === 'builder' ? [`kernel          the builder's Debian ${report.kernel.version}, as ${report.kernel.reason}`] : []),
    `boot to ready   ${value(figures.bootToReadySeconds, 's').padEnd(14)} goal <= ${goals.bootToReadySeconds} s${mark(goalsMet.bootToReady)}`,
    ...(figures.bootFinishedSeconds === undefined ? [] : [`boot finished   ${figures.bootFinishedSeconds} s (first-boot work included; the switches are timed after it)`]),
    `${bondWords.failover}${value(figures.failoverMs, 'ms').padEnd(14)} goal <= ${goals.failoverMs} ms${mark(goalsMet.failover)}`,
    `${bondWords.failback}${value(figures.failbackMs, 'ms').padEnd(14)} goal <= ${goals.failbackMs} ms${mark(goalsMet.failback)}`,
  ];
  if (flapTimes.length) {
    const sorted = [...flapTimes].sort((a, b) => a - b);
    const median = sorted[Math.floor(sorted.length / 2)];
    lines.push(`flap switches   ${flapTimes.length}: median ${median} ms, min ${sorted[0]} ms, max ${sorted.at(-1)} ms`);
  }
  if (figures.reenslaveMs !== null) lines.push(`re-enslave      ${figures.reenslaveMs} ms after the backup NIC was plugged back in`);
  if (figures.uplink) lines.unshift(...formatUplink(figures.uplink));
  return lines.join('\n');
}

/** The uplink scenario's figures, as the internet saw each failure and recovery. */
export function formatUplink(uplink: UplinkFigures): string[] {
  const ms = (n: number | null | undefined) => (n === null || n === undefined ? 'never' : `${n} ms`);
  const row = (what: string, o: SwitchOutageFigure | undefined, goalMs: number) => {
    if (!o) return [];
    const worst = o.inboundMs === null || o.outboundMs === null ? null : Math.max(o.inboundMs, o.outboundMs);
    return [`${what.padEnd(30)} inbound ${ms(o.inboundMs).padEnd(9)} outbound ${ms(o.outboundMs).padEnd(9)} goal <= ${goalMs / 1000} s${worst === null ? '' : worst <= goalMs ? '  (goal met)' : '  (goal MISSED)'}`];
  };
  const lines = [
    ...row('main WAN cut -> via backup', uplink.wanCut, uplinkGoals.detectAndSwitchMs),
    ...row('main WAN back -> via main', uplink.wanBack, uplinkGoals.backMs),
    ...row('main router hung -> backup', uplink.hang, uplinkGoals.detectAndSwitchMs),
    ...row('main router back -> main', uplink.unhang, uplinkGoals.backMs),
  ];
  if (uplink.loss) lines.push(`${`${uplink.loss.percent}% loss, ${uplink.loss.seconds} s`.padEnd(30)} ${uplink.loss.switches} switches (goal: none)`);
  if (uplink.probeBytesPerSecond) {
    const rates = Object.entries(uplink.probeBytesPerSecond).map(([slave, rate]) => `${slave} ${rate} B/s`).join(', ');
    lines.push(`${'probe traffic'.padEnd(30)} ${rates} (goal < ${uplinkGoals.probeBytesPerSecond} B/s each)`);
  }
  return lines;
}

export function formatVerdict(report: BootReport): string {
  const failed = report.checks.find((c) => !c.ok);
  if (report.verdict === 'pass') return `PASS: ${report.checks.length} checks passed`;
  if (failed) return `FAIL: ${failed.name}: ${failed.detail}`;
  return `FAIL: ${report.error?.split('\n')[0] ?? 'unknown error'}`;
}
