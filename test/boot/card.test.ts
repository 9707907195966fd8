/** A test boot's card: the settings' rules on QEMU's networks, the access key, and the scenario's row that checks them. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { bootCard, makeAccessKey } from '../../scripts/boot/card.ts';
import { cardApplied } from '../../scripts/boot/card-check.ts';
import type { Bench } from '../../scripts/boot/checks.ts';
import type { BootImage } from '../../scripts/boot/image.ts';
import { machineNics, qemuArgs, slaveNics } from '../../scripts/boot/machine.ts';
import { castOf } from '../../scripts/boot/scenario.ts';
import { definitionSchema } from '../../scripts/lib/definition.ts';
import { FakeGuest } from './_fake-guest.ts';

const cast = castOf('bond0', slaveNics({ slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth0' }));
const slot = { file: 'pibond-card.yaml', offset: 4198400, bytes: 65536 };
const staticCard = { hostname: 'kitchen', network: { addressing: { method: 'static' as const, address: '10.0.2.50/24', gateway: '10.0.2.2', dns: [] } } };

let dir: string;
let image: BootImage;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'boot-card-'));
  const manifestPath = join(dir, 'x.manifest.json');
  await writeFile(manifestPath, JSON.stringify({ name: 'x', card: slot, definition: { value: definitionSchema.parse({ name: 'x' }) } }));
  image = { path: join(dir, 'x.img'), name: 'x', manifestPath, bootPartitionOffset: 4194304 } as unknown as BootImage;
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('a test boot\'s card', () => {
  it('carries the settings and the boot\'s own key, at the image\'s card slot', async () => {
    const card = await bootCard(image, staticCard, { accessKey: true, routers: { kind: 'user' } });
    expect(card?.patch.offset).toBe(slot.offset);
    expect(card?.patch.data.length).toBe(slot.bytes);
    const written = parse(card?.patch.data.toString('utf8') ?? '') as typeof staticCard & { admin: { authorized_keys: string[] } };
    expect(written.hostname).toBe('kitchen');
    expect(written.admin.authorized_keys).toEqual([card?.accessKey?.publicKey.trim()]);
    expect(card?.accessKey?.privateKey).toMatch(/^-----BEGIN OPENSSH PRIVATE KEY-----/);
    expect(card?.guestAddress).toBe('10.0.2.50');
  });

  it('has nothing to write without settings or a key', async () => {
    expect(await bootCard(image, undefined, { accessKey: false, routers: { kind: 'user' } })).toBeUndefined();
  });

  it('keeps a static address where the boot\'s routers reach it', async () => {
    const at = (address: string) => ({ network: { addressing: { method: 'static' as const, address, dns: [] } } });
    await expect(bootCard(image, at('192.168.1.50/24'), { accessKey: false, routers: { kind: 'user' } })).rejects.toThrow(/QEMU's user-mode network is 10.0.2.0\/24 .* like 10.0.2.50\/24/);
    await expect(bootCard(image, at('10.0.2.2/24'), { accessKey: false, routers: { kind: 'user' } })).rejects.toThrow(/user-mode network/);
    await expect(bootCard(image, at('10.0.2.50/24'), { accessKey: false, routers: { kind: 'testbed', layout: 'same-subnet' } })).rejects.toThrow(/forward to the address they lease/);
  });

  it('points the user-mode forwards at the static address', () => {
    const routers = [
      { nic: 'nic0', status: 41000, ssh: 41001 },
      { nic: 'nic1', status: 41002, ssh: 41003 },
    ];
    const nics = machineNics(8080, slaveNics({ slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth0' }), routers, '10.0.2.50');
    const args = qemuArgs({ kernel: 'k', initrd: 'i', append: '', disk: 'd', qmpSocket: 'q', nics }).join(' ');
    expect(args).toContain('hostfwd=tcp:127.0.0.1:41000-10.0.2.50:8080,hostfwd=tcp:127.0.0.1:41001-10.0.2.50:22');
    const plain = qemuArgs({ kernel: 'k', initrd: 'i', append: '', disk: 'd', qmpSocket: 'q', nics: machineNics(8080, slaveNics({ slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth0' }), routers) }).join(' ');
    expect(plain).toContain('hostfwd=tcp:127.0.0.1:41000-:8080');
  });

  it('makes a different key every time', () => {
    expect(makeAccessKey('a').publicKey).not.toBe(makeAccessKey('a').publicKey);
  });
});

describe('the scenario row for card settings', () => {
  const bench = (probes: FakeGuest): Bench => ({
    probes,
    cast,
    figures: { bootToReadySeconds: null, failoverMs: null, failbackMs: null, flaps: [], reenslaveMs: null, outages: [] },
    goalsMet: { bootToReady: null, failover: null, failback: null },
    failovers: 0,
  });
  const shell = (hostname: string, cardFile: string) => () => ({ code: 0, stdout: `${hostname}\n---\n${cardFile}`, stderr: '' });
  const applied = '# pibond card settings: applied at 2026-12-03T12:00:00.000Z (host name kitchen); none now.\n';

  it('passes when the status service, a login and the card file agree', async () => {
    const guest = new FakeGuest({ primary: 'eth0', backup: 'eth1', host: { hostname: 'kitchen', addresses: ['10.0.2.50/24'] }, shell: shell('kitchen', applied) });
    const detail = await cardApplied(cast, staticCard, { login: true }).run(bench(guest));
    expect(detail).toBe('host name kitchen; bond0 has 10.0.2.50/24; logged in as the admin with the boot\'s key; /boot/firmware/pibond-card.yaml holds no settings now');
  });

  it('fails on the image\'s own host name, a missing address, or settings left on the card', async () => {
    const check = cardApplied(cast, staticCard, { login: true });
    const run = (host: { hostname: string; addresses: string[] }, cardFile = applied) =>
      check.run(bench(new FakeGuest({ primary: 'eth0', backup: 'eth1', host, shell: shell(host.hostname, cardFile) })));
    await expect(run({ hostname: 'pibond', addresses: ['10.0.2.50/24'] })).rejects.toThrow(/reports the host name pibond, expected kitchen/);
    await expect(run({ hostname: 'kitchen', addresses: ['10.0.2.15/24'] })).rejects.toThrow(/bond0's addresses are 10.0.2.15\/24, expected 10.0.2.50\/24/);
    await expect(run({ hostname: 'kitchen', addresses: ['10.0.2.50/24'] }, 'hostname: kitchen\n')).rejects.toThrow(/still holds settings after the first boot: hostname: kitchen/);
  });
});
