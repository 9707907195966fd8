/**
 * GET /metrics in the Prometheus text exposition format (version 0.0.4).
 *
 * node_bonding_slaves and node_bonding_active keep node_exporter's names, labels and meaning
 * (collector/bonding_linux.go): configured slaves, and slaves whose MII status is "up" -- NOT the
 * active slave of active-backup, which is what pibond_bond_active_slave is for. Dashboards built for
 * node_exporter thus work unchanged; the pibond_ series add what node_exporter lacks.
 */
import type { BondMonitor } from './monitor.ts';

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

  for (const reading of monitor.bonds()) {
    const master = reading.ok ? reading.bond.name : reading.name;
    const history = monitor.history(master);
    failovers.samples.push({ labels: { master }, value: history.failovers });
    // No failover yet: no sample, rather than a made-up age that would read as "just happened".
    if (history.lastFailoverAt !== null) sinceFailover.samples.push({ labels: { master }, value: monitor.secondsSince(history.lastFailoverAt) });
    const healMs = history.lastHeal?.heal_ms;
    if (healMs !== undefined && healMs !== null) lastHeal.samples.push({ labels: { master }, value: healMs / 1000 });
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

  return [slavesTotal, slavesUp, activeSlave, miiUp, linkFailures, failovers, sinceFailover, lastHeal].map(renderFamily).join('');
}

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

function renderValue(value: number): string {
  return Number.isInteger(value) ? String(value) : value.toFixed(3);
}
