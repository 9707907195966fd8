/**
 * The bond as networkd, NetworkManager and netplan are given it (overlays/10-bond-*): each stack's
 * own pitfalls, and that an image carries one stack's files only. Boots under QEMU prove that each
 * form really bonds (test/e2e/stacks.e2e.ts); these pin the forms down.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { DefinitionError, parseDefinition, type Definition } from '../../scripts/lib/definition.ts';
import { collectOverlays, type OverlayEntry } from '../../scripts/lib/overlay.ts';
import { packageList } from '../../scripts/image/packages.ts';
import { render as renderNetplan } from '../../overlays/10-bond-netplan/render.ts';
import { render as renderNetworkd } from '../../overlays/10-bond-networkd/render.ts';
import { render as renderNetworkManager } from '../../overlays/10-bond-networkmanager/render.ts';

const overlays = join(import.meta.dirname, '../../overlays');

function definition(stack: string, extra = ''): Definition {
  return parseDefinition(`name: t\n${extra}network:\n  stack: ${stack}\n`, 't.yaml');
}

function staticDefinition(stack: string, address = '192.168.1.50/24', gateway = '192.168.1.1', dns = '[192.168.1.1, "fd00::53"]'): Definition {
  return parseDefinition(`name: t\nnetwork:\n  stack: ${stack}\n  addressing: {method: static, address: "${address}", gateway: "${gateway}", dns: ${dns}}\n`, 't.yaml');
}

async function files(render: (def: Definition) => Promise<unknown[]>, def: Definition): Promise<Map<string, { content?: string; mode?: number; target?: string }>> {
  const list = (await render(def)) as { path: string; content?: string | Buffer; mode?: number; target?: string }[];
  return new Map(list.map((file) => [file.path, { ...file, content: file.content === undefined ? undefined : String(file.content) }]));
}

function content(map: Map<string, { content?: string }>, path: string): string {
  const text = map.get(path)?.content;
  if (text === undefined) throw new Error(`${path} was not rendered; rendered: ${[...map.keys()].join(', ')}`);
  return text;
}

/** The key=value lines of one [section] of an INI-style file (systemd units, NetworkManager keyfiles). */
function section(text: string, name: string): string[] {
  const out: string[] = [];
  let inside = false;
  for (const line of text.split('\n')) {
    if (/^\[.*\]$/.test(line)) inside = line === `[${name}]`;
    else if (inside && line !== '' && !line.startsWith('#')) out.push(line);
  }
  return out;
}

