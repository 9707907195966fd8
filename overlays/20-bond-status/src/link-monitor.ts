/**
 * How the kernel watches a bond's links, in words: the MII monitor (carrier, every miimon ms) or the
 * ARP monitor (ARP probes to targets, every arp_interval ms). A bond on the ARP monitor has miimon 0,
 * so "polled every 0 ms" (or "?") would tell an operator nothing, or something false.
 *
 * Used by the terminal command and, as its source text, by the page's script: it must stay one
 * self-contained function over plain values (no imports, no helpers) so both say the same thing.
 */
export interface LinkMonitorSettings {
  miimon_ms?: number | null;
  arp_interval_ms?: number | null;
  arp_targets?: string[];
}

export function describeLinkMonitor(bond: LinkMonitorSettings): string {
  const parts = [];
  if (bond.miimon_ms) parts.push('MII polled every ' + bond.miimon_ms + ' ms');
  if (bond.arp_interval_ms) {
    const targets = bond.arp_targets ?? [];
    parts.push('ARP probes every ' + bond.arp_interval_ms + ' ms to ' + (targets.length > 0 ? targets.join(', ') : 'no target'));
  }
  if (parts.length > 0) return parts.join('; ');
  // Both 0: the kernel does not watch the links at all. Both unknown: an old kernel left the lines out.
  return bond.miimon_ms === 0 || bond.arp_interval_ms === 0 ? 'no link monitoring (miimon and arp_interval are 0)' : 'link monitoring unknown';
}
