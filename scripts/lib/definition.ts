/**
 * Image definitions: the schema, and the one place where a YAML file becomes a typed `Definition`.
 * Everything after `loadDefinition` works on the typed value only.
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { parseDocument } from 'yaml';
import { z } from 'zod';
import { UserError } from './errors.ts';

const macAddress = z
  .string()
  .regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i, { error: 'must be a MAC address like 52:54:00:00:00:01' })
  .transform((mac) => mac.toLowerCase());

/** Linux interface names: 1 to 15 characters, no slash, colon or white space. */
const interfaceName = z
  .string()
  .regex(/^[A-Za-z0-9_.-]{1,15}$/, { error: 'must be an interface name of 1 to 15 letters, digits, "_", "." or "-"' });

const ipv4 = z.string().refine((s) => isIP(s) === 4, { error: 'must be an IPv4 address like 192.168.1.2' });
const ipAddress = z.string().refine((s) => isIP(s) !== 0, { error: 'must be an IPv4 or IPv6 address' });

const addressWithPrefix = z.string().refine(
  (s) => {
    const [ip, prefix, extra] = s.split('/');
    if (ip === undefined || prefix === undefined || extra !== undefined || !/^\d{1,3}$/.test(prefix)) return false;
    const family = isIP(ip);
    const length = Number(prefix);
    return (family === 4 && length <= 32) || (family === 6 && length <= 128);
  },
  { error: 'must be an address with a prefix length, like 192.168.1.2/24' },
);

const port = z.int().min(1).max(65535);

/** Sizes like "2GiB", "1536MiB" or a number of bytes; returned in bytes. */
const size = z.union([z.int().positive(), z.string()]).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const match = /^(\d+)\s*(MiB|GiB|M|G)$/.exec(value);
  if (!match) {
    ctx.addIssue({ code: 'custom', message: 'must be a size like 2GiB or 1536MiB' });
    return z.NEVER;
  }
  const unit = match[2]?.startsWith('G') ? 1024 ** 3 : 1024 ** 2;
  return Number(match[1]) * unit;
});

const slave = z.strictObject({
  /** The interface name the bond enslaves (eth0, eth1 on Raspberry Pi OS naming). */
  name: interfaceName,
  /** Optional: pin the name to the NIC with this permanent MAC (a systemd .link renames it). */
  mac: macAddress.optional(),
});

const bond = z.strictObject({
  name: interfaceName.default('bond0'),
  mode: z.enum(['active-backup']).default('active-backup'),
  slaves: z.array(slave).default([{ name: 'eth0' }, { name: 'eth1' }]),
  primary: interfaceName.default('eth0'),
  miimon: z.int().min(1).max(10_000).default(100),
  updelay: z.int().min(0).max(60_000).default(0),
  downdelay: z.int().min(0).max(60_000).default(0),
  primary_reselect: z.enum(['always', 'better', 'failure']).default('always'),
  fail_over_mac: z.enum(['none', 'active', 'follow']).default('none'),
});

const addressing = z.discriminatedUnion('method', [
  z.strictObject({ method: z.literal('dhcp') }),
  z.strictObject({
    method: z.literal('static'),
    address: addressWithPrefix,
    gateway: ipv4.optional(),
    dns: z.array(ipAddress).default([]),
  }),
]);

