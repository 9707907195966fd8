/**
 * Uplink tracking, as pibond-uplink.service reports it in /run/pibond-uplink/uplinks.json: whether
 * each slave's way to the internet works (probed through that slave), and why the bond prefers the
 * slave it does. That unit is privileged and this service is not, so the file is the whole
 * interface: read bounded, checked field by field, and a missing or broken file is simply "no
 * uplink tracking" (null): the unit may be off or not installed.
 *
 * Only the fields this service knows are copied over, so whatever else the file holds never reaches
 * the API. A record in one of its lists that does not check out (an uplink, a decision) is left
 * out, the rest still shows: a newer writer with one new value must not blank the whole page.
 */
import { isIP } from 'node:net';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { DecisionReason, DecisionRecord, ProbeAnswer, UplinkReport, UplinksFile, UplinkState } from '../../16-bond-uplink/src/report.ts';
import type { FailoverEvent } from './failover.ts';
import { readBounded } from './read-bonds.ts';

export type { DecisionReason, DecisionRecord, UplinkReport, UplinksFile, UplinkState };

export const uplinksFile = 'run/pibond-uplink/uplinks.json';

/** Two uplinks of eight targets and 50 decisions of ~250 bytes come to ~16 KiB, pretty-printed. */
const maxUplinksBytes = 32 * 1024;

/** More than any Pi has (readLimits.maxSlaves is 16) or the definition allows (8 targets). */
const maxUplinks = 16;
const maxTargets = 16;

/** /api/status shows this many of the file's last decisions (it holds up to 50): it is read every second. */
export const decisionsShown = 10;

const reasons: readonly DecisionReason[] = ['primary_healthy', 'primary_uplink_down', 'all_uplinks_down', 'primary_back'];
const states: readonly UplinkState[] = ['up', 'down', 'unknown'];

/**
 * A reader for the monitor, which polls 20 times a second while the file changes about once a
 * second: the text is read every time (a few kB from tmpfs), parsed and checked only when it changed.
 */
export function uplinksReader(root: string, everyMs = 0): () => UplinksFile | null {
  let lastText: string | null = null;
  let last: UplinksFile | null = null;
  let readAt = Number.NEGATIVE_INFINITY;
  return () => {
    const now = performance.now();
    if (now - readAt < everyMs) return last;
    readAt = now;
    const text = readUplinksText(root);
    if (text !== lastText) {
      lastText = text;
      last = text === null ? null : parseUplinks(text);
    }
    return last;
  };
}

export function readUplinks(root: string): UplinksFile | null {
  const text = readUplinksText(root);
  return text === null ? null : parseUplinks(text);
}

function readUplinksText(root: string): string | null {
  const read = readBounded(join(root, uplinksFile), maxUplinksBytes);
  // readBounded decodes byte for byte (latin1); a decision's detail may hold UTF-8.
  return read.ok ? Buffer.from(read.text, 'latin1').toString('utf8') : null;
}

export function parseUplinks(text: string): UplinksFile | null {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    return null;
  }
  if (!isObject(raw)) return null;
  const { bond, primary, preferred, reason, targets, uplinks, decisions, decision_counts, probe_bytes, updated } = raw;
  if (
    !isInterface(bond) ||
    !isInterface(primary) ||
    !(preferred === null || isInterface(preferred)) ||
    !isReason(reason) ||
    !Array.isArray(targets) ||
    targets.length > maxTargets ||
    !targets.every(isIPv4) ||
    !Array.isArray(uplinks) ||
    uplinks.length > maxUplinks ||
    !Array.isArray(decisions) ||
    !isObject(decision_counts) ||
    !isObject(probe_bytes) ||
    !isTime(updated)
  ) {
    return null;
  }
  const counts: Partial<Record<DecisionReason, number>> = {};
  for (const key of reasons) if (isCount(decision_counts[key])) counts[key] = decision_counts[key];
  const checkedUplinks = uplinks.map(checkUplink).filter((uplink) => uplink !== null);
  const bytes: Record<string, number> = {};
  // Only the slaves reported on: each is a metric series, and the file's other keys are not ours to multiply.
  for (const { slave } of checkedUplinks) if (isCount(probe_bytes[slave])) bytes[slave] = probe_bytes[slave];
  return {
    bond,
    primary,
    preferred,
    reason,
    targets: [...targets],
    uplinks: checkedUplinks,
    decisions: decisions.map(checkDecision).filter((decision) => decision !== null),
    decision_counts: counts,
    probe_bytes: bytes,
    updated,
  };
}

