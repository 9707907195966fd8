/**
 * The bond for the ifupdown network stack (Debian's ifupdown + ifenslave), rendered from the
 * definition: /etc/network/interfaces and the udev rule that re-enslaves a NIC plugged in after
 * boot (the driver and the .link files are every stack's: overlays/09-bond-links).
 *
 * The interfaces file names the slaves on the bond itself (`bond-slaves eth0 eth1`) and gives them
 * no stanzas of their own, so one ifup of the bond creates it, enslaves both and only then
 * configures its address. Two forms were tried under QEMU and dropped:
 * - FACTS.md's form (`bond-slaves none` on the bond, `bond-master` on each slave, `allow-hotplug`
 *   slaves) raced: two of three boots came up with one slave missing;
 * - the same with `auto` slaves enslaved both, but with DHCP the bond's ifup runs first, without
 *   slaves or carrier: dhclient gave up after 60 s, the slaves joined at 90 s and bond0 never got
 *   an address. Listing the slaves first did not change that.
 * This form enslaved both slaves, eth0 active, with a lease by ~21 s, on every boot tried (npm test
 * boots it). A NIC plugged in after boot is enslaved by pibond-enslave@.service (udev).
 */
import { isIP } from 'node:net';
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile } from '../../scripts/lib/overlay.ts';

type Bond = Definition['bond'];
type Addressing = Definition['network']['addressing'];

export async function render(def: Definition): Promise<OverlayFile[]> {
  if (def.network.stack !== 'ifupdown') return [];
  return [
    ...addressingFiles(def),
    { path: 'etc/udev/rules.d/90-pibond-enslave.rules', content: enslaveRules(def.bond), mode: 0o644 },
    { path: 'etc/default/pibond-enslave', content: `# Written by pibond: the bond that pibond-enslave@.service adds slaves to.\nBOND=${def.bond.name}\n`, mode: 0o644 },
  ];
}

/**
 * The files that carry the bond's addressing; a card's settings (overlays/05-card) rewrite them at
 * first boot, before ifupdown reads them.
 */
export function addressingFiles(def: Definition): OverlayFile[] {
  const files: OverlayFile[] = [{ path: 'etc/network/interfaces', content: interfaces(def), mode: 0o644 }];
  const addressing = def.network.addressing;
  if (addressing.method === 'static' && addressing.dns.length > 0) {
    files.push({ path: 'etc/resolv.conf', content: resolvConf(addressing.dns), mode: 0o644 });
  }
  return files;
}

function interfaces(def: Definition): string {
  const { bond } = def;
  const options = bondOptions(bond);
  const slaves = bond.slaves.map((s) => s.name);
  const lines = [
    `# Written by pibond from the image definition "${def.name}": change the definition and rebuild.`,
    `# ${bond.name} (${bond.mode}) over ${slaves.join(', ')}; ${bond.primary} is the primary.`,
    '',
    'source /etc/network/interfaces.d/*',
    '',
    'auto lo',
    'iface lo inet loopback',
    '',
    `auto ${bond.name}`,
    ...bondStanza(bond.name, def.network.addressing),
    `    bond-slaves ${slaves.join(' ')}`,
    ...options,
  ];
  return `${lines.join('\n')}\n`;
}

function bondStanza(bond: string, addressing: Addressing): string[] {
  if (addressing.method === 'dhcp') return [`iface ${bond} inet dhcp`];
  const family = isIP(addressing.address.split('/')[0] ?? '') === 6 ? 'inet6' : 'inet';
  return [
    `iface ${bond} ${family} static`,
    `    address ${addressing.address}`,
    ...(addressing.gateway === undefined ? [] : [`    gateway ${addressing.gateway}`]),
  ];
}

/**
 * The bond-* options in the order of the verified form. The delays, fail_over_mac and the ARP
 * monitor appear only when they differ from the kernel's defaults, so the default image keeps
 * exactly the form that was proven over repeated boots.
 *
 * The ARP monitor's names are ifenslave 2.13's (bookworm, /etc/network/if-pre-up.d/ifenslave):
 * it writes arp_ip_target (each word added with "+"), then arp_interval, then miimon, so
 * `bond-miimon 0` comes after the ARP monitor is on and leaves it on; arp_validate after the mode.
 */
function bondOptions(bond: Bond): string[] {
  const arp = bond.arp_interval > 0;
  return [
    `    bond-mode ${bond.mode}`,
    `    bond-miimon ${bond.miimon}`,
    ...(arp ? [`    bond-arp-interval ${bond.arp_interval}`, `    bond-arp-ip-target ${bond.arp_ip_target.join(' ')}`] : []),
    ...(arp && bond.arp_validate !== 'none' ? [`    bond-arp-validate ${bond.arp_validate}`] : []),
    ...(bond.updelay === 0 ? [] : [`    bond-updelay ${bond.updelay}`]),
    ...(bond.downdelay === 0 ? [] : [`    bond-downdelay ${bond.downdelay}`]),
    ...(bond.fail_over_mac === 'none' ? [] : [`    bond-fail-over-mac ${bond.fail_over_mac}`]),
    `    bond-primary ${bond.primary}`,
    `    bond-primary-reselect ${bond.primary_reselect}`,
  ];
}

/**
 * Starts pibond-enslave@SLAVE.service when a slave appears. Sorted after 80-net-setup-link.rules:
 * a NIC renamed by a .link matches by its new NAME; one the kernel named already has no NAME yet.
 */
function enslaveRules(bond: Bond): string {
  const lines = [
    `# Written by pibond: re-enslave a slave of ${bond.name} that appears after boot (a USB NIC plugged back in).`,
  ];
  for (const { name } of bond.slaves) {
    const start = `TAG+="systemd", ENV{SYSTEMD_WANTS}+="pibond-enslave@${name}.service"`;
    lines.push(
      `ACTION=="add", SUBSYSTEM=="net", NAME=="${name}", ${start}`,
      `ACTION=="add", SUBSYSTEM=="net", NAME=="", KERNEL=="${name}", ${start}`,
    );
  }
  return `${lines.join('\n')}\n`;
}

/** Without resolvconf, ifupdown ignores dns-nameservers: the servers go to resolv.conf directly. */
function resolvConf(servers: string[]): string {
  return `# Written by pibond from the definition's network.addressing.dns.\n${servers.map((s) => `nameserver ${s}`).join('\n')}\n`;
}
