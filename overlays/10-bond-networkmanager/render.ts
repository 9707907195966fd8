/**
 * The bond for NetworkManager (network.stack: networkmanager), as Raspberry Pi OS bookworm runs it:
 * keyfiles for NetworkManager 1.42, one for the bond with its addressing and one per slave.
 *
 * Pitfalls this form avoids (../shared/research/next-wave.md, section 1.2):
 * - NetworkManager ignores a keyfile that anyone but root may read or write: each is 0600 (the
 *   overlay's files are root's);
 * - 1.42 rejects the newer key names (controller=, port-type=, autoconnect-ports=): these use
 *   master=, slave-type= and autoconnect-slaves=;
 * - on a NIC that no profile matches (a replacement USB adapter) NetworkManager makes its own
 *   "Wired connection" with DHCP, outside the bond: no-auto-default=* stops that.
 * NetworkManager enslaves a NIC that appears later by itself (autoconnect): no udev rule.
 * The primary is written by name, which is the slave's name as the kernel has it (a slave pinned by
 * MAC is renamed by its .link before NetworkManager sees it: overlays/09-bond-links).
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile } from '../../scripts/lib/overlay.ts';

type Bond = Definition['bond'];

const connections = 'etc/NetworkManager/system-connections';

export async function render(def: Definition): Promise<OverlayFile[]> {
  if (def.network.stack !== 'networkmanager') return Promise.resolve([]);
  const { bond } = def;
  return Promise.resolve([
    ...addressingFiles(def),
    ...bond.slaves.map((slave) => ({ path: `${connections}/${slaveId(bond, slave.name)}.nmconnection`, content: slaveKeyfile(bond, slave.name), mode: 0o600 })),
    {
      path: 'etc/NetworkManager/conf.d/50-pibond.conf',
      content: lines([
        '# Written by pibond: a NIC that no profile matches stays unmanaged, instead of getting a',
        '# "Wired connection" with DHCP of its own beside the bond.',
        '[main]',
        'no-auto-default=*',
      ]),
      mode: 0o644,
    },
  ]);
}

/** The file that carries the bond's addressing; a card's settings (overlays/05-card) rewrite it at first boot. */
export function addressingFiles(def: Definition): OverlayFile[] {
  return [
    { path: `${connections}/${bondId(def.bond)}.nmconnection`, content: bondKeyfile(def), mode: 0o600 },
    { path: 'etc/NetworkManager/conf.d/60-pibond-dns.conf', content: dnsConf(def.network.addressing), mode: 0o644 },
  ];
}

export function bondId(bond: Bond): string {
  return `pibond-${bond.name}`;
}

function slaveId(bond: Bond, slave: string): string {
  return `pibond-${bond.name}-${slave}`;
}

/** A fixed UUID per profile id (NetworkManager would make one from the file's path otherwise). */
function uuidOf(id: string): string {
  const hex = createHash('sha256').update(`pibond NetworkManager profile ${id}`).digest('hex');
  // The variant and version bits of an RFC 9562 version 8 (custom) UUID.
  const variant = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16);
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`;
}

function bondKeyfile(def: Definition): string {
  const { bond } = def;
  const id = bondId(bond);
  return lines([
    `# Written by pibond from the image definition "${def.name}": change the definition and rebuild.`,
    `# ${bond.name} (${bond.mode}) over ${bond.slaves.map((s) => s.name).join(', ')}; ${bond.primary} is the primary.`,
    '[connection]',
    `id=${id}`,
    `uuid=${uuidOf(id)}`,
    'type=bond',
    `interface-name=${bond.name}`,
    'autoconnect=true',
    // Activating the bond brings its slaves' profiles up with it.
    'autoconnect-slaves=1',
    '',
    '[bond]',
    ...bondOptions(bond, bond.primary, ','),
    '',
    ...addressing(def.network.addressing),
  ]);
}

/**
 * The bond's options by the kernel's names, as `key=value`: a keyfile's [bond] lines, or joined by
 * commas into nmcli's bond.options (where the ARP targets are then separated by spaces).
 */
export function bondOptions(bond: Bond, primary: string, targetSeparator: ',' | ' '): string[] {
  const arp = bond.arp_interval > 0;
  return [
    `mode=${bond.mode}`,
    `primary=${primary}`,
    `primary_reselect=${bond.primary_reselect}`,
    `miimon=${bond.miimon}`,
    ...(bond.updelay === 0 ? [] : [`updelay=${bond.updelay}`]),
    ...(bond.downdelay === 0 ? [] : [`downdelay=${bond.downdelay}`]),
    ...(bond.fail_over_mac === 'none' ? [] : [`fail_over_mac=${bond.fail_over_mac}`]),
    ...(arp ? [`arp_interval=${bond.arp_interval}`, `arp_ip_target=${bond.arp_ip_target.join(targetSeparator)}`] : []),
    ...(arp && bond.arp_validate !== 'none' ? [`arp_validate=${bond.arp_validate}`] : []),
  ];
}

function addressing(addressing: Definition['network']['addressing']): string[] {
  if (addressing.method === 'dhcp') return ['[ipv4]', 'method=auto', '', '[ipv6]', 'method=auto'];
  const gateway = addressing.gateway === undefined ? '' : `,${addressing.gateway}`;
  const address = [`method=manual`, `address1=${addressing.address}${gateway}`];
  // As with ifupdown's static stanzas: the other family is left to the kernel's defaults, which for
  // IPv6 is SLAAC from the router's advertisements.
  if (isIP(addressing.address.split('/')[0] ?? '') === 6) return ['[ipv4]', 'method=disabled', '', '[ipv6]', ...address];
  return ['[ipv4]', ...address, '', '[ipv6]', 'method=auto'];
}

/**
 * Static name servers, of either family, in NetworkManager's global DNS configuration: a profile's
 * ipv4.dns takes IPv4 servers only and ipv6.dns IPv6 only, and a disabled family takes none. The
 * file is written with DHCP too, empty, so that a card switching to DHCP also drops the servers.
 */
function dnsConf(addressing: Definition['network']['addressing']): string {
  if (addressing.method === 'dhcp' || addressing.dns.length === 0) {
    return lines(['# Written by pibond: no static name servers (network.addressing); DHCP gives them.']);
  }
  return lines([
    "# Written by pibond from the definition's network.addressing.dns.",
    '[global-dns-domain-*]',
    `servers=${addressing.dns.join(',')}`,
  ]);
}

function slaveKeyfile(bond: Bond, name: string): string {
  const id = slaveId(bond, name);
  return lines([
    `# Written by pibond: ${name} is a slave of ${bond.name}${name === bond.primary ? ', its primary' : ''}.`,
    '[connection]',
    `id=${id}`,
    `uuid=${uuidOf(id)}`,
    'type=ethernet',
    `interface-name=${name}`,
    `master=${bond.name}`,
    'slave-type=bond',
    'autoconnect=true',
  ]);
}

function lines(list: string[]): string {
  return `${list.join('\n')}\n`;
}
