/**
 * Per-card settings: what may differ between the Pis that share one image (host name, address, SSH
 * keys), chosen when a card is flashed (`pibond flash`) or a test boot starts (`pibond boot`), with
 * no rebuild.
 *
 * Every image has a reserved file on its boot partition, `pibond-card.yaml`, 64 KiB in one run of
 * clusters, whose byte offset in the image the manifest records (`card`). The settings are written
 * into those bytes as YAML padded with newlines, so the FAT itself never changes and a card costs
 * no build time. At first boot, before the network, pibond-card.service (overlays/05-card) reads
 * them, checks them against the image's definition with the same schema as here, rewrites only the
 * files they touch, and empties the file.
 *
 * Settings use the definition's own names and rules (`hostname`, `network.addressing`,
 * `admin.authorized_keys`), so "validated like definitions" is literal.
 */
import { readFile } from 'node:fs/promises';
import { stringify } from 'yaml';
import { definitionSchema, type Definition } from './definition.ts';
import { loadYamlWith } from './definition/load.ts';
import { DefinitionError, type DefinitionProblem, formatProblem, schemaProblems } from './definition/problems.ts';
import { type CardSettings, cardFileSchema, cardSettingsSchema } from './definition/schema.ts';
import { UserError } from './errors.ts';

export type { CardSettings };

/** The reserved file's name on the boot partition (/boot/firmware on the device). */
export const cardFileName = 'pibond-card.yaml';
/** Its size: far more than a host name, an address and a dozen keys take. */
export const cardSlotBytes = 64 * 1024;
/** The reserved file's first line while it holds no settings; the rest is newlines. */
export const emptyCardLine = '# pibond card settings: none (pibond flash --hostname/--address/--ssh-key writes them here)';

/** Where a build put the reserved file: the manifest's `card`. */
export interface CardSlot {
  file: string;
  /** Byte offset of its first byte in the .img. */
  offset: number;
  bytes: number;
}

/** The options `pibond flash` and `pibond boot` share, for node:util parseArgs. */
export const cardOptions = {
  hostname: { type: 'string' },
  address: { type: 'string' },
  gateway: { type: 'string' },
  dns: { type: 'string', multiple: true },
  'ssh-key': { type: 'string', multiple: true },
  set: { type: 'string' },
  device: { type: 'string' },
} as const;

export const cardOptionsHelp = `Per-card settings (written to this card only, applied at its first boot before the network):
  --hostname NAME     the Pi's host name
  --address A/P|dhcp  a static address with its prefix length (192.168.1.50/24), or dhcp
  --gateway IP        the default gateway, with a static --address
  --dns IP            a name server, with a static --address (repeat for more)
  --ssh-key KEY|FILE  an SSH public key line, or a file of them (~/.ssh/id_ed25519.pub) for the
                      admin user, added to the image's own keys (repeat for more)
  --set FILE          a YAML file of settings (hostname, network.addressing, admin.authorized_keys),
                      optionally with a devices: list of per-device rows, each with a name
  --device NAME       the row of --set FILE's devices: list to use; the options above override it
`;

export interface CardValues {
  hostname?: string;
  address?: string;
  gateway?: string;
  dns?: string[];
  'ssh-key'?: string[];
  set?: string;
  device?: string;
}

/** The settings the options ask for, checked; undefined when they ask for none. */
export async function cardSettingsFrom(values: CardValues): Promise<CardSettings | undefined> {
  if (values.device !== undefined && values.set === undefined) throw new UserError('--device NAME picks a row of a --set FILE: give the file too');
  const fromFile = values.set === undefined ? {} : await settingsFromFile(values.set, values.device);
  const fromOptions = await settingsFromOptions(values);
  const merged = mergeSettings(fromFile, fromOptions);
  return Object.keys(merged).length === 0 ? undefined : merged;
}

/** `later` over `earlier`: a host name or addressing replaces; keys add up (once each). */
export function mergeSettings(earlier: CardSettings, later: CardSettings): CardSettings {
  const merged: CardSettings = { ...earlier };
  if (later.hostname !== undefined) merged.hostname = later.hostname;
  if (later.network?.addressing !== undefined) merged.network = { addressing: later.network.addressing };
  const keys = [...(earlier.admin?.authorized_keys ?? []), ...(later.admin?.authorized_keys ?? [])];
  if (keys.length > 0) merged.admin = { authorized_keys: [...new Set(keys)] };
  return merged;
}

/**
 * The image's definition with a card's settings in it, checked whole: a static address must still
 * suit the bond's routers, for example. Both the host (before writing a card) and the device (before
 * applying one) call this.
 */
export function definitionWithCard(def: Definition, card: CardSettings, where: string): Definition {
  const merged = {
    ...def,
    hostname: card.hostname ?? def.hostname,
    network: { ...def.network, addressing: card.network?.addressing ?? def.network.addressing },
    admin: { ...def.admin, authorized_keys: [...new Set([...def.admin.authorized_keys, ...(card.admin?.authorized_keys ?? [])])] },
  };
  const result = definitionSchema.safeParse(merged);
  if (result.success) return result.data;
  const problems = schemaProblems(result.error.issues, merged, where);
  throw new UserError(`these card settings do not suit the image's definition:\n${problems.map(formatProblem).join('\n')}`);
}

