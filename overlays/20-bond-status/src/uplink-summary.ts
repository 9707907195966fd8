/**
 * Uplink tracking in words: one row per uplink, and one sentence on why the active slave is the one
 * it is. Used by the terminal command and, as their source text, by the page's script: like
 * describeLinkMonitor, each must stay one self-contained function over plain values (no imports,
 * no helpers, no types at run time) so both say the same thing.
 */

export interface UplinkSummaryInput {
  slave: string;
  state: string;
  cause: string | null;
  note: string | null;
  router: { rtt_ms: number | null };
  targets: { rtt_ms: number | null }[];
  last_round: string | null;
}

/** SLAVE, UPLINK, ROUTER, TARGETS, NOTE: the cells of one uplink's row. */
export function uplinkCells(uplink: UplinkSummaryInput): string[] {
  const causes: Record<string, string> = { router: 'the router does not answer', line: 'the router answers, the internet does not' };
  const cause = uplink.cause === null ? undefined : causes[uplink.cause];
  const state = uplink.state === 'down' ? 'DOWN' + (cause ? ' (' + cause + ')' : '') : uplink.state;
  if (uplink.last_round === null) return [uplink.slave, state, 'not probed yet', '-', uplink.note ?? ''];
  const rtt = uplink.router.rtt_ms;
  const router = rtt === null ? 'no answer' : Math.round(rtt * 100) / 100 + ' ms';
  const answered = uplink.targets.filter((target) => target.rtt_ms !== null).length;
  const targets = answered + ' of ' + uplink.targets.length + ' answered';
  return [uplink.slave, state, router, targets, uplink.note ?? ''];
}

export interface ActiveSlaveInput {
  active_slave?: string | null;
  slaves?: { name: string; mii_status: string | null }[];
  uplinks: {
    primary: string;
    preferred: string | null;
    reason: string;
    decisions: { reason: string; to: string; detail: string }[];
  } | null;
}

/** Why the active slave is what it is, by pibond-uplink's last decision and the kernel's links; null without uplink tracking. */
export function explainActiveSlave(bond: ActiveSlaveInput): string | null {
  const tracking = bond.uplinks;
  if (!tracking) return null;
  const active = bond.active_slave ?? null;
  const preferred = tracking.preferred ?? tracking.primary;
  if (active === null) return 'no slave is active: no link is up';
  if (active !== preferred) {
    const link = (bond.slaves ?? []).find((slave) => slave.name === preferred);
    // The uplink service prefers one slave; the kernel keeps another while the preferred one has no link.
    return link && link.mii_status !== 'up'
      ? active + ' is active: ' + preferred + ' is preferred but its link is ' + (link.mii_status ?? 'unknown')
      : active + ' is active, ' + preferred + ' is preferred: the bond has not switched (yet)';
  }
  const why: Record<string, string> = {
    primary_healthy: "the primary's uplink is not down",
    primary_back: "the primary's uplink is healthy again",
    primary_uplink_down: 'the uplink of the primary, ' + tracking.primary + ', is down',
    all_uplinks_down: 'every uplink is down, so the bond stays on the primary',
  };
  const last = tracking.decisions[tracking.decisions.length - 1];
  const detail = last && last.reason === tracking.reason && last.to === preferred && last.detail ? ' (' + last.detail + ')' : '';
  return active + ' is active: ' + (why[tracking.reason] ?? tracking.reason) + detail;
}
