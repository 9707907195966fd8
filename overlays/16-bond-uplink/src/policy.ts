/**
 * Which slave the bond should prefer (its `primary` setting), from the uplinks' states:
 *   - the configured primary's uplink is not down: the primary ('primary_healthy', or 'primary_back'
 *     when another slave was preferred before);
 *   - the primary's uplink is down and another's is not: that one, an uplink known up before one
 *     not yet known, then in the slaves' order ('primary_uplink_down'). A backup is no candidate
 *     while its last round failed (both lines cut at once: the primary is down first, and the
 *     backup, failing too, must not be tried for a moment), before its first round has ended, or
 *     while it has no carrier;
 *   - every uplink is down: the primary ('all_uplinks_down'): no backup would do better, and the
 *     primary's link is the one people expect in use.
 * Carrier stays the kernel's business: a preferred slave without link is not made active by the bond.
 *
 * Pure, like the tracker: the service applies the decision and records it with its detail, a
 * sentence for people, e.g. "eth0's uplink is down (router 192.168.1.1 answers, none of 1.1.1.1,
 * 8.8.8.8 did in 3 rounds); eth1's is up".
 */
import type { DecisionReason, UplinkReport, UplinkState } from './report.ts';

export interface Decision {
  /** The slave the bond should prefer: its primary setting. */
  preferred: string;
  reason: DecisionReason;
  /** One sentence for people: why. */
  detail: string;
}

/**
 * `uplinks` holds the trackers' reports (a slave without one counts as unknown); `previous` is the
 * slave the bond preferred before this decision (null at start).
 */
export function decide(
  primary: string,
  slaves: readonly string[],
  uplinks: readonly UplinkReport[],
  previous: string | null = null,
  /** Whether a slave has carrier now: one without is no candidate. */
  hasCarrier: (slave: string) => boolean = () => true,
): Decision {
  const bySlave = new Map(uplinks.map((uplink) => [uplink.slave, uplink]));
  const state = (slave: string): UplinkState => bySlave.get(slave)?.state ?? 'unknown';
  const primaryUplink = bySlave.get(primary);

  // A down primary whose last rounds were good is coming back: no time to leave it for a backup
  // (both lines back at once would otherwise put the bond on whichever recovered first, then back).
  // The bond stays where it is until the primary counts as up again.
  if (state(primary) === 'down' && (primaryUplink?.streak ?? 0) > 0 && (previous === null || previous === primary)) {
    return { preferred: primary, reason: 'all_uplinks_down', detail: `${primary}'s uplink is coming back (${count(primaryUplink?.streak ?? 0, 'good round')} in a row): it stays preferred` };
  }

  if (state(primary) !== 'down') {
    if (previous !== null && previous !== primary) {
      const back = primaryUplink?.state === 'up' ? `is up again${primaryUplink.streak > 0 ? ` (${count(primaryUplink.streak, 'good round')} in a row)` : ''}` : `is no longer known to be down (${notYet(primaryUplink)})`;
      return { preferred: primary, reason: 'primary_back', detail: `${primary}'s uplink ${back}: back from ${previous} to the primary` };
    }
    const standing = primaryUplink?.state === 'up' ? 'is up' : `is not known yet (${notYet(primaryUplink)})`;
    return { preferred: primary, reason: 'primary_healthy', detail: `${primary}'s uplink ${standing}` };
  }

  const backups = slaves.filter((slave) => {
    const uplink = bySlave.get(slave);
    // Not one round ended yet (its helper still starting) is not "unknown, usable": it is not known at all.
    return slave !== primary && uplink !== undefined && uplink.last_round !== null && uplink.state !== 'down' && uplink.streak >= 0 && hasCarrier(slave);
  });
  const backup = backups.find((slave) => state(slave) === 'up') ?? backups[0];
  if (backup !== undefined) {
    const theirs = state(backup) === 'up' ? 'up' : `not known to be down (${notYet(bySlave.get(backup))})`;
    return { preferred: backup, reason: 'primary_uplink_down', detail: `${primary}'s uplink is down (${downBecause(primaryUplink)}); ${backup}'s is ${theirs}` };
  }

  const each = slaves.map((slave) => `${slave}: ${hasCarrier(slave) ? (state(slave) === 'down' ? downBecause(bySlave.get(slave)) : bySlave.get(slave)?.last_round == null ? 'no round ended yet' : 'failing') : 'no carrier'}`).join('; ');
  return { preferred: primary, reason: 'all_uplinks_down', detail: `no uplink is better (${each}), so the primary ${primary} stays preferred` };
}

/** Why a down uplink is down, from its last rounds. */
function downBecause(uplink: UplinkReport | undefined): string {
  if (uplink === undefined) return 'no report';
  const router = uplink.router.address === null ? 'the router' : `router ${uplink.router.address}`;
  // Down, yet its last rounds were good: it is on its way back, short of `up` good rounds.
  if (uplink.streak > 0) return `${count(uplink.streak, 'good round')} in a row so far, not yet enough to count it up again`;
  const failed = uplink.streak < 0 ? ` in ${count(-uplink.streak, 'round')}` : '';
  if (uplink.cause === 'router') return `${router} did not answer${failed}`;
  const all = uplink.targets.map((target) => target.address);
  const answered = uplink.targets.filter((target) => target.rtt_ms !== null).map((target) => target.address);
  const targets = all.length === 0 ? 'the targets' : all.join(', ');
  if (answered.length === 0) return `${router} answers, none of ${targets} did${failed}`;
  return `${router} answers, only ${answered.join(', ')} of ${targets} did in the last round`;
}

/** Why an uplink that is not down is not known to be up: its note, or no round yet. */
function notYet(uplink: UplinkReport | undefined): string {
  if (uplink !== undefined && uplink.note !== null) return uplink.note;
  return uplink === undefined || uplink.last_round === null ? 'no round has ended' : 'no verdict yet';
}

function count(n: number, noun: string): string {
  return n === 1 ? `1 ${noun}` : `${n} ${noun}s`;
}