describe('systemd-networkd', () => {
  it('makes the bond a .netdev with the kernel\'s MAC, the definition\'s options in networkd\'s names and units', async () => {
    const map = await files(renderNetworkd, definition('networkd', 'bond:\n  updelay: 200\n  downdelay: 100\n  fail_over_mac: active\n  primary_reselect: better\n'));
    const netdev = content(map, 'etc/systemd/network/20-pibond-bond0.netdev');
    expect(section(netdev, 'NetDev')).toEqual(['Name=bond0', 'Kind=bond', 'MACAddress=none']);
    expect(section(netdev, 'Bond')).toEqual([
      'Mode=active-backup',
      'PrimaryReselectPolicy=better',
      'MIIMonitorSec=100ms',
      'UpDelaySec=200ms',
      'DownDelaySec=100ms',
      'FailOverMACPolicy=active',
    ]);
  });

  it('marks the primary with PrimarySlave= in its own .network, matched by name even when pinned by MAC (systemd#27432)', async () => {
    const map = await files(renderNetworkd, definition('networkd', "bond:\n  slaves: [{name: eth0, mac: '52:54:00:00:00:01'}, {name: lan1, mac: '52:54:00:00:00:02'}]\n"));
    const primary = content(map, 'etc/systemd/network/20-pibond-bond0-eth0.network');
    expect(section(primary, 'Match')).toEqual(['Name=eth0']);
    expect(section(primary, 'Network')).toEqual(['Bond=bond0', 'PrimarySlave=yes']);
    expect(section(primary, 'Link')).toEqual(['RequiredForOnline=no']);
    const backup = content(map, 'etc/systemd/network/20-pibond-bond0-lan1.network');
    expect(section(backup, 'Match')).toEqual(['Name=lan1']);
    expect(section(backup, 'Network')).toEqual(['Bond=bond0']);
    // On the bond's own .network PrimarySlave= would be ignored without a word (systemd#5579).
    expect(content(map, 'etc/systemd/network/20-pibond-bond0.network')).not.toContain('PrimarySlave');
    for (const text of [primary, backup]) expect(text).not.toMatch(/MACAddress=/);
  });

  it('puts the addressing on the bond: DHCP for IPv4, or the static address, gateway and name servers', async () => {
    expect(section(content(await files(renderNetworkd, definition('networkd')), 'etc/systemd/network/20-pibond-bond0.network'), 'Network')).toEqual(['DHCP=ipv4']);
    const fixed = content(await files(renderNetworkd, staticDefinition('networkd')), 'etc/systemd/network/20-pibond-bond0.network');
    expect(section(fixed, 'Network')).toEqual(['Address=192.168.1.50/24', 'Gateway=192.168.1.1', 'DNS=192.168.1.1', 'DNS=fd00::53']);
  });

  it('writes the ARP monitor only when it is on', async () => {
    const arp = content(await files(renderNetworkd, definition('networkd', 'bond:\n  miimon: 0\n  arp_interval: 200\n  arp_ip_target: [192.168.1.1, 192.168.1.2]\n  arp_validate: all\n')), 'etc/systemd/network/20-pibond-bond0.netdev');
    expect(section(arp, 'Bond')).toEqual(expect.arrayContaining(['MIIMonitorSec=0ms', 'ARPIntervalSec=200ms', 'ARPIPTargets=192.168.1.1 192.168.1.2', 'ARPValidate=all']));
    expect(content(await files(renderNetworkd, definition('networkd')), 'etc/systemd/network/20-pibond-bond0.netdev')).not.toContain('ARP');
  });

  it('enables systemd-networkd as systemctl enable would (Debian ships it disabled)', async () => {
    const map = await files(renderNetworkd, definition('networkd'));
    expect(map.get('etc/systemd/system/multi-user.target.wants/systemd-networkd.service')?.target).toBe('/lib/systemd/system/systemd-networkd.service');
    expect(map.get('etc/systemd/system/sockets.target.wants/systemd-networkd.socket')?.target).toBe('/lib/systemd/system/systemd-networkd.socket');
    expect(map.get('etc/systemd/system/dbus-org.freedesktop.network1.service')?.target).toBe('/lib/systemd/system/systemd-networkd.service');
  });

  it('refuses an ARP validation that networkd cannot write, naming the field and what it takes', () => {
    expect(() => definition('networkd', 'bond:\n  miimon: 0\n  arp_interval: 200\n  arp_ip_target: [192.168.1.1]\n  arp_validate: filter\n')).toThrow(DefinitionError);
    expect(() => definition('netplan', 'bond:\n  miimon: 0\n  arp_interval: 200\n  arp_ip_target: [192.168.1.1]\n  arp_validate: filter_active\n')).toThrow(
      /bond\.arp_validate.*filter_active cannot be written by network\.stack netplan: it takes none, active, backup, all/,
    );
    expect(() => definition('networkmanager', 'bond:\n  miimon: 0\n  arp_interval: 200\n  arp_ip_target: [192.168.1.1]\n  arp_validate: filter\n')).not.toThrow();
  });
});