export const definitionSchema = z
  .strictObject({
    /** Names the outputs: out/<name>.img. */
    name: z.string().regex(/^[a-z0-9][a-z0-9._-]{0,62}$/, {
      error: 'must be 1 to 63 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
    }),
    base: z.strictObject({
      distribution: z.enum(['debian']).default('debian'),
      suite: z.enum(['bookworm']).default('bookworm'),
      architecture: z.enum(['arm64']).default('arm64'),
    }),
    mirror: z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).default('http://deb.debian.org/debian'),
    packages: z.array(z.string().regex(/^[a-z0-9][a-z0-9+.-]+$/, { error: 'must be a Debian package name' })).default([]),
    hostname: z
      .string()
      .regex(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, { error: 'must be a host name: letters, digits and "-", at most 63' })
      .default('pibond'),
    timezone: z.string().regex(/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/, { error: 'must be a zone like Europe/Berlin' }).default('Etc/UTC'),
    locale: z.string().regex(/^[A-Za-z_]+\.UTF-8$/, { error: 'must be a UTF-8 locale like en_GB.UTF-8 or C.UTF-8' }).default('C.UTF-8'),
    admin: z.strictObject({
      name: z.string().regex(/^[a-z_][a-z0-9_-]{0,31}$/, { error: 'must be a Unix user name' }).default('pi'),
      authorized_keys: z
        .array(z.string().regex(/^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/=]+( .*)?$/, { error: 'must be an SSH public key line' }))
        .default([]),
    }).default({ name: 'pi', authorized_keys: [] }),
    bond: bond.default(bond.parse({})),
    network: z.strictObject({
      stack: z.enum(['ifupdown']).default('ifupdown'),
      addressing: addressing.default({ method: 'dhcp' }),
    }).default({ stack: 'ifupdown', addressing: { method: 'dhcp' } }),
    status_service: z.strictObject({
      listen: ipAddress.default('0.0.0.0'),
      port: port.default(8080),
    }).default({ listen: '0.0.0.0', port: 8080 }),
    disk: z.strictObject({
      size: size.default(2 * 1024 ** 3),
      boot_size: size.default(256 * 1024 ** 2),
      compression: z.enum(['zstd', 'xz', 'none']).default('zstd'),
    }).default({ size: 2 * 1024 ** 3, boot_size: 256 * 1024 ** 2, compression: 'zstd' }),
  })
  .superRefine((def, ctx) => {
    const names = def.bond.slaves.map((s) => s.name);
    if (def.bond.mode === 'active-backup' && names.length < 2) {
      ctx.addIssue({ code: 'custom', path: ['bond', 'slaves'], message: 'active-backup needs at least two slaves' });
    }
    names.forEach((name, i) => {
      if (names.indexOf(name) !== i) ctx.addIssue({ code: 'custom', path: ['bond', 'slaves', i, 'name'], message: `${name} is listed twice` });
    });
    if (!names.includes(def.bond.primary)) {
      ctx.addIssue({ code: 'custom', path: ['bond', 'primary'], message: `must be one of the slaves: ${names.join(', ')}` });
    }
    if (names.includes(def.bond.name)) {
      ctx.addIssue({ code: 'custom', path: ['bond', 'name'], message: 'must differ from every slave name' });
    }
    if (def.disk.boot_size + 256 * 1024 ** 2 > def.disk.size) {
      ctx.addIssue({ code: 'custom', path: ['disk', 'size'], message: 'must leave at least 256MiB for the root partition after the boot partition' });
    }
  });

/** A validated image definition: the only shape of configuration the build and boot code see. */
export type Definition = z.output<typeof definitionSchema>;

/** One problem in one definition file, with everything a user needs to fix it. */
export interface DefinitionProblem {
  file: string;
  path: string;
  value: unknown;
  message: string;
}

export class DefinitionError extends UserError {
  constructor(readonly problems: DefinitionProblem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

export function formatProblem(p: DefinitionProblem): string {
  const value = p.value === undefined ? 'missing' : JSON.stringify(p.value);
  return `${p.file}: ${p.path || '(top level)'}: ${p.message} (got ${value})`;
}

/** Parses and validates one definition; throws a DefinitionError listing every problem at once. */
export async function loadDefinition(file: string): Promise<Definition> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new UserError(`${file}: cannot read the definition: ${(err as Error).message}`);
  }
  return parseDefinition(text, file);
}

export function parseDefinition(text: string, file: string): Definition {
  const doc = parseDocument(text, { uniqueKeys: true });
  if (doc.errors.length > 0) {
    throw new DefinitionError(doc.errors.map((e) => ({ file, path: `line ${e.linePos?.[0]?.line ?? '?'}`, value: undefined, message: `YAML: ${e.message.split('\n')[0]}` })));
  }
  const raw: unknown = doc.toJS();
  const result = definitionSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new DefinitionError(
    result.error.issues.map((issue) => ({
      file,
      path: issue.path.map(String).join('.'),
      value: valueAt(raw, issue.path),
      message: describeIssue(issue),
    })),
  );
}

function describeIssue(issue: z.core.$ZodIssue): string {
  switch (issue.code) {
    case 'unrecognized_keys':
      return `unknown key${issue.keys.length > 1 ? 's' : ''} ${issue.keys.join(', ')}`;
    case 'invalid_value':
      return `must be one of: ${issue.values.map((v) => String(v)).join(', ')}`;
    case 'invalid_union':
      return issue.message;
    default:
      return issue.message;
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

/** A stable hash of the validated definition, recorded in the manifest. */
export function definitionHash(def: Definition): string {
  return createHash('sha256').update(stableJson(def)).digest('hex');
}

export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}
