/**
 * pibond-card on a scratch root: what a card's settings rewrite, what they leave alone, and how a
 * bad card is reported. The unit's own directives are checked at the end.
 */
import { mkdir, mkdtemp, readFile, readlink, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { emptyCardLine, renderCard } from '../../scripts/lib/card.ts';
import { definitionSchema } from '../../scripts/lib/definition.ts';
import { type CardPaths, applyCard } from '../../overlays/05-card/src/apply.ts';
import { render } from '../../overlays/00-base/render.ts';
import { addressingFiles } from '../../overlays/10-bond-ifupdown/render.ts';

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx1c2VyIGtleSBmb3IgdGVzdHMgb25seQ test@host';
const slot = { file: 'pibond-card.yaml', offset: 0, bytes: 65536 };
const overlay = join(import.meta.dirname, '../../overlays/05-card');

let root: string;
let paths: CardPaths;
let hostnames: string[];
let regenerated: number;
const effects = {
  setHostname: async (name: string) => void hostnames.push(name),
  regenerateNetplan: async () => void regenerated++,
  now: () => new Date('2026-12-03T12:00:00Z'),
  log: () => {},
};

beforeEach(async () => {
  root = await mkdtemp(join(tmpdir(), 'card-root-'));
  hostnames = [];
  regenerated = 0;
  paths = { card: join(root, 'boot/firmware/pibond-card.yaml'), definition: join(root, 'etc/pibond/definition.json'), root };
  await mkdir(join(root, 'boot/firmware'), { recursive: true });
  await mkdir(join(root, 'etc/pibond'), { recursive: true });
  await mkdir(join(root, 'home/pi'), { recursive: true });
  await writeFile(join(root, 'etc/passwd'), `root:x:0:0:root:/root:/bin/sh\npi:x:${process.getuid?.() ?? 0}:${process.getgid?.() ?? 0}::/home/pi:/bin/bash\n`);
  const def = definitionSchema.parse({ name: 'fleet', hostname: 'pibond' });
  await writeFile(paths.definition, JSON.stringify(def));
  for (const file of [...(await render(def)), ...addressingFiles(def)]) {
    if (!('content' in file)) continue;
    await mkdir(join(root, file.path, '..'), { recursive: true });
    await writeFile(join(root, file.path), file.content);
  }
});
afterEach(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('pibond-card', () => {
  it('leaves everything alone when the card holds only the placeholder', async () => {
    await writeFile(paths.card, `${emptyCardLine}\n${'\n'.repeat(1000)}`);
    expect(await applyCard(paths, effects)).toEqual({ applied: false });
    expect(hostnames).toEqual([]);
    expect(await readFile(join(root, 'etc/hostname'), 'utf8')).toBe('pibond\n');
  });

  it('rewrites only the files the settings touch, adds the keys and empties the card', async () => {
    const card = { hostname: 'kitchen', network: { addressing: { method: 'static' as const, address: '192.168.1.50/24', gateway: '192.168.1.1', dns: ['192.168.1.1'] } }, admin: { authorized_keys: [key] } };
    await writeFile(paths.card, renderCard(card, slot, 'test'));
    const fstab = await readFile(join(root, 'etc/fstab'), 'utf8');

    const outcome = await applyCard(paths, effects);
    expect(outcome.applied && outcome.rewritten).toEqual([
      '/etc/hostname', '/etc/hosts', '/etc/network/interfaces', '/etc/resolv.conf', '/etc/pibond/bond-heal.json', '/home/pi/.ssh/authorized_keys', paths.definition,
    ]);
    expect(hostnames).toEqual(['kitchen']);
    expect(await readFile(join(root, 'etc/hostname'), 'utf8')).toBe('kitchen\n');
    expect(await readFile(join(root, 'etc/hosts'), 'utf8')).toContain('127.0.1.1\tkitchen\n');
    expect(await readFile(join(root, 'etc/network/interfaces'), 'utf8')).toMatch(/iface bond0 inet static\n {4}address 192.168.1.50\/24\n {4}gateway 192.168.1.1\n/);
    expect(await readFile(join(root, 'etc/resolv.conf'), 'utf8')).toContain('nameserver 192.168.1.1');
    expect(JSON.parse(await readFile(join(root, 'etc/pibond/bond-heal.json'), 'utf8'))).toMatchObject({ dhcp: false });
    // The disk layout comes from the image's definition, not the card's: fstab is not touched.
    expect(await readFile(join(root, 'etc/fstab'), 'utf8')).toBe(fstab);
    const keys = join(root, 'home/pi/.ssh/authorized_keys');
    expect(await readFile(keys, 'utf8')).toBe(`${key}\n`);
    expect((await stat(keys)).mode & 0o777).toBe(0o600);
    expect((await stat(join(root, 'home/pi/.ssh'))).mode & 0o777).toBe(0o700);

    const left = await readFile(paths.card, 'utf8');
    expect(left).toBe('# pibond card settings: applied at 2026-12-03T12:00:00.000Z (host name kitchen, address 192.168.1.50/24, 1 SSH key); none now.\n');
    expect(left).not.toContain('AAAA');
    // The next boot finds nothing to do, and a later card builds on this one.
    expect(await applyCard(paths, effects)).toEqual({ applied: false });
    expect(JSON.parse(await readFile(paths.definition, 'utf8'))).toMatchObject({ hostname: 'kitchen', admin: { authorized_keys: [key] } });
  });

  it.each([
    ['networkd', '/etc/systemd/network/20-pibond-bond0.network', /^Address=192\.168\.1\.50\/24$/m, 0o644],
    ['networkmanager', '/etc/NetworkManager/system-connections/pibond-bond0.nmconnection', /^address1=192\.168\.1\.50\/24,192\.168\.1\.1$/m, 0o600],
    ['netplan', '/etc/netplan/50-pibond.yaml', /^ {8}- 192\.168\.1\.50\/24$/m, 0o600],
  ] as const)('on a %s image rewrites %s with the address, keeping its mode', async (stack, file, expected, mode) => {
    const def = definitionSchema.parse({ name: 'fleet', hostname: 'pibond', network: { stack } });
    await writeFile(paths.definition, JSON.stringify(def));
    await writeFile(paths.card, renderCard({ network: { addressing: { method: 'static', address: '192.168.1.50/24', gateway: '192.168.1.1', dns: ['192.168.1.1'] } } }, slot, 'test'));
    const outcome = await applyCard(paths, effects);
    expect(outcome.applied && outcome.rewritten).toContain(file);
    expect(outcome.applied && outcome.rewritten).not.toContain('/etc/network/interfaces');
    expect(await readFile(join(root, file), 'utf8')).toMatch(expected);
    expect((await stat(join(root, file))).mode & 0o777).toBe(mode);
    // netplan's generator ran before this service: it runs again, for the new address to count.
    expect(regenerated).toBe(stack === 'netplan' ? 1 : 0);
  });

  it('adds a key once, keeping the keys already there', async () => {
    const other = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC5vdGhlciBrZXkgZm9yIHRlc3RzIG9ubHk other@host';
    await mkdir(join(root, 'home/pi/.ssh'), { recursive: true });
    await writeFile(join(root, 'home/pi/.ssh/authorized_keys'), `${other}\n${key}\n`);
    await writeFile(paths.card, renderCard({ admin: { authorized_keys: [key] } }, slot, 'test'));
    await applyCard(paths, effects);
    expect(await readFile(join(root, 'home/pi/.ssh/authorized_keys'), 'utf8')).toBe(`${other}\n${key}\n`);
    expect(hostnames).toEqual([]);
  });

  it('reports a bad card by file and field, and leaves it and the system as they were', async () => {
    const bad = 'hostname: kitchen\nnetwork:\n  addressing: {method: static, address: 192.168.1.50}\n';
    await writeFile(paths.card, bad);
    await expect(applyCard(paths, effects)).rejects.toThrow(`${paths.card}: network.addressing.address: must be an address with a prefix length, like 192.168.1.2/24`);
    expect(await readFile(paths.card, 'utf8')).toBe(bad);
    expect(await readFile(join(root, 'etc/hostname'), 'utf8')).toBe('pibond\n');
  });

  it('refuses settings that do not suit the image (a static address beside a router on another subnet)', async () => {
    const def = definitionSchema.parse({ name: 'fleet', bond: { slaves: [{ name: 'eth0', gateway: '192.168.1.1' }, { name: 'eth1', gateway: '192.168.8.1' }] } });
    await writeFile(paths.definition, JSON.stringify(def));
    await writeFile(paths.card, renderCard({ network: { addressing: { method: 'static', address: '192.168.1.50/24', dns: [] } } }, slot, 'test'));
    await expect(applyCard(paths, effects)).rejects.toThrow(/bond.slaves\[1\].gateway: is not in 192.168.1.50\/24's subnet/);
  });

  it('runs at first boot before the network, only when the card holds settings, with no network socket', async () => {
    const unit = await readFile(join(overlay, 'rootfs/usr/lib/systemd/system/pibond-card.service'), 'utf8');
    expect(unit).toMatch(/^Before=network-pre\.target networking\.service systemd-networkd\.service NetworkManager\.service ssh\.service pibond-heal\.service pibond-uplink\.service bond-status\.service$/m);
    expect(unit).toMatch(/^RequiresMountsFor=\/boot\/firmware$/m);
    expect(unit).toMatch(/^ExecCondition=\/bin\/grep -q "\^\[\^#\[:space:\]\]" \/boot\/firmware\/pibond-card.yaml$/m);
    expect(unit).toMatch(/^RestrictAddressFamilies=AF_UNIX$/m);
    // Early in the boot no mount namespace can be set up: the unit failed with PrivateDevices=yes.
    expect(unit).not.toMatch(/^(PrivateDevices|PrivateNetwork|PrivateTmp|ProtectSystem|ProtectHome|ProtectKernelModules|ProtectKernelLogs|ProtectControlGroups)=/m);
    expect(await readlink(join(overlay, 'rootfs/etc/systemd/system/sysinit.target.wants/pibond-card.service'))).toBe('/usr/lib/systemd/system/pibond-card.service');
  });
});
