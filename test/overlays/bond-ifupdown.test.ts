import { execFile } from 'node:child_process';
import { chmod, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterEach, describe, expect, it } from 'vitest';
import { loadDefinition, parseDefinition, type Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile } from '../../scripts/lib/overlay.ts';
import { readRootfs } from '../../scripts/lib/overlay.ts';
import { render as renderLinks } from '../../overlays/09-bond-links/render.ts';
import { render } from '../../overlays/10-bond-ifupdown/render.ts';

const root = join(import.meta.dirname, '../..');
const overlay = join(root, 'overlays/10-bond-ifupdown');
const fixtures = join(root, 'test/fixtures/definitions');

async function rendered(def: Definition, overlay = render): Promise<Map<string, OverlayFile>> {
  return new Map((await overlay(def)).map((file) => [file.path, file]));
}

function contentOf(files: Map<string, OverlayFile>, path: string): string {
  const file = files.get(path);
  if (file === undefined) throw new Error(`${path} was not rendered; rendered: ${[...files.keys()].join(', ')}`);
  return String(file.content);
}

describe('/etc/network/interfaces', () => {
  it.each([
    ['images/default.yaml', 'default.interfaces'],
    ['test/fixtures/definitions/static.yaml', 'static.interfaces'],
    ['test/fixtures/definitions/mac-pinned.yaml', 'mac-pinned.interfaces'],
    ['test/fixtures/definitions/arp-monitor.yaml', 'arp-monitor.interfaces'],
  ])('for %s equals golden/%s', async (definition, golden) => {
    const files = await rendered(await loadDefinition(join(root, definition)));
    expect(contentOf(files, 'etc/network/interfaces')).toBe(await readFile(join(import.meta.dirname, 'golden', golden), 'utf8'));
    expect(files.get('etc/network/interfaces')?.mode).toBe(0o644);
  });

  it('names the slaves on the bond and gives them no stanzas (one ifup: bond, slaves, then DHCP)', async () => {
    // FACTS.md's form (bond-slaves none + a bond-master stanza per slave) bonded with a static
    // address, but with DHCP the bond's ifup ran before any slave joined: dhclient gave up after
    // 60 s and bond0 never got a lease under QEMU. This form had both slaves and a lease at ~21 s.
    const expected = [
      'auto bond0',
      'iface bond0 inet dhcp',
      '    bond-slaves eth0 eth1',
      '    bond-mode active-backup',
      '    bond-miimon 100',
      '    bond-primary eth0',
      '    bond-primary-reselect always',
    ];
    const stanzas = contentOf(await rendered(await loadDefinition(join(root, 'images/default.yaml'))), 'etc/network/interfaces')
      .split('\n')
      .filter((line) => line !== '' && !line.startsWith('#') && !line.startsWith('source ') && !/^(auto|iface) lo\b/.test(line));
    expect(stanzas).toEqual(expected);
  });

  it('never carries bond-master on the bond itself (the seed blog\'s form that fails on bookworm)', async () => {
    const text = contentOf(await rendered(await loadDefinition(join(root, 'images/default.yaml'))), 'etc/network/interfaces');
    const bondStanza = text.split('\n\n').find((block) => block.includes('iface bond0'));
    expect(bondStanza).toBeDefined();
    expect(bondStanza).not.toContain('bond-master');
    expect(text).not.toContain('allow-hotplug');
    expect(text).not.toMatch(/^iface eth\d/m);
  });

  it('renders an IPv6 static address as an inet6 stanza', async () => {
    const def = parseDefinition('name: v6\nnetwork:\n  addressing: {method: static, address: "fd00::5/64", gateway: "fd00::1"}\n', 'v6.yaml');
    expect(contentOf(await rendered(def), 'etc/network/interfaces')).toContain('iface bond0 inet6 static\n    address fd00::5/64\n    gateway fd00::1\n');
  });
});

describe('every stack\'s files around the bond (overlays/09-bond-links)', () => {
  it('loads the bonding driver at boot', async () => {
    const files = await rendered(await loadDefinition(join(root, 'images/default.yaml')), renderLinks);
    expect(contentOf(files, 'etc/modules-load.d/bonding.conf')).toBe('# Written by pibond: the bond needs the bonding driver.\nbonding\n');
  });

  it('keeps the bond\'s MAC stable with a .link that sorts before 99-default.link', async () => {
    const files = await rendered(await loadDefinition(join(root, 'images/default.yaml')), renderLinks);
    const link = [...files.keys()].filter((path) => path.endsWith('.link'));
    expect(link).toEqual(['etc/systemd/network/10-pibond-bond0.link']);
    expect(link[0]! < 'etc/systemd/network/99-default.link').toBe(true);
    expect(contentOf(files, link[0]!)).toBe(
      "# Written by pibond: keep bond0's MAC the one the bonding driver gives it.\n[Match]\nDriver=bonding\nOriginalName=bond0\n\n[Link]\nMACAddressPolicy=none\n",
    );
  });

  it('names a slave pinned by MAC with a .link matching its permanent MAC', async () => {
    const files = await rendered(await loadDefinition(join(fixtures, 'mac-pinned.yaml')), renderLinks);
    expect(contentOf(files, 'etc/systemd/network/10-pibond-lan1.link')).toBe(
      '# Written by pibond: the NIC with permanent MAC 00:e0:4c:68:00:01 is the bond\'s slave lan1.\n[Match]\nPermanentMACAddress=00:e0:4c:68:00:01\n\n[Link]\nName=lan1\n',
    );
    expect(files.has('etc/systemd/network/10-pibond-eth0.link')).toBe(false);
  });
});