function checkUplink(value: unknown): UplinkReport | null {
  if (!isObject(value)) return null;
  const { slave, state, since, cause, note, source, router, targets, last_round, streak, rounds } = value;
  if (
    !isInterface(slave) ||
    !states.includes(state as UplinkState) ||
    !isTime(since) ||
    !(cause === null || cause === 'router' || cause === 'line') ||
    !(note === null || typeof note === 'string') ||
    !(source === null || isIPv4(source)) ||
    !isObject(router) ||
    !(router.address === null || isIPv4(router.address)) ||
    !(router.mac === null || isMac(router.mac)) ||
    !isRtt(router.rtt_ms) ||
    !Array.isArray(targets) ||
    targets.length > maxTargets ||
    !(last_round === null || isTime(last_round)) ||
    !(typeof streak === 'number' && Number.isSafeInteger(streak)) ||
    !isObject(rounds) ||
    !isCount(rounds.ok) ||
    !isCount(rounds.failed)
  ) {
    return null;
  }
  const answers: ProbeAnswer[] = [];
  for (const target of targets) {
    if (!isObject(target) || !isIPv4(target.address) || !isRtt(target.rtt_ms)) return null;
    answers.push({ address: target.address, rtt_ms: target.rtt_ms });
  }
  return {
    slave,
    state: state as UplinkState,
    since,
    cause,
    note,
    source,
    router: { address: router.address, mac: router.mac, rtt_ms: router.rtt_ms },
    targets: answers,
    last_round,
    streak,
    rounds: { ok: rounds.ok, failed: rounds.failed },
  };
}

function checkDecision(value: unknown): DecisionRecord | null {
  if (!isObject(value)) return null;
  const { time, reason, from, to, detail } = value;
  if (!isTime(time) || !isReason(reason) || !(from === null || isInterface(from)) || !isInterface(to) || typeof detail !== 'string') return null;
  return { time, reason, from, to, detail };
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** As the kernel names interfaces (IFNAMSIZ): these become metric labels and page text. */
function isInterface(value: unknown): value is string {
  return typeof value === 'string' && /^[^\s/:]{1,15}$/.test(value);
}

function isIPv4(value: unknown): value is string {
  return typeof value === 'string' && isIP(value) === 4;
}

function isMac(value: unknown): value is string {
  return typeof value === 'string' && /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i.test(value);
}

function isTime(value: unknown): value is string {
  return typeof value === 'string' && !Number.isNaN(Date.parse(value));
}

function isReason(value: unknown): value is DecisionReason {
  return reasons.includes(value as DecisionReason);
}

function isRtt(value: unknown): value is number | null {
  return value === null || (typeof value === 'number' && Number.isFinite(value) && value >= 0);
}

function isCount(value: unknown): value is number {
  return typeof value === 'number' && Number.isSafeInteger(value) && value >= 0;
}

/** What /api/status shows: the file as checked, with only its last few decisions. */
export function uplinksView(file: UplinksFile): UplinksFile {
  return file.decisions.length <= decisionsShown ? file : { ...file, decisions: file.decisions.slice(-decisionsShown) };
}

/** An uplink's state changed (the tracker's hysteresis decided). */
export interface UplinkStateEvent {
  type: 'uplink';
  bond: string;
  slave: string;
  state: UplinkState;
  /** The state it had when last read; null for an uplink not reported before. */
  previous: UplinkState | null;
  cause: UplinkReport['cause'];
  note: string | null;
  /** When the tracker changed it, ISO-8601. */
  since: string;
}

/** pibond-uplink changed the bond's primary. */
export interface DecisionEvent extends DecisionRecord {
  type: 'decision';
  bond: string;
}

export type UplinkEvent = UplinkStateEvent | DecisionEvent;

export function decisionKey(bond: string, decision: DecisionRecord): string {
  return `${bond} ${decision.time} ${decision.reason} ${decision.from ?? ''} ${decision.to}`;
}

/**
 * The uplinks whose state differs between two reads of the file. A file that went away and came
 * back is compared with what it said last: an uplink that went down meanwhile is news.
 */
export function uplinkChanges(before: UplinksFile | null, after: UplinksFile): UplinkStateEvent[] {
  const events: UplinkStateEvent[] = [];
  for (const uplink of after.uplinks) {
    const previous = before?.bond === after.bond ? (before.uplinks.find((u) => u.slave === uplink.slave)?.state ?? null) : null;
    if (previous === uplink.state) continue;
    // A first sight of an uplink whose state is not known yet tells nobody anything.
    if (previous === null && uplink.state === 'unknown') continue;
    events.push({ type: 'uplink', bond: after.bond, slave: uplink.slave, state: uplink.state, previous, cause: uplink.cause, note: uplink.note, since: uplink.since });
  }
  return events;
}

/**
 * A failover the uplink service made: it sets the bond's primary and the kernel (primary_reselect)
 * switches at once, with both links up, so detectFailovers calls it `manual`. A manual failover to
 * the slave a decision made the primary, seen from 1 s before the decision's time (it is stamped
 * around the sysfs write) to 3 s after it, is that decision's. Any other cause is the kernel's own,
 * and the link explains it.
 */
export const decisionMatchWindowMs = { before: 1000, after: 3000 } as const;

export function decisionMatches(event: FailoverEvent, bond: string, decision: DecisionRecord): boolean {
  if (event.cause !== 'manual' || event.bond !== bond || event.to !== decision.to) return false;
  const lag = Date.parse(event.time) - Date.parse(decision.time);
  return lag >= -decisionMatchWindowMs.before && lag <= decisionMatchWindowMs.after;
}
