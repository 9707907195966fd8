/**
 * The schema of an image definition, and the `Definition` type that the build and boot code see.
 *
 * Every schema carries its own message saying what is allowed, so a user reads
 * "must be a port from 1 to 65535", never zod's "Too big: expected number to be <=65535".
 */
import { isIP } from 'node:net';
import { z } from 'zod';

/**
 * zod skips a refinement as soon as any field below it has failed, so a file with a typo and a
 * primary that is not a slave would need two runs to show both. Cross-field checks run with this
 * option anyway, and guard themselves against fields that are not (yet) well-formed.
 */
const evenWhenFieldsFailed = { when: () => true };

/** A mapping whose keys are fixed: any other key is a typo and an error, never silently ignored. */
function section<Shape extends z.ZodRawShape>(shape: Shape) {
  const keys = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (issue) => (issue.code === 'invalid_type' ? `must be a mapping with the keys ${keys}` : undefined),
  });
}

function text(pattern: RegExp, message: string) {
  return z.string({ error: message }).regex(pattern);
}

function wholeNumber(min: number, max: number, message: string) {
  return z.int({ error: message }).min(min).max(max);
}

function oneOf<const Values extends readonly [string, ...string[]]>(values: Values) {
  return z.enum(values, { error: `must be one of: ${values.join(', ')}` });
}

function listOf<Item extends z.ZodType>(item: Item, message: string) {
  return z.array(item, { error: message });
}

const macAddress = text(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i, 'must be a MAC address like 52:54:00:00:00:01').transform((mac) =>
  mac.toLowerCase(),
);

/** Linux interface names: 1 to 15 characters, no slash, colon or white space. */
const interfaceName = text(/^[A-Za-z0-9_.-]{1,15}$/, 'must be an interface name of 1 to 15 letters, digits, "_", "." or "-"');

const ipAddress = z.string({ error: 'must be an IPv4 or IPv6 address like 192.168.1.1' }).refine((s) => isIP(s) !== 0);

/** Where probes go: a host's address, so not 0.x (this network), 127.x (loopback), multicast or broadcast. */
function unicastIPv4(example: string) {
  return z.string({ error: `must be a unicast IPv4 address like ${example}` }).refine((s) => {
    const first = Number(s.split('.')[0]);
    return isIP(s) === 4 && first !== 0 && first !== 127 && first < 224;
  });
}

const addressWithPrefix = z
  .string({ error: 'must be an address with a prefix length, like 192.168.1.2/24' })
  .refine((s) => {
    const [ip, prefix, extra] = s.split('/');
    if (ip === undefined || prefix === undefined || extra !== undefined || !/^\d{1,3}$/.test(prefix)) return false;
    const family = isIP(ip);
    const length = Number(prefix);
    return (family === 4 && length <= 32) || (family === 6 && length <= 128);
  });

const port = wholeNumber(1, 65535, 'must be a port from 1 to 65535');

const sizeMessage = 'must be a size like 2GiB or 1536MiB, or a whole number of bytes';
/** Sizes like "2GiB", "1536MiB" or a number of bytes; returned in bytes. */
const size = z.union([z.int({ error: sizeMessage }).positive(), z.string()], { error: sizeMessage }).transform((value, ctx) => {
  if (typeof value === 'number') return value;
  const match = /^(\d+)\s*(MiB|GiB|M|G)$/.exec(value);
  if (!match) {
    ctx.addIssue({ code: 'custom', message: sizeMessage });
    return z.NEVER;
  }
  const unit = match[2]?.startsWith('G') ? 1024 ** 3 : 1024 ** 2;
  return Number(match[1]) * unit;
});

/**
 * snapshot.debian.org serves the archive as it was at one moment, which only a URL pinned to a
 * timestamp names: .../archive/debian/ alone is a listing of dates, not a mirror.
 */
