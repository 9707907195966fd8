/**
 * The uplink tracker's generated files: its bundle and its configuration from the definition's
 * `uplink:` section. The unit and the probe helper are static, in rootfs/; the unit starts only
 * when the configuration exists (ConditionPathExists), so `uplink.enabled: false` renders nothing.
 */
import { isIP } from 'node:net';
import { bundleDeviceProgram } from '../../scripts/lib/bundle.ts';
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile } from '../../scripts/lib/overlay.ts';
import type { UplinkConfigFile } from './src/config.ts';

export const bundlePath = 'usr/lib/pibond/bond-uplink.js';
export const configPath = 'etc/pibond/bond-uplink.json';
export const runtimeDirectory = '/run/pibond-uplink';

export async function render(def: Definition): Promise<OverlayFile[]> {
  if (!def.uplink.enabled) return [];
  return [
    { path: bundlePath, content: await bundle(), mode: 0o644 },
    { path: configPath, content: `${JSON.stringify(uplinkConfig(def), null, 2)}\n`, mode: 0o644 },
  ];
}

/** /etc/pibond/bond-uplink.json for a definition: the definition's names, in milliseconds where it says so. */
export function uplinkConfig(def: Definition): UplinkConfigFile {
  const { bond, uplink } = def;
  // The probes ask for the router by ARP: an IPv6 gateway cannot be used, and the service learns
  // that slave's router from the bond's IPv4 default route instead.
  const gateways: Record<string, string> = {};
  for (const slave of bond.slaves) if (slave.gateway !== undefined && isIP(slave.gateway) === 4) gateways[slave.name] = slave.gateway;
  return {
    bond: bond.name,
    primary: bond.primary,
    slaves: bond.slaves.map((slave) => slave.name),
    gateways,
    targets: uplink.targets,
    method: uplink.method,
    count: uplink.count,
    reliability: uplink.reliability,
    interval_ms: uplink.interval,
    failure_interval_ms: uplink.failure_interval,
    timeout_ms: uplink.timeout,
    down: uplink.down,
    up: uplink.up,
    runtime_directory: runtimeDirectory,
  };
}

/** The program, bundled for the device (scripts/lib/bundle.ts). */
export function bundle(): Promise<Buffer> {
  return bundleDeviceProgram(import.meta.dirname, 'bond-uplink');
}
