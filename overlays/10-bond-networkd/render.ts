/**
 * The bond for systemd-networkd (network.stack: networkd), rendered from the definition: the bond
 * as a .netdev, its addressing in its own .network, and one .network per slave that names the
 * bond. networkd is part of bookworm's systemd but not enabled: the links below enable it as
 * `systemctl enable systemd-networkd` would.
 *
 * Pitfalls this form avoids (../shared/research/next-wave.md, section 3):
 * - PrimarySlave= is a boolean in the primary slave's own .network [Network] section; on the
 *   bond's .network it is silently ignored (systemd#5579, openmediavault#604);
 * - it is not applied to a slave matched by MAC (systemd#27432, open in 252): slaves are matched by
 *   Name=, and a slave pinned by MAC gets that name from its .link first (overlays/09-bond-links);
 * - systemd-networkd-wait-online waits for every managed link, so an unplugged backup would hold
 *   network-online.target for two minutes: the slaves are not required for online, the bond is.
 * networkd enslaves a NIC that appears later (a USB NIC plugged back in) by itself: no udev rule.
 */
import { isIP } from 'node:net';
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile, OverlayLink } from '../../scripts/lib/overlay.ts';

type Bond = Definition['bond'];

const unitDir = '/lib/systemd/system';

/** `systemctl enable systemd-networkd.service`, its Also= units and its alias. */
export const networkdEnabled: OverlayLink[] = [
  { path: 'etc/systemd/system/multi-user.target.wants/systemd-networkd.service', target: `${unitDir}/systemd-networkd.service` },
  { path: 'etc/systemd/system/sockets.target.wants/systemd-networkd.socket', target: `${unitDir}/systemd-networkd.socket` },
  { path: 'etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service', target: `${unitDir}/systemd-networkd-wait-online.service` },
  { path: 'etc/systemd/system/sysinit.target.wants/systemd-network-generator.service', target: `${unitDir}/systemd-network-generator.service` },
  { path: 'etc/systemd/system/dbus-org.freedesktop.network1.service', target: `${unitDir}/systemd-networkd.service` },
];

export async function render(def: Definition): Promise<(OverlayFile | OverlayLink)[]> {
  if (def.network.stack !== 'networkd') return Promise.resolve([]);
  const { bond } = def;
  return Promise.resolve([
    { path: `etc/systemd/network/20-pibond-${bond.name}.netdev`, content: netdev(def), mode: 0o644 },
    ...addressingFiles(def),
    ...bond.slaves.map((slave) => ({
      path: `etc/systemd/network/20-pibond-${bond.name}-${slave.name}.network`,
      content: slaveNetwork(bond, slave.name),
      mode: 0o644,
    })),
    ...networkdEnabled,
  ]);
}

/** The file that carries the bond's addressing; a card's settings (overlays/05-card) rewrite it at first boot. */
export function addressingFiles(def: Definition): OverlayFile[] {
  return [{ path: `etc/systemd/network/20-pibond-${def.bond.name}.network`, content: bondNetwork(def), mode: 0o644 }];
}

function netdev(def: Definition): string {
  const { bond } = def;
  const arp = bond.arp_interval > 0;
  return lines([
    `# Written by pibond from the image definition "${def.name}": change the definition and rebuild.`,
    `# ${bond.name} (${bond.mode}) over ${bond.slaves.map((s) => s.name).join(', ')}; ${bond.primary} is the primary (PrimarySlave= in its .network).`,
    '[NetDev]',
    `Name=${bond.name}`,
    'Kind=bond',
    // Without it networkd gives the bond a MAC of its own, made from the machine-id; "none" leaves
    // the kernel's, which the bonding driver replaces with the first slave's, as with ifupdown.
    'MACAddress=none',
    '',
    '[Bond]',
    `Mode=${bond.mode}`,
    `PrimaryReselectPolicy=${bond.primary_reselect}`,
    `MIIMonitorSec=${bond.miimon}ms`,
    ...(bond.updelay === 0 ? [] : [`UpDelaySec=${bond.updelay}ms`]),
    ...(bond.downdelay === 0 ? [] : [`DownDelaySec=${bond.downdelay}ms`]),
    ...(bond.fail_over_mac === 'none' ? [] : [`FailOverMACPolicy=${bond.fail_over_mac}`]),
    ...(arp ? [`ARPIntervalSec=${bond.arp_interval}ms`, `ARPIPTargets=${bond.arp_ip_target.join(' ')}`] : []),
    ...(arp && bond.arp_validate !== 'none' ? [`ARPValidate=${bond.arp_validate}`] : []),
  ]);
}

function bondNetwork(def: Definition): string {
  const { bond } = def;
  const addressing = def.network.addressing;
  const network =
    addressing.method === 'dhcp'
      ? ['DHCP=ipv4']
      : [
          `Address=${addressing.address}`,
          ...(addressing.gateway === undefined ? [] : [`Gateway=${addressing.gateway}`]),
          ...addressing.dns.map((server) => `DNS=${server}`),
        ];
  return lines([
    `# Written by pibond: ${bond.name}'s addressing (network.addressing: ${addressing.method}).`,
    '[Match]',
    `Name=${bond.name}`,
    '',
    '[Network]',
    ...network,
    ...(addressing.method === 'static' && isIP(addressing.address.split('/')[0] ?? '') === 6 ? ['IPv6AcceptRA=no'] : []),
  ]);
}

function slaveNetwork(bond: Bond, name: string): string {
  return lines([
    `# Written by pibond: ${name} is a slave of ${bond.name}${name === bond.primary ? ', its primary' : ''}.`,
    '[Match]',
    `Name=${name}`,
    '',
    '[Link]',
    // The bond is what has to be online; a slave without a cable is the case the bond is for.
    'RequiredForOnline=no',
    '',
    '[Network]',
    `Bond=${bond.name}`,
    ...(name === bond.primary ? ['PrimarySlave=yes'] : []),
  ]);
}

function lines(list: string[]): string {
  return `${list.join('\n')}\n`;
}
