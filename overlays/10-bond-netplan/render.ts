/**
 * The bond for netplan (network.stack: netplan), rendered to systemd-networkd as on Ubuntu Server:
 * one YAML file that netplan's generator turns into networkd's files at every boot.
 *
 * Pitfalls this form avoids (../shared/research/next-wave.md, section 2):
 * - `primary` must name an id under `ethernets:`, and that id is the slave's kernel name: a
 *   `match:`-based id would give a renderer a primary that no interface carries. A slave pinned by
 *   MAC is renamed by its .link first (overlays/09-bond-links), so the ids stay names, and
 *   networkd matches the primary by name (PrimarySlave= is not applied to a port matched by MAC,
 *   systemd#27432);
 * - `mii-monitor-interval` defaults to 0, which turns link monitoring off: it is always written;
 * - the intervals carry their unit ("100ms"): a bare number has meant seconds to one renderer and
 *   milliseconds to another;
 * - netplan warns about a YAML file that others may read (it can hold secrets): 0600.
 * Unlike ifupdown and the networkd stack, the bond's MAC is networkd's own (made from the
 * machine-id at first boot), not eth0's: netplan has no way to say "the kernel's".
 */
import { stringify } from 'yaml';
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile, OverlayLink } from '../../scripts/lib/overlay.ts';
import { networkdEnabled } from '../10-bond-networkd/render.ts';

export const netplanPath = 'etc/netplan/50-pibond.yaml';

export async function render(def: Definition): Promise<(OverlayFile | OverlayLink)[]> {
  if (def.network.stack !== 'netplan') return Promise.resolve([]);
  // netplan's generator also enables networkd when it writes for it; enabled here as well, so the
  // image does not depend on a generator's side effect.
  return Promise.resolve([...addressingFiles(def), ...networkdEnabled]);
}

/**
 * The one file, which also carries the addressing: a card's settings (overlays/05-card) rewrite it
 * at first boot. netplan's generator has run by then (at the very start of the boot), so the card's
 * service runs it again when it rewrote this file, before networkd starts.
 */
export function addressingFiles(def: Definition): OverlayFile[] {
  return [{ path: netplanPath, content: netplanYaml(def), mode: 0o600 }];
}

function netplanYaml(def: Definition): string {
  const { bond } = def;
  const addressing = def.network.addressing;
  const arp = bond.arp_interval > 0;
  const parameters = {
    mode: bond.mode,
    primary: bond.primary,
    'primary-reselect-policy': bond.primary_reselect,
    'mii-monitor-interval': `${bond.miimon}ms`,
    ...(bond.updelay === 0 ? {} : { 'up-delay': `${bond.updelay}ms` }),
    ...(bond.downdelay === 0 ? {} : { 'down-delay': `${bond.downdelay}ms` }),
    ...(bond.fail_over_mac === 'none' ? {} : { 'fail-over-mac-policy': bond.fail_over_mac }),
    ...(arp ? { 'arp-interval': `${bond.arp_interval}ms`, 'arp-ip-targets': bond.arp_ip_target } : {}),
    ...(arp && bond.arp_validate !== 'none' ? { 'arp-validate': bond.arp_validate } : {}),
  };
  const addressed =
    addressing.method === 'dhcp'
      ? { dhcp4: true }
      : {
          addresses: [addressing.address],
          ...(addressing.gateway === undefined ? {} : { routes: [{ to: 'default', via: addressing.gateway }] }),
          ...(addressing.dns.length === 0 ? {} : { nameservers: { addresses: addressing.dns } }),
        };
  const document = {
    network: {
      version: 2,
      renderer: 'networkd',
      ethernets: Object.fromEntries(bond.slaves.map((slave) => [slave.name, { dhcp4: false, dhcp6: false, optional: true }])),
      bonds: { [bond.name]: { interfaces: bond.slaves.map((slave) => slave.name), parameters, ...addressed } },
    },
  };
  const header = [
    `# Written by pibond from the image definition "${def.name}": change the definition and rebuild.`,
    `# ${bond.name} (${bond.mode}) over ${bond.slaves.map((s) => s.name).join(', ')}; ${bond.primary} is the primary.`,
  ];
  return `${header.join('\n')}\n${stringify(document, { lineWidth: 0 })}`;
}
