/**
 * Applies a card's settings to the installed system: checks them against the image's definition
 * (the same schema as `pibond flash` used), rewrites only the files they touch, adds the SSH keys,
 * sets the host name, and leaves the card file holding no settings. Paths are under `root`, so a
 * test runs it on a scratch tree.
 */
import { chown, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { parse } from 'yaml';
import { type CardSettings, definitionWithCard, describeCard } from '../../../scripts/lib/card.ts';
import { definitionSchema, type Definition } from '../../../scripts/lib/definition.ts';
import { parseYamlWith } from '../../../scripts/lib/definition/load.ts';
import { cardSettingsSchema } from '../../../scripts/lib/definition/schema.ts';
import type { OverlayFile } from '../../../scripts/lib/overlay.ts';
import { hostNameFiles } from '../../00-base/render.ts';
import { addressingFiles as ifupdownFiles } from '../../10-bond-ifupdown/render.ts';
import { addressingFiles as netplanFiles } from '../../10-bond-netplan/render.ts';
import { addressingFiles as networkdFiles } from '../../10-bond-networkd/render.ts';
import { addressingFiles as networkManagerFiles } from '../../10-bond-networkmanager/render.ts';
import { healConfigFile } from '../../15-bond-heal/config-file.ts';

export interface CardPaths {
  /** The card file on the boot partition, as the device sees it: /boot/firmware/pibond-card.yaml. */
  card: string;
  /** The image's definition as the build wrote it: /etc/pibond/definition.json. */
  definition: string;
  /** Where the system's files are: / on the device. */
  root: string;
}

export interface CardEffects {
  setHostname(name: string): Promise<void>;
  /**
   * netplan's generator turned its YAML into networkd's files before any service ran, this one
   * included: when the card rewrote the YAML, they are generated again (networkd starts later).
   */
  regenerateNetplan(): Promise<void>;
  now(): Date;
  log(message: string): void;
}

type Stack = Definition['network']['stack'];

/** Each network stack's files that carry the addressing; a new stack adds its row. */
const addressingRows: Record<Stack, (def: Definition) => OverlayFile[]> = {
  ifupdown: ifupdownFiles,
  networkd: networkdFiles,
  networkmanager: networkManagerFiles,
  netplan: netplanFiles,
};

export type CardOutcome = { applied: false } | { applied: true; settings: CardSettings; rewritten: string[] };

export async function applyCard(paths: CardPaths, effects: CardEffects): Promise<CardOutcome> {
  const text = await readFile(paths.card, 'utf8').catch(() => '');
  // Comments and padding only: the card carries no settings (the build's placeholder, or a card
  // whose settings were applied at an earlier boot).
  if (isEmpty(text)) {
    effects.log('this card carries no settings of its own');
    return { applied: false };
  }
  const settings = parseYamlWith(text, paths.card, cardSettingsSchema, 'a card settings file');
  const imageDef = definitionSchema.parse(JSON.parse(await readFile(paths.definition, 'utf8')));
  const def = definitionWithCard(imageDef, settings, paths.card);

  const addressing = addressingRows[def.network.stack](def);
  const files = [...hostNameFiles(def), ...addressing, healConfigFile(def)];
  const rewritten: string[] = [];
  for (const file of files) {
    if (await writeIfChanged(join(paths.root, file.path), file.content, file.mode)) rewritten.push(`/${file.path}`);
  }
  if (def.network.stack === 'netplan' && addressing.some((file) => rewritten.includes(`/${file.path}`))) await effects.regenerateNetplan();
  const keys = settings.admin?.authorized_keys ?? [];
  if (keys.length > 0) rewritten.push(await addAuthorizedKeys(paths.root, def.admin.name, keys));
  if (await writeIfChanged(paths.definition, `${JSON.stringify(def, null, 2)}\n`, 0o644)) rewritten.push(paths.definition);
  if (settings.hostname !== undefined) await effects.setHostname(settings.hostname);

  // The settings are applied: the card keeps a note of that, and no keys or addresses.
  const note = `# pibond card settings: applied at ${effects.now().toISOString()} (${describeCard(settings)}); none now.\n`;
  await writeAtomically(paths.card, note, 0o644);
  effects.log(`applied this card's settings (${describeCard(settings)}); rewrote ${rewritten.join(', ') || 'nothing'}`);
  return { applied: true, settings, rewritten };
}

function isEmpty(text: string): boolean {
  try {
    const value: unknown = parse(text);
    return value === null || value === undefined;
  } catch {
    // Not YAML at all: the schema's parse reports it properly.
    return false;
  }
}

async function writeIfChanged(path: string, content: string | Buffer, mode: number): Promise<boolean> {
  const old = await readFile(path).catch(() => undefined);
  if (old?.equals(Buffer.from(content))) return false;
  // A stack's file the image did not have yet (NetworkManager's DNS configuration after a card's
  // static name servers) goes into a folder that may not be there either.
  await mkdir(dirname(path), { recursive: true });
  await writeAtomically(path, content, mode);
  return true;
}

/** A temporary file next to `path`, then a rename: a power cut leaves the old file or the new, whole. */
async function writeAtomically(path: string, content: string | Buffer, mode: number, owner?: { uid: number; gid: number }): Promise<void> {
  const temp = `${path}.pibond-new`;
  await writeFile(temp, content, { mode });
  if (owner) await chown(temp, owner.uid, owner.gid);
  await rename(temp, path);
}

/** Adds keys to the admin's authorized_keys, each once; returns the file's path. */
async function addAuthorizedKeys(root: string, admin: string, keys: readonly string[]): Promise<string> {
  const account = await passwdEntry(root, admin);
  const dir = join(root, account.home, '.ssh');
  const file = join(dir, 'authorized_keys');
  await mkdir(dir, { recursive: true, mode: 0o700 });
  await chown(dir, account.uid, account.gid);
  const existing = (await readFile(file, 'utf8').catch(() => '')).split('\n').filter((line) => line.trim() !== '');
  const lines = [...existing, ...keys.filter((key) => !existing.includes(key))];
  await writeAtomically(file, `${lines.join('\n')}\n`, 0o600, account);
  return join(account.home, '.ssh', 'authorized_keys');
}

async function passwdEntry(root: string, name: string): Promise<{ uid: number; gid: number; home: string }> {
  const passwd = await readFile(join(root, 'etc/passwd'), 'utf8');
  for (const line of passwd.split('\n')) {
    const [user, , uid, gid, , home] = line.split(':');
    if (user === name && uid !== undefined && gid !== undefined && home !== undefined) return { uid: Number(uid), gid: Number(gid), home };
  }
  throw new Error(`the admin user ${name} is not in ${join(root, 'etc/passwd')}`);
}