export const snapshotMirrorPattern = /^https?:\/\/snapshot\.debian\.org\/archive\/[a-z0-9-]+\/\d{8}T\d{6}Z\/?$/;
export const isSnapshotMirror = (url: string): boolean => /^https?:\/\/snapshot\.debian\.org\//.test(url);

const mirror = z.url({ protocol: /^https?$/, error: 'must be an http:// or https:// URL' }).refine((url) => !isSnapshotMirror(url) || snapshotMirrorPattern.test(url), {
  error: 'must be a snapshot pinned to a time, like http://snapshot.debian.org/archive/debian/20250301T000000Z/ (archive/<archive>/<YYYYMMDDTHHMMSSZ>/)',
});

/** A stock image: a file or URL whose name says it is a raw disk image, maybe compressed. */
const stockImage = text(/^\S(.*\S)?$/, 'must be the path or http(s):// URL of a .img, .img.xz or .img.zst file').refine(
  (value) => /\.img(\.xz|\.zst)?$/.test(value.split(/[?#]/)[0] ?? '') && (!/^[a-z]+:\/\//i.test(value) || /^https?:\/\//i.test(value)),
  { error: 'must be the path or http(s):// URL of a .img, .img.xz or .img.zst file' },
);

const MiB = 1024 ** 2;
const GiB = 1024 ** 3;

const slave = section({
  /** The interface name the bond enslaves (eth0, eth1 on Raspberry Pi OS naming). */
  name: interfaceName,
  /** Optional: pin the name to the NIC with this permanent MAC (a systemd .link renames it). */
  mac: macAddress.optional(),
  /**
   * Optional: the router's address on this slave's side, like 192.168.8.1. With static addressing it
   * is checked against the address's subnet; with DHCP it lets the healer renew the lease at once
   * when the bond switches to a slave whose router is another address.
   */
  gateway: ipAddress.optional(),
});

/**
 * The network stacks pibond renders the bond for (overlays/10-bond-*): Debian's ifupdown with
 * ifenslave, systemd-networkd, NetworkManager (Raspberry Pi OS bookworm's), and netplan rendering
 * to networkd (Ubuntu's).
 */
export const networkStacks = ['ifupdown', 'networkd', 'networkmanager', 'netplan'] as const;

/** ARP validation values each stack can write; the kernel's filter* values are ifupdown's and NetworkManager's only. */
const arpValidateModes = ['none', 'active', 'backup', 'all', 'filter', 'filter_active', 'filter_backup'] as const;
const arpValidateByStack: Record<(typeof networkStacks)[number], readonly string[]> = {
  ifupdown: arpValidateModes,
  networkmanager: arpValidateModes,
  // systemd.netdev(5) of systemd 252, ARPValidate=; netplan 0.106's arp-validate.
  networkd: ['none', 'active', 'backup', 'all'],
  netplan: ['none', 'active', 'backup', 'all'],
};

const bond = section({
  name: interfaceName.default('bond0'),
  mode: oneOf(['active-backup']).default('active-backup'),
  slaves: listOf(slave, 'must be a list of slaves, each a mapping with a name and an optional mac').default([
    { name: 'eth0' },
    { name: 'eth1' },
  ]),
  primary: interfaceName.default('eth0'),
  miimon: wholeNumber(0, 10_000, 'must be a whole number of milliseconds from 1 to 10000, or 0 with the ARP monitor (arp_interval)').default(100),
  /** The kernel's ARP monitor: a slave is up while ARP requests to arp_ip_target through it are answered. */
  arp_interval: wholeNumber(0, 10_000, 'must be a whole number of milliseconds from 0 (off) to 10000').default(0),
  arp_ip_target: listOf(unicastIPv4('192.168.1.1'), 'must be a list of 1 to 16 IPv4 addresses, like [192.168.1.1]').max(16).default([]),
  arp_validate: oneOf(arpValidateModes).default('none'),
  updelay: wholeNumber(0, 60_000, 'must be a whole number of milliseconds from 0 to 60000').default(0),
  downdelay: wholeNumber(0, 60_000, 'must be a whole number of milliseconds from 0 to 60000').default(0),
  primary_reselect: oneOf(['always', 'better', 'failure']).default('always'),
  fail_over_mac: oneOf(['none', 'active', 'follow']).default('none'),
}).superRefine(checkBond, evenWhenFieldsFailed);

const milliseconds = (min: number, max: number) => wholeNumber(min, max, `must be a whole number of milliseconds from ${min} to ${max}`);

/**
 * pibond-uplink (overlays/16-bond-uplink): each slave's uplink probed through that slave, and the
 * bond's primary moved when the primary's uplink is down and the backup's is not. The defaults
 * notice a dead line in ~3.5 s with under 1 kB/s of probes per uplink, and do not flap at 30 %
 * loss: a round fails only when all of its 2 x 3 echo requests go unanswered, and it takes 3 such
 * rounds in a row.
 */
const uplink = section({
  enabled: z.boolean({ error: 'must be true or false' }).default(true),
  /** Public anycast resolvers: answer pings from anywhere, and are never all down at once. */
  targets: listOf(unicastIPv4('1.1.1.1'), 'must be a list of 1 to 8 IPv4 addresses, like [1.1.1.1, 8.8.8.8]')
    .min(1)
    .max(8)
    .default(['1.1.1.1', '8.8.8.8', '9.9.9.9']),
  method: oneOf(['icmp']).default('icmp'),
  count: wholeNumber(1, 5, 'must be a whole number of echo requests per target from 1 to 5').default(2),
  reliability: wholeNumber(1, 8, 'must be a whole number of targets from 1 to 8').default(1),
  interval: milliseconds(200, 60_000).default(1000),
  failure_interval: milliseconds(200, 60_000).default(500),
  timeout: milliseconds(100, 10_000).default(1000),
  down: wholeNumber(1, 20, 'must be a whole number of rounds from 1 to 20').default(3),
  up: wholeNumber(1, 100, 'must be a whole number of rounds from 1 to 100').default(10),
}).superRefine(checkUplink, evenWhenFieldsFailed);

const addressing = z.discriminatedUnion(
  'method',
  [
    section({ method: z.literal('dhcp') }),
    section({
      method: z.literal('static'),
      address: addressWithPrefix,
      gateway: ipAddress.optional(),
      dns: listOf(ipAddress, 'must be a list of IP addresses').default([]),
    }).superRefine(checkGateway, evenWhenFieldsFailed),
  ],
  {
    // Its issues are typed as union issues, but a value that is no mapping at all raises invalid_type.
    error: (issue) =>
      (issue.code as string) === 'invalid_type' ? 'must be a mapping with method: dhcp or static' : 'must be one of: dhcp, static',
  },
);

const hostname = text(/^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/i, 'must be a host name: letters, digits and "-", at most 63');

const authorizedKeys = listOf(
  text(/^(ssh-(ed25519|rsa)|ecdsa-sha2-nistp(256|384|521)|sk-\S+) [A-Za-z0-9+/=]+( .*)?$/, 'must be an SSH public key line like "ssh-ed25519 AAAA... me@laptop"'),
  'must be a list of SSH public key lines',
);

const disk = section({
  size: size.default(2 * GiB),
  boot_size: size.default(256 * MiB),
  compression: oneOf(['zstd', 'xz', 'none']).default('zstd'),
}).superRefine(checkDisk, evenWhenFieldsFailed);

export const definitionSchema = section({
  /** Names the outputs: out/<name>.img. */
  name: text(/^[a-z0-9][a-z0-9._-]{0,62}$/, 'must be 1 to 63 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit'),
  base: section({
    distribution: oneOf(['debian']).default('debian'),
    suite: oneOf(['bookworm']).default('bookworm'),
    architecture: oneOf(['arm64']).default('arm64'),
    /**
     * A stock Raspberry Pi OS or Ubuntu image to lay pibond onto (scripts/image/steps/32-stock-image.ts),
     * instead of bootstrapping Debian: a path (relative to the definition's folder) or an http(s) URL.
     * Its distribution, release and network stack are detected; distribution and suite then go unused.
     */
    image: stockImage.optional(),
    /** The image file's sha256, as its publisher lists it (of the .img.xz for a compressed one). */
    sha256: text(/^[0-9a-fA-F]{64}$/, 'must be the image file\'s sha256: 64 hexadecimal digits').transform((hex) => hex.toLowerCase()).optional(),
  })
    .superRefine(checkStockImage, evenWhenFieldsFailed)
    .default({ distribution: 'debian', suite: 'bookworm', architecture: 'arm64' }),
  mirror: mirror.default('http://deb.debian.org/debian'),
  packages: listOf(text(/^[a-z0-9][a-z0-9+.-]+$/, 'must be a Debian package name like vim or tcpdump'), 'must be a list of Debian package names').default([]),
  hostname: hostname.default('pibond'),
  timezone: text(/^[A-Za-z0-9_+-]+(\/[A-Za-z0-9_+-]+)*$/, 'must be a zone like Europe/Berlin').default('Etc/UTC'),
  locale: text(/^[A-Za-z_]+\.UTF-8$/, 'must be a UTF-8 locale like en_GB.UTF-8 or C.UTF-8').default('C.UTF-8'),
  admin: section({
    name: text(/^[a-z_][a-z0-9_-]{0,31}$/, 'must be a Unix user name: lower-case letters, digits, "_" or "-", at most 32').default('pi'),
    authorized_keys: authorizedKeys.default([]),
  }).default({ name: 'pi', authorized_keys: [] }),
  bond: bond.default(bond.parse({})),
  network: section({
    stack: oneOf(networkStacks).default('ifupdown'),
    addressing: addressing.default({ method: 'dhcp' }),
  }).default({ stack: 'ifupdown', addressing: { method: 'dhcp' } }),
  uplink: uplink.default(uplink.parse({})),
  status_service: section({
    listen: ipAddress.default('0.0.0.0'),
    port: port.default(8080),
  }).default({ listen: '0.0.0.0', port: 8080 }),
  disk: disk.default({ size: 2 * GiB, boot_size: 256 * MiB, compression: 'zstd' }),
})
  .superRefine(checkStaticAcrossRouters, evenWhenFieldsFailed)
  .superRefine(checkStackCanRender, evenWhenFieldsFailed)
  .superRefine(checkStockBaseFields, evenWhenFieldsFailed);

/** A validated image definition: the only shape of configuration the build and boot code see. */
export type Definition = z.output<typeof definitionSchema>;

type RefinementContext = z.core.$RefinementCtx<unknown>;

/** The bond's rules that span fields. `bond` may hold fields that failed their own checks. */
function checkBond(bond: unknown, ctx: RefinementContext): void {
  if (!isMapping(bond)) return;
  const failed = (field: string) => failedItself(ctx, field);
  if (!Array.isArray(bond.slaves) || failed('slaves')) return;
  const slaves = bond.slaves.filter(isMapping);
  const names = slaves.map((s) => s.name).filter((name): name is string => typeof name === 'string');
  const distinctNames = [...new Set(names)].join(', ');
  // Comparing the primary with the slaves means something only when every slave has a name.
  const everySlaveNamed = names.length === bond.slaves.length;

  if (bond.mode === 'active-backup' && bond.slaves.length < 2) {
    ctx.addIssue({ code: 'custom', path: ['slaves'], message: 'active-backup needs at least two slaves: a primary and a backup' });
  }
  names.forEach((name, i) => {
    if (names.indexOf(name) !== i) ctx.addIssue({ code: 'custom', path: ['slaves', i, 'name'], message: 'is already another slave; each slave must be listed once' });
  });
  const macs = slaves.map((s) => s.mac);
  macs.forEach((mac, i) => {
    if (typeof mac === 'string' && macs.indexOf(mac) !== i) {
      ctx.addIssue({ code: 'custom', path: ['slaves', i, 'mac'], message: 'is already the MAC of another slave; each NIC must be listed once' });
    }
  });
  if (typeof bond.primary === 'string' && !failed('primary') && everySlaveNamed && !names.includes(bond.primary)) {
    ctx.addIssue({ code: 'custom', path: ['primary'], message: `must be one of the slaves: ${distinctNames}` });
  }
  if (typeof bond.name === 'string' && !failed('name') && names.includes(bond.name)) {
    ctx.addIssue({ code: 'custom', path: ['name'], message: `must differ from every slave name (${distinctNames})` });
  }
  checkMonitors(bond, ctx);
}

/**
 * The kernel runs either the link (MII) monitor or the ARP monitor: arp_interval > 0 turns miimon
 * off, and the delays belong to miimon (the kernel refuses them without it, and rounds them down
 * to a multiple of it, saying so only in dmesg).
 */
function checkMonitors(bond: Record<string, unknown>, ctx: RefinementContext): void {
  const failed = (field: string) => failedItself(ctx, field);
  const number = (field: string): number | undefined => (typeof bond[field] === 'number' && !failed(field) ? bond[field] : undefined);
  const miimon = number('miimon');
  const arpInterval = number('arp_interval');
  const targets = Array.isArray(bond.arp_ip_target) && !failed('arp_ip_target') ? bond.arp_ip_target : undefined;
  const issue = (field: string, message: string) => ctx.addIssue({ code: 'custom', path: [field], message });

  if (arpInterval !== undefined && arpInterval > 0) {
    if (miimon !== undefined && miimon !== 0) issue('arp_interval', 'the ARP monitor replaces miimon (the kernel runs one or the other): set miimon: 0');
    if (targets?.length === 0) issue('arp_interval', 'needs arp_ip_target: the 1 to 16 IPv4 addresses the ARP monitor asks for');
  } else if (arpInterval === 0) {
    if (miimon === 0) issue('miimon', 'must be from 1 to 10000: 0 turns the link check off, which only the ARP monitor (arp_interval > 0) may replace');
    if (targets !== undefined && targets.length > 0) issue('arp_ip_target', 'is probed only by the ARP monitor: set arp_interval too, like 1000');
    if (typeof bond.arp_validate === 'string' && !failed('arp_validate') && bond.arp_validate !== 'none') issue('arp_validate', 'works only with the ARP monitor: set arp_interval too, like 1000');
  }
  if (targets !== undefined) {
    targets.forEach((target, i) => {
      if (typeof target === 'string' && targets.indexOf(target) !== i) {
        ctx.addIssue({ code: 'custom', path: ['arp_ip_target', i], message: 'is already another target; each target must be listed once' });
      }
    });
  }
  for (const delay of ['updelay', 'downdelay'] as const) {
    const value = number(delay);
    if (miimon === undefined || value === undefined || value === 0) continue;
    if (miimon === 0) issue(delay, 'works only with miimon, and the ARP monitor turns miimon off: set it to 0');
    else if (value % miimon !== 0) issue(delay, `must be a multiple of miimon (${miimon})`);
  }
}

/** The uplink tracker's rules that span fields. */
function checkUplink(uplink: unknown, ctx: RefinementContext): void {
  if (!isMapping(uplink)) return;
  const failed = (field: string) => failedItself(ctx, field);
  const { targets, reliability, interval } = uplink;
  if (Array.isArray(targets) && !failed('targets')) {
    targets.forEach((target, i) => {
      if (typeof target === 'string' && targets.indexOf(target) !== i) {
        ctx.addIssue({ code: 'custom', path: ['targets', i], message: 'is already another target; each target must be listed once' });
      }
    });
    if (typeof reliability === 'number' && !failed('reliability') && targets.length > 0 && reliability > targets.length) {
      ctx.addIssue({ code: 'custom', path: ['reliability'], message: `must be at most the number of targets (${targets.length}): it is how many must answer for a round to count as good` });
    }
  }
  if (typeof uplink.failure_interval === 'number' && !failed('failure_interval') && typeof interval === 'number' && !failed('interval') && uplink.failure_interval > interval) {
    ctx.addIssue({ code: 'custom', path: ['failure_interval'], message: `must be at most interval (${interval}): a failing uplink is probed at least as often as a healthy one` });
  }
}

/** One stanza (`inet` or `inet6`) carries the address and the gateway, so they share a family. */
function checkGateway(addressing: unknown, ctx: RefinementContext): void {
  if (!isMapping(addressing) || typeof addressing.address !== 'string' || typeof addressing.gateway !== 'string') return;
  if (failedItself(ctx, 'address') || failedItself(ctx, 'gateway')) return;
  const family = isIP(addressing.address.split('/')[0] ?? '');
  if (isIP(addressing.gateway) !== family) {
    ctx.addIssue({ code: 'custom', path: ['gateway'], message: `must be an IPv${family} address, like the address ${addressing.address}` });
  }
}

/**
 * With static addressing the Pi keeps one address and one gateway whichever router is active: a
 * router on another subnet, or at another address, can never be reached after a switch (only DHCP
 * can follow it). Said where it is found, with what to set instead.
 */
function checkStaticAcrossRouters(def: unknown, ctx: RefinementContext): void {
  if (!isMapping(def) || !isMapping(def.bond) || !Array.isArray(def.bond.slaves)) return;
  if (!isMapping(def.network) || !isMapping(def.network.addressing) || def.network.addressing.method !== 'static') return;
  const { address, gateway } = def.network.addressing;
  if (typeof address !== 'string') return;
  const [ip, prefix] = address.split('/');
  if (ip === undefined || prefix === undefined || isIP(ip) === 0 || !/^\d{1,3}$/.test(prefix)) return;
  def.bond.slaves.forEach((slave, i) => {
    if (!isMapping(slave) || typeof slave.gateway !== 'string' || isIP(slave.gateway) === 0) return;
    const why = 'with static addressing the Pi keeps one address and gateway whichever router is active, so after a switch to this slave nothing would answer';
    const fix = 'use network.addressing.method: dhcp, or give both routers the same subnet and address';
    let wrong: string | undefined;
    if (isIP(slave.gateway) !== isIP(ip) || !sameSubnet(ip, slave.gateway, Number(prefix))) wrong = `is not in ${address}'s subnet`;
    else if (typeof gateway === 'string' && gateway !== slave.gateway) wrong = `is not network.addressing.gateway (${gateway})`;
    if (wrong !== undefined) ctx.addIssue({ code: 'custom', path: ['bond', 'slaves', i, 'gateway'], message: `${wrong}: ${why}; ${fix}` });
  });
}

/** Settings the chosen stack has no way to write. */
function checkStackCanRender(def: unknown, ctx: RefinementContext): void {
  if (!isMapping(def) || !isMapping(def.bond) || !isMapping(def.network)) return;
  const stack = def.network.stack as (typeof networkStacks)[number];
  const allowed = arpValidateByStack[stack] as readonly string[] | undefined;
  const value = def.bond.arp_validate;
  if (allowed === undefined || typeof value !== 'string' || allowed.includes(value) || !(arpValidateModes as readonly string[]).includes(value)) return;
  ctx.addIssue({
    code: 'custom',
    path: ['bond', 'arp_validate'],
    message: `${value} cannot be written by network.stack ${stack}: it takes ${allowed.join(', ')} (the filter values need ifupdown or networkmanager)`,
  });
}

/** An image needs its checksum: pibond lays onto exactly the file its user chose, or not at all. */
function checkStockImage(base: unknown, ctx: RefinementContext): void {
  if (!isMapping(base)) return;
  if (base.image !== undefined && base.sha256 === undefined && !failedItself(ctx, 'image')) {
    ctx.addIssue({ code: 'custom', path: ['sha256'], message: 'is needed with image: the sha256 its publisher lists beside the file (sha256sum FILE prints it)' });
  }
  if (base.sha256 !== undefined && base.image === undefined && !failedItself(ctx, 'sha256')) {
    ctx.addIssue({ code: 'custom', path: ['image'], message: 'is missing: sha256 checks a stock image, named by image (a .img, .img.xz or .img.zst path or URL)' });
  }
}

/**
 * What a stock image cannot take. Its packages are its own: nothing is installed onto it (a build
 * downloads no packages for it), its locale is its first boot's to set, and neither Raspberry Pi OS
 * nor Ubuntu runs ifupdown: the bond is rendered for the image's own stack.
 */
function checkStockBaseFields(def: unknown, ctx: RefinementContext): void {
  if (!isMapping(def) || !isMapping(def.base) || typeof def.base.image !== 'string') return;
  const issue = (path: string[], message: string) => ctx.addIssue({ code: 'custom', path, message });
  if (isMapping(def.network) && def.network.stack === 'ifupdown') {
    issue(['network', 'stack'], "must be the stock image's own network stack with base.image: networkmanager for Raspberry Pi OS, netplan for Ubuntu (neither runs ifupdown, the default)");
  }
  if (Array.isArray(def.packages) && def.packages.length > 0) {
    issue(['packages'], 'must be empty with base.image: nothing is installed onto a stock image (install them on the device with apt, or build from the Debian base)');
  }
  if (typeof def.locale === 'string' && def.locale !== 'C.UTF-8') {
    issue(['locale'], "cannot be set with base.image: a stock image's locale is its own (raspi-config or cloud-init sets it on the device)");
  }
}

/** Whether two addresses of one family share the first `prefix` bits. */
function sameSubnet(a: string, b: string, prefix: number): boolean {
  const bits = (ip: string): string =>
    isIP(ip) === 4
      ? ip.split('.').map((octet) => Number(octet).toString(2).padStart(8, '0')).join('')
      : expandIPv6(ip).map((group) => parseInt(group, 16).toString(2).padStart(16, '0')).join('');
  return bits(a).slice(0, prefix) === bits(b).slice(0, prefix);
}

function expandIPv6(ip: string): string[] {
  const [head = '', tail] = ip.split('::');
  const left = head === '' ? [] : head.split(':');
  const right = tail === undefined || tail === '' ? [] : tail.split(':');
  return [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right];
}

function checkDisk(disk: unknown, ctx: RefinementContext): void {
  if (!isMapping(disk) || typeof disk.size !== 'number' || typeof disk.boot_size !== 'number') return;
  if (failedItself(ctx, 'size') || failedItself(ctx, 'boot_size')) return;
  if (disk.boot_size + 256 * MiB > disk.size) {
    ctx.addIssue({ code: 'custom', path: ['size'], message: 'must leave at least 256MiB for the root partition after boot_size' });
  }
}

/** A field that failed its own check has been reported already; a second message on it is noise. */
function failedItself(ctx: RefinementContext, field: string): boolean {
  return ctx.issues.some((issue) => issue.path?.length === 1 && issue.path[0] === field);
}

export function isMapping(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/**
 * One card's settings (scripts/lib/card.ts): the definition fields that may differ between the Pis
 * of one image, with the definition's names and rules. Each is optional: a card changes only what it names.
 */
const cardFields = {
  hostname: hostname.optional(),
  network: section({ addressing: addressing.optional() }).optional(),
  admin: section({ authorized_keys: authorizedKeys.optional() }).optional(),
};

export const cardSettingsSchema = section(cardFields);

/** A `--set` file: settings for every card, and a `devices:` list of per-device rows picked by name. */
export const cardFileSchema = section({
  ...cardFields,
  devices: listOf(
    section({ name: text(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$/, 'must be a device name of letters, digits, ".", "_" or "-"'), ...cardFields }),
    'must be a list of devices, each a mapping with a name and the settings that differ',
  ).optional(),
});

export type CardSettings = z.output<typeof cardSettingsSchema>;
export type CardFile = z.output<typeof cardFileSchema>;