describe('the files around the bond', () => {
  it('renders nothing for another stack', async () => {
    expect(await render(parseDefinition('name: t\nnetwork: {stack: networkd}\n', 't.yaml'))).toEqual([]);
  });

  it('writes resolv.conf for static DNS servers (no resolvconf, so dns-nameservers would do nothing) and none for DHCP', async () => {
    const staticFiles = await rendered(await loadDefinition(join(fixtures, 'static.yaml')));
    expect(contentOf(staticFiles, 'etc/resolv.conf')).toBe(
      "# Written by pibond from the definition's network.addressing.dns.\nnameserver 192.168.1.1\nnameserver 9.9.9.9\n",
    );
    expect(contentOf(staticFiles, 'etc/network/interfaces')).not.toContain('dns-nameservers');
    expect((await rendered(await loadDefinition(join(root, 'images/default.yaml')))).has('etc/resolv.conf')).toBe(false);
  });

  it('starts pibond-enslave@SLAVE.service when a slave appears, whether renamed by a .link or not', async () => {
    const files = await rendered(await loadDefinition(join(fixtures, 'mac-pinned.yaml')));
    expect(contentOf(files, 'etc/udev/rules.d/90-pibond-enslave.rules').split('\n').slice(1)).toEqual([
      'ACTION=="add", SUBSYSTEM=="net", NAME=="eth0", TAG+="systemd", ENV{SYSTEMD_WANTS}+="pibond-enslave@eth0.service"',
      'ACTION=="add", SUBSYSTEM=="net", NAME=="", KERNEL=="eth0", TAG+="systemd", ENV{SYSTEMD_WANTS}+="pibond-enslave@eth0.service"',
      'ACTION=="add", SUBSYSTEM=="net", NAME=="lan1", TAG+="systemd", ENV{SYSTEMD_WANTS}+="pibond-enslave@lan1.service"',
      'ACTION=="add", SUBSYSTEM=="net", NAME=="", KERNEL=="lan1", TAG+="systemd", ENV{SYSTEMD_WANTS}+="pibond-enslave@lan1.service"',
      '',
    ]);
    expect(contentOf(files, 'etc/default/pibond-enslave')).toContain('\nBOND=bond0\n');
  });

  it('ships the enslave service ordered after networking.service, and its script executable', async () => {
    const entries = new Map((await readRootfs(join(overlay, 'rootfs'))).map((entry) => [entry.path, entry]));
    const unit = entries.get('usr/lib/systemd/system/pibond-enslave@.service');
    expect(unit?.type === 'file' && String(unit.content)).toMatch(/^After=networking\.service$/m);
    expect(unit?.type === 'file' && String(unit.content)).toMatch(/^ExecStart=\/usr\/lib\/pibond\/enslave %i$/m);
    expect(entries.get('usr/lib/pibond/enslave')).toMatchObject({ type: 'file', mode: 0o755 });
  });
});

describe('usr/lib/pibond/enslave', () => {
  const temps: string[] = [];
  afterEach(async () => {
    await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
  });

  /** Runs the script against a fake /sys and a fake `ip` that logs its arguments. */
  async function enslave(slave: string, currentSlaves: string | undefined) {
    const dir = await mkdtemp(join(tmpdir(), 'pibond-enslave-'));
    temps.push(dir);
    if (currentSlaves !== undefined) {
      await mkdir(join(dir, 'sys/class/net/bond0/bonding'), { recursive: true });
      await writeFile(join(dir, 'sys/class/net/bond0/bonding/slaves'), `${currentSlaves}\n`);
    }
    await mkdir(join(dir, 'bin'));
    await writeFile(join(dir, 'bin/ip'), `#!/bin/sh\necho "ip $*" >> "${dir}/ip.log"\n`);
    await chmod(join(dir, 'bin/ip'), 0o755);
    const { stdout } = await promisify(execFile)('sh', [join(overlay, 'rootfs/usr/lib/pibond/enslave'), slave], {
      env: { PATH: `${join(dir, 'bin')}:/usr/bin:/bin`, BOND: 'bond0', SYSFS_ROOT: join(dir, 'sys') },
    });
    const ipCalls = await readFile(join(dir, 'ip.log'), 'utf8').catch(() => '');
    return { stdout, ipCalls: ipCalls.split('\n').filter(Boolean) };
  }

  it('enslaves a slave that came back after boot', async () => {
    expect(await enslave('eth1', 'eth0')).toEqual({
      stdout: 'enslaved eth1 to bond0\n',
      ipCalls: ['ip link set dev eth1 down', 'ip link set dev eth1 master bond0'],
    });
  });

  it('leaves a slave alone that ifup has enslaved already (the boot case)', async () => {
    expect(await enslave('eth1', 'eth0 eth1')).toEqual({ stdout: '', ipCalls: [] });
    expect(await enslave('eth0', 'eth0 eth10')).toEqual({ stdout: '', ipCalls: [] });
  });

  it('does not take eth1 for enslaved when only eth10 is', async () => {
    expect((await enslave('eth1', 'eth10')).ipCalls).toEqual(['ip link set dev eth1 down', 'ip link set dev eth1 master bond0']);
  });

  it('does nothing when there is no bond', async () => {
    expect(await enslave('eth1', undefined)).toEqual({ stdout: '', ipCalls: [] });
  });
});
