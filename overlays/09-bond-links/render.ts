/**
 * What the bond needs whichever network stack sets it up (overlays/10-bond-*): the bonding driver
 * loaded at boot, and systemd .link files, which udev applies before any stack sees a NIC: one
 * keeps the bond's MAC the bonding driver's, one per slave pinned by MAC gives that NIC its name.
 * Every stack then finds its slaves by name, which is also what networkd needs to apply
 * PrimarySlave= (systemd#27432: not applied to a port matched by MAC).
 */
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile } from '../../scripts/lib/overlay.ts';

type Bond = Definition['bond'];

export async function render(def: Definition): Promise<OverlayFile[]> {
  const files: OverlayFile[] = [
    { path: 'etc/modules-load.d/bonding.conf', content: '# Written by pibond: the bond needs the bonding driver.\nbonding\n', mode: 0o644 },
    { path: `etc/systemd/network/10-pibond-${def.bond.name}.link`, content: bondLink(def.bond), mode: 0o644 },
  ];
  for (const slave of def.bond.slaves) {
    if (slave.mac !== undefined) {
      files.push({ path: `etc/systemd/network/10-pibond-${slave.name}.link`, content: slaveLink(slave.name, slave.mac), mode: 0o644 });
    }
  }
  return Promise.resolve(files);
}

/**
 * systemd's 99-default.link gives a device without a permanent MAC a generated one
 * (MACAddressPolicy=persistent); for a bond that would fight the MAC it takes from its first slave.
 * Debian's ifenslave ships the same settings as 98-net-bonding.link; ours sorts first and stays
 * in force with every stack.
 */
function bondLink(bond: Bond): string {
  return [
    `# Written by pibond: keep ${bond.name}'s MAC the one the bonding driver gives it.`,
    '[Match]',
    'Driver=bonding',
    `OriginalName=${bond.name}`,
    '',
    '[Link]',
    'MACAddressPolicy=none',
    '',
  ].join('\n');
}

/**
 * Names a slave by its NIC's permanent MAC. PermanentMACAddress, not MACAddress: an enslaved NIC
 * (and the bond) may carry another NIC's MAC at runtime. A name the kernel never hands out, like
 * lan1, is safer than eth1: renaming to eth1 collides when the kernel has given eth1 to another NIC.
 */
function slaveLink(name: string, mac: string): string {
  return [
    `# Written by pibond: the NIC with permanent MAC ${mac} is the bond's slave ${name}.`,
    '[Match]',
    `PermanentMACAddress=${mac}`,
    '',
    '[Link]',
    `Name=${name}`,
    '',
  ].join('\n');
}
