/**
 * What pibond-uplink.service reports in /run/pibond-uplink/uplinks.json, rewritten (temp file and
 * rename) after every probe round. bond-status reads it (overlays/20-bond-status/src/uplinks.ts);
 * a missing or broken file means "no uplink tracking" (the unit may be off or not installed).
 */

/** up/down by the tracker's hysteresis; unknown until decided, or when the uplink cannot be probed. */
export type UplinkState = 'up' | 'down' | 'unknown';

/** Why the bond's active slave is what it is, as the tracker last decided. */
export type DecisionReason =
  /** The configured primary's uplink is not known to be down: the kernel's choice (link) stands. */
  | 'primary_healthy'
  /** The primary's uplink is down and the backup's is not: the backup was made the bond's primary. */
  | 'primary_uplink_down'
  /** Both uplinks are down: stay on (or go back to) the configured primary. */
  | 'all_uplinks_down'
  /** The primary's uplink has been healthy for `up` rounds: the configured primary is primary again. */
  | 'primary_back';

export interface ProbeAnswer {
  /** An IPv4 address: the router (ARP) or a target (ICMP echo). */
  address: string;
  /** Round-trip time of the first answer; null when none came within the timeout. */
  rtt_ms: number | null;
}

export interface UplinkReport {
  /** The bond's slave this uplink goes through. */
  slave: string;
  state: UplinkState;
  /** When the state last changed, ISO-8601. */
  since: string;
  /** down: the router itself did not answer (hung or gone), or it did and the internet did not (line). */
  cause: 'router' | 'line' | null;
  /** Why it cannot be probed now (no address on that router's subnet known yet, no carrier...); null when it can. */
  note: string | null;
  /** The source address the probes use on this router's LAN, and the router's address and MAC. */
  source: string | null;
  router: { address: string | null; mac: string | null; rtt_ms: number | null };
  /** The last round's answers, one per target. */
  targets: ProbeAnswer[];
  /** When the last round ended, ISO-8601; null before the first. */
  last_round: string | null;
  /** Rounds in a row that succeeded (positive) or failed (negative). */
  streak: number;
  rounds: { ok: number; failed: number };
}

export interface DecisionRecord {
  time: string;
  reason: DecisionReason;
  /** The bond's primary setting before and after (the slave the bond prefers). */
  from: string | null;
  to: string;
  /** One sentence for people, e.g. "eth0: 3 rounds without an answer from 1.1.1.1, 8.8.8.8". */
  detail: string;
}

export interface UplinksFile {
  bond: string;
  /** The configured primary (bond.primary in the definition). */
  primary: string;
  /** What the bond prefers now (/sys/class/net/BOND/bonding/primary). */
  preferred: string | null;
  /** The last decision's reason: why the active slave is what it is. */
  reason: DecisionReason;
  targets: string[];
  uplinks: UplinkReport[];
  /** The last decisions that changed the bond's primary, oldest first (at most 50). */
  decisions: DecisionRecord[];
  /** Decisions that changed the bond's primary, per reason, since the service started. */
  decision_counts: Partial<Record<DecisionReason, number>>;
  /** Bytes of probe traffic sent and received on each slave since the service started. */
  probe_bytes: Record<string, number>;
  updated: string;
}
