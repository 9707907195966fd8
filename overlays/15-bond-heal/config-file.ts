/**
 * The healer's configuration file, apart from render.ts so that a device program can render it
 * too (overlays/05-card rewrites it when a card's settings change the addressing) without bundling
 * render.ts's build-time imports.
 */
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile } from '../../scripts/lib/overlay.ts';
import type { HealConfigFile } from './src/config.ts';

export const configPath = 'etc/pibond/bond-heal.json';
export const runtimeDirectory = '/run/pibond-heal';
/** pibond-dhcp-prelease.service's RuntimeDirectory (render.ts: preleaseScript). */
export const preleaseDirectory = '/run/pibond-dhcp-prelease';

/** The healer's configuration; it says whether addressing is DHCP, which a card's settings may change. */
export function healConfigFile(def: Definition): OverlayFile {
  const addressing = def.network.addressing;
  const gateways: Record<string, string> = {};
  for (const slave of def.bond.slaves) if (slave.gateway !== undefined) gateways[slave.name] = slave.gateway;
  const config: HealConfigFile = {
    bond: def.bond.name,
    dhcp: addressing.method === 'dhcp',
    gateways,
    answerWithinMs: 300,
    giveUpAfterMs: 30_000,
    // Only ifupdown's dhclient takes the bond's addresses as it finds them (render.ts: renewRows).
    reuseLeases: def.network.stack === 'ifupdown',
    ...(def.network.stack === 'ifupdown' ? { preleaseDirectory } : {}),
    runtime_directory: runtimeDirectory,
  };
  return { path: configPath, content: `${JSON.stringify(config, null, 2)}\n`, mode: 0o644 };
}
