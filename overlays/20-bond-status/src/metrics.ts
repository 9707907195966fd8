/**
 * GET /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * node_bonding_slaves and node_bonding_active keep node_exporter's names, labels and meaning
 * (collector/bonding_linux.go): configured slaves, and slaves whose MII status is "up" -- NOT the
 * active slave of active-backup, which is what pibond_bond_active_slave is for. Dashboards built for
 * node_exporter thus work unchanged; the pibond_ series add what node_exporter lacks.
 *
 * The pibond_uplink_ series come from pibond-uplink.service's report (uplinks.ts) and are absent
 * without uplink tracking. pibond_uplink_up has no sample while an uplink's state is unknown (before
 * its first good round, or for `down` failed ones): a 0 there would raise the alert meant for an
 * uplink found down. Counters are the uplink service's own, since it started.
 */
import type { BondMonitor } from './monitor.ts';
import type { DecisionReason } from './uplinks.ts';

export const metricsContentType = 'text/plain; version=0.0.4; charset=utf-8';

interface Family {
  name: string;
  help: string;
  type: 'gauge' | 'counter';
  samples: { labels: Record<string, string>; value: number }[];
}

export function renderMetrics(monitor: BondMonitor): string {
  const family = (name: string, type: Family['type'], help: string): Family => ({ name, type, help, samples: [] });
  const slavesTotal = family('node_bonding_slaves', 'gauge', 'Number of configured slaves per bonding interface.');
  const slavesUp = family('node_bonding_active', 'gauge', 'Number of active slaves per bonding interface.');
  const activeSlave = family('pibond_bond_active_slave', 'gauge', 'Whether this slave is the one the bond currently sends through (1) or not (0).');
  const miiUp = family('pibond_bond_slave_mii_up', 'gauge', "Whether the slave's MII status is up (1) or not (0).");
  const linkFailures = family('pibond_bond_slave_link_failures_total', 'counter', "Link failures the kernel counted for this slave since it was enslaved.");
  const failovers = family('pibond_bond_failovers_total', 'counter', 'Changes of active slave seen since the service started.');
  const sinceFailover = family('pibond_bond_seconds_since_last_failover', 'gauge', 'Seconds since the last change of active slave; absent until the first one.');
  const lastHeal = family('pibond_bond_last_heal_seconds', 'gauge', "Seconds from the last failover until the gateway answered on the new segment (pibond-heal); absent until one healed.");
  const uplinkUp = family('pibond_uplink_up', 'gauge', "Whether the slave's uplink is up (1) or down (0), as pibond-uplink tracks it through that slave; absent while unknown.");
  const probeRtt = family('pibond_uplink_probe_rtt_seconds', 'gauge', "Round-trip time of the target's first answer in the uplink's last probe round; absent when it did not answer.");
  const routerRtt = family('pibond_uplink_router_rtt_seconds', 'gauge', "Round-trip time of the router's ARP answer in the uplink's last probe round; absent when it did not answer.");
  const decisions = family('pibond_uplink_decisions_total', 'counter', "Changes of the bond's primary pibond-uplink made, by reason, since it started.");
  const probeBytes = family('pibond_uplink_probe_bytes_total', 'counter', 'Bytes of probe traffic sent and received through the slave (Ethernet, without FCS) since pibond-uplink started.');

  for (const reading of monitor.bonds()) {
    const master = reading.ok ? reading.bond.name : reading.name;
    const history = monitor.history(master);
    failovers.samples.push({ labels: { master }, value: history.failovers });
    // No failover yet: no sample, rather than a made-up age that would read as "just happened".
    if (history.lastFailoverAt !== null) sinceFailover.samples.push({ labels: { master }, value: monitor.secondsSince(history.lastFailoverAt) });
    const healMs = history.lastHeal?.heal_ms;
    if (healMs !== undefined && healMs !== null) lastHeal.samples.push({ labels: { master }, value: healMs / 1000 });
    const tracking = monitor.uplinks(master);
    if (tracking !== null) {
      const bond = tracking.bond;
      for (const uplink of tracking.uplinks) {
        const labels = { bond, slave: uplink.slave };
        if (uplink.state !== 'unknown') uplinkUp.samples.push({ labels, value: uplink.state === 'up' ? 1 : 0 });
        if (uplink.router.rtt_ms !== null) routerRtt.samples.push({ labels, value: uplink.router.rtt_ms / 1000 });
        for (const target of uplink.targets) if (target.rtt_ms !== null) probeRtt.samples.push({ labels: { ...labels, target: target.address }, value: target.rtt_ms / 1000 });
        const bytes = tracking.probe_bytes[uplink.slave];
        if (bytes !== undefined) probeBytes.samples.push({ labels, value: bytes });
      }
      // Every reason, 0 included: a counter that appears only at its first increment hides that increment from rate().
      for (const reason of decisionReasons) decisions.samples.push({ labels: { bond, reason }, value: tracking.decision_counts[reason] ?? 0 });
    }
    if (!reading.ok) continue;

    const slaves = reading.bond.slaves;
    slavesTotal.samples.push({ labels: { master }, value: slaves.length });
    slavesUp.samples.push({ labels: { master }, value: slaves.filter((s) => s.mii_status === 'up').length });
    for (const slave of slaves) {
      const labels = { master, slave: slave.name };
      activeSlave.samples.push({ labels, value: slave.name === reading.bond.active_slave ? 1 : 0 });
      miiUp.samples.push({ labels, value: slave.mii_status === 'up' ? 1 : 0 });
      if (slave.link_failure_count !== null) linkFailures.samples.push({ labels, value: slave.link_failure_count });
    }
  }

  return [slavesTotal, slavesUp, activeSlave, miiUp, linkFailures, failovers, sinceFailover, lastHeal, uplinkUp, probeRtt, routerRtt, decisions, probeBytes]
    .map(renderFamily)
    .join('');
}

const decisionReasons: readonly DecisionReason[] = ['primary_healthy', 'primary_uplink_down', 'all_uplinks_down', 'primary_back'];

function renderFamily(family: Family): string {
  let text = `# HELP ${family.name} ${family.help}\n# TYPE ${family.name} ${family.type}\n`;
  for (const sample of family.samples) text += `${family.name}{${renderLabels(sample.labels)}} ${renderValue(sample.value)}\n`;
  return text;
}

function renderLabels(labels: Record<string, string>): string {
  return Object.entries(labels)
    .map(([name, value]) => `${name}="${value.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`)
    .join(',');
}

/** Microseconds at most: enough for a LAN round trip (0.00042 s), without fifteen digits of float noise. */
function renderValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(6).replace(/\.?0+$/, '');
}