/** The reserved file's bytes for `card`: YAML, then newlines up to the slot's size. */
export function renderCard(card: CardSettings, slot: CardSlot, note: string): Buffer {
  const text = `# pibond card settings (${note}): applied at first boot, then removed.\n${stringify(card)}`;
  const bytes = Buffer.from(text, 'utf8');
  if (bytes.length > slot.bytes) throw new UserError(`the card settings take ${bytes.length} bytes, more than the image's ${slot.bytes}-byte ${slot.file}: fewer keys?`);
  return Buffer.concat([bytes, Buffer.alloc(slot.bytes - bytes.length, '\n')]);
}

/** The slot a manifest describes, or why the image has none. */
export function cardSlotOf(manifest: { card?: CardSlot }, imageFile: string): CardSlot {
  const slot = manifest.card;
  if (slot === undefined) {
    throw new UserError(`${imageFile} has no card-settings slot (${cardFileName}): it was built by an older pibond; rebuild it to use per-card settings`);
  }
  return slot;
}

/** The bytes to put at `offset` of the image so that the card carries `card`. */
export function cardPatch(
  manifest: { card?: CardSlot; definition: { value: Definition } },
  card: CardSettings,
  imageFile: string,
  note = 'written by pibond',
): { offset: number; data: Buffer } {
  const slot = cardSlotOf(manifest, imageFile);
  definitionWithCard(manifest.definition.value, card, imageFile);
  return { offset: slot.offset, data: renderCard(card, slot, note) };
}

/** A short description for progress lines: "host name kitchen, address 192.168.1.50/24, 1 SSH key". */
export function describeCard(card: CardSettings): string {
  const parts: string[] = [];
  if (card.hostname !== undefined) parts.push(`host name ${card.hostname}`);
  const addressing = card.network?.addressing;
  if (addressing !== undefined) parts.push(addressing.method === 'dhcp' ? 'address by DHCP' : `address ${addressing.address}`);
  const keys = card.admin?.authorized_keys?.length ?? 0;
  if (keys > 0) parts.push(`${keys} SSH key${keys === 1 ? '' : 's'}`);
  return parts.join(', ');
}

async function settingsFromFile(file: string, device: string | undefined): Promise<CardSettings> {
  const { devices, ...common } = await loadYamlWith(file, cardFileSchema, 'a card settings file');
  if (device === undefined) {
    if (devices !== undefined && devices.length > 0) {
      throw new UserError(`${file}: devices: lists ${devices.map((d) => d.name).join(', ')}; pick one with --device NAME`);
    }
    return common;
  }
  const row = devices?.find((d) => d.name === device);
  if (row === undefined) {
    const names = devices?.map((d) => d.name) ?? [];
    throw new UserError(`${file}: devices: has no device named "${device}"${names.length > 0 ? `; it has: ${names.join(', ')}` : ' (the file has no devices: list)'}`);
  }
  const { name: _name, ...settings } = row;
  return mergeSettings(common, settings);
}

/** Which option wrote which field, so a problem names the option the user typed. */
const optionOfField: [RegExp, string][] = [
  [/^hostname$/, '--hostname'],
  [/^network\.addressing\.(address|method)?$/, '--address'],
  [/^network\.addressing\.gateway$/, '--gateway'],
  [/^network\.addressing\.dns/, '--dns'],
  [/^admin\.authorized_keys/, '--ssh-key'],
];

async function settingsFromOptions(values: CardValues): Promise<CardSettings> {
  const raw: Record<string, unknown> = {};
  if (values.hostname !== undefined) raw.hostname = values.hostname;
  if (values.address === 'dhcp') {
    if (values.gateway !== undefined || values.dns !== undefined) throw new UserError('--gateway and --dns go with a static --address ADDRESS/PREFIX, not --address dhcp');
    raw.network = { addressing: { method: 'dhcp' } };
  } else if (values.address !== undefined) {
    raw.network = { addressing: { method: 'static', address: values.address, gateway: values.gateway, dns: values.dns ?? [] } };
  } else if (values.gateway !== undefined || values.dns !== undefined) {
    throw new UserError('--gateway and --dns go with a static --address ADDRESS/PREFIX');
  }
  const keys = await Promise.all((values['ssh-key'] ?? []).map(keyLines));
  if (keys.length > 0) raw.admin = { authorized_keys: keys.flat() };

  const result = cardSettingsSchema.safeParse(raw);
  if (result.success) return result.data;
  const problems: DefinitionProblem[] = schemaProblems(result.error.issues, raw, 'the command line', cardSettingsSchema).map((p) => ({
    ...p,
    path: optionOfField.find(([field]) => field.test(p.path))?.[1] ?? p.path,
  }));
  throw new DefinitionError(problems);
}

/** --ssh-key's value: a key line as it is, or a file's key lines (blank lines and comments left out). */
async function keyLines(value: string): Promise<string[]> {
  if (/^(ssh-|ecdsa-|sk-)/.test(value)) return [value.trim()];
  let text: string;
  try {
    text = await readFile(value, 'utf8');
  } catch (err) {
    throw new UserError(`--ssh-key ${value}: neither a public key line ("ssh-ed25519 AAAA...") nor a readable file: ${(err as Error).message}`);
  }
  const lines = text.split('\n').map((line) => line.trim()).filter((line) => line !== '' && !line.startsWith('#'));
  if (lines.length === 0) throw new UserError(`--ssh-key ${value}: the file holds no key lines`);
  return lines;
}
