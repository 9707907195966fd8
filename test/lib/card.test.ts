import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { cardPatch, cardSettingsFrom, definitionWithCard, describeCard, renderCard } from '../../scripts/lib/card.ts';
import { definitionSchema } from '../../scripts/lib/definition.ts';

const key = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBx1c2VyIGtleSBmb3IgdGVzdHMgb25seQ test@host';
const otherKey = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC5vdGhlciBrZXkgZm9yIHRlc3RzIG9ubHk other@host';
const slot = { file: 'pibond-card.yaml', offset: 4 * 1024 * 1024 + 8192, bytes: 65536 };
const def = definitionSchema.parse({ name: 'fleet' });

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'card-test-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('card settings from options', () => {
  it('turns the options into definition fields', async () => {
    const card = await cardSettingsFrom({ hostname: 'kitchen', address: '192.168.1.50/24', gateway: '192.168.1.1', dns: ['192.168.1.1'], 'ssh-key': [key] });
    expect(card).toEqual({
      hostname: 'kitchen',
      network: { addressing: { method: 'static', address: '192.168.1.50/24', gateway: '192.168.1.1', dns: ['192.168.1.1'] } },
      admin: { authorized_keys: [key] },
    });
    expect(describeCard(card!)).toBe('host name kitchen, address 192.168.1.50/24, 1 SSH key');
  });

  it('asks for nothing when no option is given', async () => {
    expect(await cardSettingsFrom({})).toBeUndefined();
  });

  it('names the option a bad value came from, and what is allowed', async () => {
    await expect(cardSettingsFrom({ address: '192.168.1.50' })).rejects.toThrow(/the command line: --address: must be an address with a prefix length/);
    await expect(cardSettingsFrom({ hostname: 'bad_name' })).rejects.toThrow(/--hostname: must be a host name/);
    await expect(cardSettingsFrom({ gateway: '192.168.1.1' })).rejects.toThrow(/--gateway and --dns go with a static --address/);
    await expect(cardSettingsFrom({ address: '10.0.0.2/24', gateway: 'fe80::1' })).rejects.toThrow(/--gateway: must be an IPv4 address/);
  });

  it('reads keys from a file, leaving out comments and blank lines', async () => {
    const file = join(dir, 'keys.pub');
    await writeFile(file, `# mine\n${key}\n\n${otherKey}\n`);
    expect((await cardSettingsFrom({ 'ssh-key': [file] }))?.admin?.authorized_keys).toEqual([key, otherKey]);
    await expect(cardSettingsFrom({ 'ssh-key': [join(dir, 'missing.pub')] })).rejects.toThrow(/neither a public key line .* nor a readable file/);
  });
});

describe('card settings from a --set file', () => {
  it('picks a device row over the common settings, and options over both', async () => {
    const file = join(dir, 'fleet.yaml');
    await writeFile(
      file,
      `admin:\n  authorized_keys: ["${key}"]\ndevices:\n  - name: kitchen\n    hostname: kitchen\n    network:\n      addressing: {method: static, address: 192.168.1.50/24, gateway: 192.168.1.1}\n  - name: garage\n    hostname: garage\n`,
    );
    const card = await cardSettingsFrom({ set: file, device: 'kitchen', 'ssh-key': [otherKey] });
    expect(card?.hostname).toBe('kitchen');
    expect(card?.network?.addressing).toMatchObject({ address: '192.168.1.50/24' });
    expect(card?.admin?.authorized_keys).toEqual([key, otherKey]);
    expect((await cardSettingsFrom({ set: file, device: 'garage', hostname: 'shed' }))?.hostname).toBe('shed');
  });

  it('says which devices there are when none or a wrong one is picked', async () => {
    const file = join(dir, 'fleet.yaml');
    await writeFile(file, 'devices:\n  - name: kitchen\n    hostname: kitchen\n  - name: garage\n    hostname: garage\n');
    await expect(cardSettingsFrom({ set: file })).rejects.toThrow(/lists kitchen, garage; pick one with --device NAME/);
    await expect(cardSettingsFrom({ set: file, device: 'attic' })).rejects.toThrow(/no device named "attic"; it has: kitchen, garage/);
    await expect(cardSettingsFrom({ device: 'attic' })).rejects.toThrow(/--device NAME picks a row of a --set FILE/);
  });

  it('names the file, the field and what is allowed', async () => {
    const file = join(dir, 'fleet.yaml');
    await writeFile(file, 'hostnme: kitchen\nnetwork:\n  addressing: {method: manual}\n');
    const error = await cardSettingsFrom({ set: file }).then(() => "", (err: Error) => err.message);
    expect(error).toMatch(new RegExp(`${file}: hostnme: unknown key \\(did you mean hostname\\?\\); allowed keys: hostname, network, admin, devices`));
    expect(error).toMatch(new RegExp(`${file}: network.addressing.method: must be one of: dhcp, static \\(got "manual"\\)`));
  });
});

describe('the card slot', () => {
  it('holds the settings as YAML padded with newlines to the slot size', () => {
    const card = { hostname: 'kitchen', admin: { authorized_keys: [key] } };
    const data = renderCard(card, slot, 'test');
    expect(data.length).toBe(slot.bytes);
    expect(parse(data.toString('utf8'))).toEqual(card);
    expect(data.subarray(-100).every((byte) => byte === 0x0a)).toBe(true);
  });

  it('refuses settings larger than the slot', () => {
    const keys = Array.from({ length: 1000 }, (_, i) => `${key.slice(0, -9)}${i}`);
    expect(() => renderCard({ admin: { authorized_keys: keys } }, slot, 'test')).toThrow(/more than the image's 65536-byte pibond-card.yaml/);
  });

  it('needs a manifest with a slot, and settings that suit the definition', () => {
    expect(() => cardPatch({ definition: { value: def } }, { hostname: 'x' }, 'old.img')).toThrow(/old.img has no card-settings slot .* rebuild it/);
    const patch = cardPatch({ card: slot, definition: { value: def } }, { hostname: 'kitchen' }, 'new.img');
    expect(patch.offset).toBe(slot.offset);
    const routed = definitionSchema.parse({ name: 'fleet', bond: { slaves: [{ name: 'eth0', gateway: '192.168.1.1' }, { name: 'eth1', gateway: '192.168.8.1' }] } });
    expect(() => definitionWithCard(routed, { network: { addressing: { method: 'static', address: '192.168.1.50/24', dns: [] } } }, 'new.img')).toThrow(
      /do not suit the image's definition:\nnew.img: bond.slaves\[1\].gateway: is not in 192.168.1.50\/24's subnet/,
    );
  });
});