describe('NetworkManager 1.42', () => {
  const connections = 'etc/NetworkManager/system-connections';

  it('writes every keyfile 0600 (NetworkManager ignores one that others may read)', async () => {
    const map = await files(renderNetworkManager, definition('networkmanager'));
    const keyfiles = [...map.entries()].filter(([path]) => path.endsWith('.nmconnection'));
    expect(keyfiles.map(([path]) => path).sort()).toEqual([`${connections}/pibond-bond0-eth0.nmconnection`, `${connections}/pibond-bond0-eth1.nmconnection`, `${connections}/pibond-bond0.nmconnection`]);
    for (const [, file] of keyfiles) expect(file.mode).toBe(0o600);
  });

  it('uses the key names 1.42 knows (master=, slave-type=, autoconnect-slaves=), not the newer ones it rejects', async () => {
    const map = await files(renderNetworkManager, definition('networkmanager'));
    const all = [...map.values()].map((file) => file.content ?? '').join('\n');
    expect(all).not.toMatch(/^(controller|port-type|autoconnect-ports)=/m);
    expect(section(content(map, `${connections}/pibond-bond0-eth0.nmconnection`), 'connection')).toEqual(
      expect.arrayContaining(['type=ethernet', 'interface-name=eth0', 'master=bond0', 'slave-type=bond']),
    );
    expect(section(content(map, `${connections}/pibond-bond0.nmconnection`), 'connection')).toEqual(expect.arrayContaining(['type=bond', 'interface-name=bond0', 'autoconnect-slaves=1']));
  });

  it('gives the bond its options by the kernel\'s names, the primary by name', async () => {
    const map = await files(renderNetworkManager, definition('networkmanager', 'bond:\n  downdelay: 100\n  fail_over_mac: follow\n'));
    expect(section(content(map, `${connections}/pibond-bond0.nmconnection`), 'bond')).toEqual([
      'mode=active-backup',
      'primary=eth0',
      'primary_reselect=always',
      'miimon=100',
      'downdelay=100',
      'fail_over_mac=follow',
    ]);
  });

  it('gives each profile a fixed UUID of its own', async () => {
    const uuids = [...(await files(renderNetworkManager, definition('networkmanager'))).values()]
      .map((file) => /^uuid=(.*)$/m.exec(file.content ?? '')?.[1])
      .filter((uuid) => uuid !== undefined);
    expect(uuids).toHaveLength(3);
    expect(new Set(uuids).size).toBe(3);
    for (const uuid of uuids) expect(uuid).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-8[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const again = [...(await files(renderNetworkManager, staticDefinition('networkmanager'))).values()].map((file) => /^uuid=(.*)$/m.exec(file.content ?? '')?.[1]).filter(Boolean);
    expect(again.sort()).toEqual(uuids.sort());
  });

  it('keeps NICs no profile names out of the network, and DHCP or static addressing on the bond', async () => {
    const map = await files(renderNetworkManager, definition('networkmanager'));
    expect(section(content(map, 'etc/NetworkManager/conf.d/50-pibond.conf'), 'main')).toEqual(['no-auto-default=*']);
    expect(section(content(map, `${connections}/pibond-bond0.nmconnection`), 'ipv4')).toEqual(['method=auto']);
    expect(section(content(map, 'etc/NetworkManager/conf.d/60-pibond-dns.conf'), 'global-dns-domain-*')).toEqual([]);

    const fixed = await files(renderNetworkManager, staticDefinition('networkmanager'));
    expect(section(content(fixed, `${connections}/pibond-bond0.nmconnection`), 'ipv4')).toEqual(['method=manual', 'address1=192.168.1.50/24,192.168.1.1']);
    // Name servers of both families: a profile's ipv4.dns takes IPv4 only, so they go global.
    expect(section(content(fixed, 'etc/NetworkManager/conf.d/60-pibond-dns.conf'), 'global-dns-domain-*')).toEqual(['servers=192.168.1.1,fd00::53']);
    const v6 = await files(renderNetworkManager, staticDefinition('networkmanager', 'fd00::5/64', 'fd00::1', '[]'));
    expect(section(content(v6, `${connections}/pibond-bond0.nmconnection`), 'ipv4')).toEqual(['method=disabled']);
    expect(section(content(v6, `${connections}/pibond-bond0.nmconnection`), 'ipv6')).toEqual(['method=manual', 'address1=fd00::5/64,fd00::1']);
  });
});

describe('netplan 0.106 (rendering to networkd)', () => {
  const path = 'etc/netplan/50-pibond.yaml';
  type Netplan = { network: { renderer: string; ethernets: Record<string, unknown>; bonds: Record<string, { interfaces: string[]; parameters: Record<string, unknown>; dhcp4?: boolean; addresses?: string[] }> } };

  it('names the primary by an ethernets id that is its kernel name, and always sets the MII monitor with its unit', async () => {
    const map = await files(renderNetplan, definition('netplan', "bond:\n  slaves: [{name: eth0}, {name: lan1, mac: '52:54:00:00:00:02'}]\n  updelay: 200\n"));
    const doc = parse(content(map, path)) as Netplan;
    expect(doc.network.renderer).toBe('networkd');
    expect(Object.keys(doc.network.ethernets)).toEqual(['eth0', 'lan1']);
    const bond = doc.network.bonds.bond0!;
    expect(bond.interfaces).toEqual(['eth0', 'lan1']);
    expect(Object.keys(doc.network.ethernets)).toContain(bond.parameters.primary);
    // Left out, netplan's mii-monitor-interval is 0: no link monitoring, no failover on a pulled cable.
    expect(bond.parameters).toEqual({ mode: 'active-backup', primary: 'eth0', 'primary-reselect-policy': 'always', 'mii-monitor-interval': '100ms', 'up-delay': '200ms' });
    expect(bond.dhcp4).toBe(true);
    expect(map.get(path)?.mode).toBe(0o600);
  });

  it('puts a static address, the default route and the name servers on the bond', async () => {
    const doc = parse(content(await files(renderNetplan, staticDefinition('netplan')), path)) as Netplan;
    expect(doc.network.bonds.bond0).toMatchObject({ addresses: ['192.168.1.50/24'], routes: [{ to: 'default', via: '192.168.1.1' }], nameservers: { addresses: ['192.168.1.1', 'fd00::53'] } });
    expect(doc.network.bonds.bond0?.dhcp4).toBeUndefined();
  });

  it('enables networkd itself rather than count on the generator', async () => {
    expect((await files(renderNetplan, definition('netplan'))).get('etc/systemd/system/multi-user.target.wants/systemd-networkd.service')?.target).toBe('/lib/systemd/system/systemd-networkd.service');
  });
});

describe('one stack per image', () => {
  /** The paths that only one stack's overlay writes. */
  const marks: Record<string, string> = {
    ifupdown: 'etc/network/interfaces',
    networkd: 'etc/systemd/network/20-pibond-bond0.netdev',
    networkmanager: 'etc/NetworkManager/system-connections/pibond-bond0.nmconnection',
    netplan: 'etc/netplan/50-pibond.yaml',
  };

  it.each(Object.keys(marks))('a %s image gets its own files, every stack\'s .link files and driver, and no other stack\'s files', async (stack) => {
    const entries = await collectOverlays(overlays, definition(stack));
    const paths = new Set(entries.map((entry: OverlayEntry) => entry.path));
    for (const [other, mark] of Object.entries(marks)) expect(paths.has(mark), `${mark} in a ${stack} image`).toBe(other === stack);
    expect(paths.has('etc/systemd/network/10-pibond-bond0.link')).toBe(true);
    expect(paths.has('etc/modules-load.d/bonding.conf')).toBe(true);
    expect(paths.has('etc/udev/rules.d/90-pibond-enslave.rules')).toBe(stack === 'ifupdown');
  });

  it.each([
    ['ifupdown', ['ifupdown', 'ifenslave', 'isc-dhcp-client'], ['network-manager', 'netplan.io', 'systemd-resolved']],
    ['networkd', ['systemd-resolved'], ['ifupdown', 'isc-dhcp-client', 'network-manager', 'netplan.io']],
    ['networkmanager', ['network-manager'], ['ifupdown', 'isc-dhcp-client', 'netplan.io', 'systemd-resolved']],
    ['netplan', ['netplan.io', 'systemd-resolved'], ['ifupdown', 'isc-dhcp-client', 'network-manager']],
  ])('a %s image installs %j and none of %j', (stack, wanted, unwanted) => {
    const packages = packageList(definition(stack));
    expect(packages).toEqual(expect.arrayContaining(wanted));
    for (const name of unwanted) expect(packages).not.toContain(name);
  });
});
