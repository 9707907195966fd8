import { Buffer } from 'node:buffer';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DefinitionError, loadDefinition, parseDefinition } from '../../scripts/lib/definition.ts';
import { UserError } from '../../scripts/lib/errors.ts';

const fixtures = join(import.meta.dirname, '../fixtures/definitions');

/** The exact lines a user sees for a definition, or [] when it is valid. */
async function problemLines(name: string): Promise<string[]> {
  try {
    await loadDefinition(join(fixtures, name));
    return [];
  } catch (err) {
    if (err instanceof DefinitionError) return err.message.split('\n');
    throw err;
  }
}

/** `path: message` for each problem of `name: x` plus `yaml`, or [] when the definition is valid. */
function problems(yaml: string): string[] {
  try {
    parseDefinition(`name: x\n${yaml}\n`, 'x.yaml');
    return [];
  } catch (err) {
    if (err instanceof DefinitionError) return err.problems.map((p) => `${p.path}: ${p.message}`);
    throw err;
  }
}

describe('broken definitions report exactly what is wrong and what is allowed', () => {
  const cases: [fixture: string, lines: (file: string) => string[]][] = [
    [
      'broken-unknown-key.yaml',
      (f) => [
        `${f}: bond.primary_reselct: unknown key (did you mean primary_reselect?); allowed keys: name, mode, slaves, primary, miimon, arp_interval, arp_ip_target, arp_validate, updelay, downdelay, primary_reselect, fail_over_mac (got "better")`,
      ],
    ],
    ['broken-bad-enum.yaml', (f) => [`${f}: bond.mode: must be one of: active-backup (got "balance-rr")`]],
    ['broken-primary-not-slave.yaml', (f) => [`${f}: bond.primary: must be one of the slaves: eth0, eth1 (got "wlan0")`]],
    [
      'broken-one-slave.yaml',
      (f) => [`${f}: bond.slaves: active-backup needs at least two slaves: a primary and a backup (got [{"name":"eth0"}])`],
    ],
    [
      'broken-address-without-prefix.yaml',
      (f) => [`${f}: network.addressing.address: must be an address with a prefix length, like 192.168.1.2/24 (got "192.168.1.50")`],
    ],
    ['broken-bad-mac.yaml', (f) => [`${f}: bond.slaves[1].mac: must be a MAC address like 52:54:00:00:00:01 (got "00:e0:4c:68:01")`]],
    ['broken-port.yaml', (f) => [`${f}: status_service.port: must be a port from 1 to 65535 (got 80800)`]],
    [
      'broken-yaml.yaml',
      (f) => [`${f}: line 4, column 3: YAML syntax: Flow sequence in block collection must be sufficiently indented and end with a ] (got "  primary: eth0")`],
    ],
    [
      'broken-many.yaml',
      (f) => [
        `${f}: name: must be 1 to 63 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit (got "Many Problems")`,
        `${f}: base.suite: must be one of: bookworm (got "trixie")`,
        `${f}: bond.slaves[1].mac: must be a MAC address like 52:54:00:00:00:01 (got "not-a-mac")`,
        `${f}: bond.mtu: unknown key; allowed keys: name, mode, slaves, primary, miimon, arp_interval, arp_ip_target, arp_validate, updelay, downdelay, primary_reselect, fail_over_mac (got 9000)`,
        `${f}: bond.slaves[2].name: is already another slave; each slave must be listed once (got "eth0")`,
        `${f}: bond.primary: must be one of the slaves: eth0, eth1 (got "eth2")`,
        `${f}: bond.name: must differ from every slave name (eth0, eth1) (got "eth1")`,
        `${f}: bond.updelay: must be a multiple of miimon (100) (got 150)`,
        `${f}: network.addressing.address: must be an address with a prefix length, like 192.168.1.2/24 (got "10.0.0.5")`,
        `${f}: network.addressing.dns[1]: must be an IPv4 or IPv6 address like 192.168.1.1 (got "dns.example")`,
        `${f}: status_service.port: must be a port from 1 to 65535 (got 0)`,
        `${f}: disk.compresion: unknown key (did you mean compression?); allowed keys: size, boot_size, compression (got "xz")`,
      ],
    ],
  ];

  it.each(cases)('%s', async (fixture, lines) => {
    expect(await problemLines(fixture)).toEqual(lines(join(fixtures, fixture)));
  });
});

describe('parseDefinition', () => {
  const parse = (source: string) => {
    try {
      parseDefinition(source, 'x.yaml');
      return [];
    } catch (err) {
      if (err instanceof DefinitionError) return err.problems;
      throw err;
    }
  };

  it('fills the seed setup in as defaults: eth0 primary, eth1 backup, active-backup, miimon 100, DHCP', () => {
    const def = parseDefinition('name: minimal\n', 'minimal.yaml');
    expect(def.bond).toEqual({
      name: 'bond0',
      mode: 'active-backup',
      slaves: [{ name: 'eth0' }, { name: 'eth1' }],
      primary: 'eth0',
      miimon: 100,
      arp_interval: 0,
      arp_ip_target: [],
      arp_validate: 'none',
      updelay: 0,
      downdelay: 0,
      primary_reselect: 'always',
      fail_over_mac: 'none',
    });
    expect(def.network).toEqual({ stack: 'ifupdown', addressing: { method: 'dhcp' } });
    expect(def.uplink).toEqual({
      enabled: true,
      targets: ['1.1.1.1', '8.8.8.8', '9.9.9.9'],
      method: 'icmp',
      count: 2,
      reliability: 1,
      interval: 1000,
      failure_interval: 500,
      timeout: 1000,
      down: 3,
      up: 10,
    });
    expect(def.base).toEqual({ distribution: 'debian', suite: 'bookworm', architecture: 'arm64' });
    expect(def.disk).toEqual({ size: 2 * 1024 ** 3, boot_size: 256 * 1024 ** 2, compression: 'zstd' });
  });

  it('gives every problem its file, its field path and the bad value', () => {
    expect(parse('name: x\nbond:\n  slaves:\n    - name: eth0\n      mac: 52-54-00-00-00-01\n    - name: eth1\n')).toEqual([
      { file: 'x.yaml', path: 'bond.slaves[0].mac', value: '52-54-00-00-00-01', message: 'must be a MAC address like 52:54:00:00:00:01' },
    ]);
  });

  it('lower-cases MACs so a .link matches however they were written', () => {
    const def = parseDefinition('name: x\nbond:\n  slaves: [{name: eth0}, {name: lan1, mac: "00:E0:4C:68:00:01"}]\n', 'x.yaml');
    expect(def.bond.slaves[1]).toEqual({ name: 'lan1', mac: '00:e0:4c:68:00:01' });
  });

  it('reports a missing name and wrong types in our words, not zod\'s', () => {
    expect(parse('hostname: 42\nstatus_service: {port: "8080"}\nbond: {miimon: fast}\n').map((p) => `${p.path}: ${p.message}`)).toEqual([
      'name: must be 1 to 63 lower-case letters, digits, ".", "_" or "-", starting with a letter or digit',
      'hostname: must be a host name: letters, digits and "-", at most 63',
      'bond.miimon: must be a whole number of milliseconds from 1 to 10000, or 0 with the ARP monitor (arp_interval)',
      'status_service.port: must be a port from 1 to 65535',
    ]);
  });

  it('names the allowed keys of the addressing method the user chose', () => {
    expect(parse('name: x\nnetwork:\n  addressing: {method: dhcp, address: 10.0.0.2/24}\n').map((p) => `${p.path}: ${p.message}`)).toEqual([
      'network.addressing.address: unknown key; allowed keys: method',
    ]);
    expect(parse('name: x\nnetwork:\n  addressing: {method: ppp}\n').map((p) => `${p.path}: ${p.message}`)).toEqual([
      'network.addressing.method: must be one of: dhcp, static',
    ]);
  });

  it('reports duplicate keys, an empty file and a disk too small for the root partition', () => {
    expect(parse('name: x\nname: y\n')).toEqual([
      { file: 'x.yaml', path: 'line 2, column 1', value: 'name: y', message: 'YAML syntax: Map keys must be unique' },
    ]);
    expect(parse('')).toEqual([{ file: 'x.yaml', path: '', value: undefined, message: 'the file is empty; a definition needs at least a name' }]);
    expect(parse('name: x\ndisk: {size: 512MiB, boot_size: 384MiB}\n').map((p) => `${p.path}: ${p.message}`)).toEqual([
      'disk.size: must leave at least 256MiB for the root partition after boot_size',
    ]);
  });

  it('does not pile cross-field noise onto a field that is already wrong', () => {
    expect(parse('name: x\nbond: {slaves: [eth0, eth1]}\ndisk: {size: -5}\n').map((p) => `${p.path}: ${p.message}`)).toEqual([
      'bond.slaves[0]: must be a mapping with the keys name, mac, gateway',
      'bond.slaves[1]: must be a mapping with the keys name, mac, gateway',
      'disk.size: must be a size like 2GiB or 1536MiB, or a whole number of bytes',
    ]);
  });

  it('wants the gateway in the same IP version as the address', () => {
    expect(parse('name: x\nnetwork:\n  addressing: {method: static, address: "fd00::5/64", gateway: 10.0.0.1}\n')).toEqual([
      { file: 'x.yaml', path: 'network.addressing.gateway', value: '10.0.0.1', message: 'must be an IPv6 address, like the address fd00::5/64' },
    ]);
  });

  it('accepts the static fixture with every bond option set', async () => {
    const def = await loadDefinition(join(fixtures, 'static.yaml'));
    expect(def.network.addressing).toEqual({ method: 'static', address: '192.168.1.50/24', gateway: '192.168.1.1', dns: ['192.168.1.1', '9.9.9.9'] });
    expect(def.bond).toMatchObject({ updelay: 200, downdelay: 100, primary_reselect: 'better', fail_over_mac: 'active' });
  });
});

describe('input that once crashed the validator or slipped past it is one clear problem', () => {
  /** The lines a user sees, or the thrown error itself when it is not the expected kind. */
  const lines = (source: string) => {
    try {
      parseDefinition(source, 'x.yaml');
      return [];
    } catch (err) {
      if (err instanceof UserError) return err.message.split('\n');
      throw err;
    }
  };
  const cases: [what: string, source: string, lines: string[]][] = [
    [
      'an alias bomb (billion laughs)',
      'name: x\nbond:\n  a: &a [1, 1, 1, 1, 1, 1, 1, 1]\n  b: &b [*a, *a, *a, *a, *a, *a, *a, *a]\n  c: &c [*b, *b, *b, *b, *b, *b, *b, *b]\n  d: [*c, *c, *c, *c, *c, *c, *c, *c]\n',
      [
        'x.yaml: line 6, column 7: too many YAML aliases: *c alone stands for 585 values, past yaml\'s limit of 100 alias uses; definitions do not need aliases this large (got "  d: [*c, *c, *c, *c, *c, *c, *c, *c]")',
      ],
    ],
    [
      'more aliases than yaml expands, each of them small',
      `name: x\nbond: {a: &a 1}\npackages: [${Array(100).fill('*a, ').join('')}\n  *a]\n`,
      ['x.yaml: line 4, column 3: too many YAML aliases: 101, past yaml\'s limit of 100 alias uses; definitions do not need aliases this large (got "  *a]")'],
    ],
    ['an alias to no anchor', 'name: *nowhere\n', ['x.yaml: line 1, column 7: the alias *nowhere has no anchor &nowhere before it (got "name: *nowhere")']],
    [
      'an alias inside its own anchor',
      'name: x\nextra: &self\n  again: *self\n',
      ['x.yaml: line 3, column 10: the alias *self is inside its own anchor &self, so its value would never end (got "  again: *self")'],
    ],
    [
      'a tag for binary data',
      'name: !!binary aGVsbG8=\n',
      ['x.yaml: line 1, column 16: the YAML tag !!binary is not allowed; a definition holds plain text, numbers, true or false, lists and mappings (got "name: !!binary aGVsbG8=")'],
    ],
    [
      'a tag no one knows',
      'name: !python/object:os.system x\n',
      ['x.yaml: line 1, column 32: the YAML tag !python/object:os.system is not allowed; a definition holds plain text, numbers, true or false, lists and mappings (got "name: !python/object:os.system x")'],
    ],
    [
      'YAML 1.1, where yes is true and << merges',
      '%YAML 1.1\n---\nname: x\n<<: {hostname: yes}\n',
      ['x.yaml: line 1, column 1: YAML 1.1: a definition is YAML 1.2 (where yes and no are text, not true and false), so remove this line (got "%YAML 1.1")'],
    ],
    [
      'a list as a key',
      'name: x\n? [a, b]\n: 1\n',
      ['x.yaml: line 2, column 3: a key must be a plain name, not a list, a mapping or an alias (got "? [a, b]")'],
    ],
    [
      'two documents',
      'name: x\n---\nname: y\n',
      ['x.yaml: line 2, column 1: a second YAML document; a definition is one document, so this file needs no "---" line (got "---")'],
    ],
    [
      'flow lists nested thousands deep',
      `name: x\nbond: ${'['.repeat(3000)}${']'.repeat(3000)}\n`,
      // Where the parser gives up depends on the stack size, so the column is not part of the promise.
      [expect.stringMatching(/^x\.yaml: line 2, column \d+: the YAML nests too deeply to read; a definition nests a few levels at most \(got "bond: \[\[\[/)],
    ],
    ['a NUL character', 'name: x\0y\n', ['x.yaml: line 1, column 8: a NUL character; a definition is plain UTF-8 text (is this file UTF-16, or binary?) (got "name: x\\u0000y")']],
    ['a number past any double', 'name: x\nstatus_service: {port: 1e400}\n', ['x.yaml: status_service.port: must be a port from 1 to 65535 (got Infinity)']],
    ['a number past 2^53, once reported twice', 'name: x\nstatus_service: {port: 1e29}\n', ['x.yaml: status_service.port: must be a port from 1 to 65535 (got 1e+29)']],
    [
      'a document that is a list',
      '- name: x\n',
      ['x.yaml: (top level): must be a mapping with the keys name, base, mirror, packages, hostname, timezone, locale, admin, bond, network, uplink, status_service, disk (got [{"name":"x"}])'],
    ],
    [
      'a key that would set a prototype',
      'name: x\nbond:\n  __proto__: {name: eth0}\n',
      ['x.yaml: bond.__proto__: unknown key; allowed keys: name, mode, slaves, primary, miimon, arp_interval, arp_ip_target, arp_validate, updelay, downdelay, primary_reselect, fail_over_mac (got {"name":"eth0"})'],
    ],
    ['a byte order mark', '\uFEFFname: x\n', []],
  ];

  it.each(cases)('%s', (_what, source, expected) => {
    expect(lines(source)).toEqual(expected);
  });

  it('leaves Object.prototype alone whatever the keys', () => {
    lines('name: x\n__proto__: {polluted: true}\nconstructor: {prototype: {polluted: true}}\n');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  describe('files that are no definition', () => {
    let scratch: string;
    beforeAll(async () => {
      scratch = await mkdtemp(join(tmpdir(), 'pibond-definition-'));
    });
    afterAll(async () => {
      await rm(scratch, { recursive: true, force: true });
    });

    const load = async (file: string) => {
      try {
        await loadDefinition(file);
        return [];
      } catch (err) {
        if (err instanceof UserError) return err.message.split('\n').map((line) => line.replaceAll(file, 'F'));
        throw err;
      }
    };

    it('a directory', async () => {
      expect(await load(fixtures)).toEqual(['F: is a directory; name a definition file, like images/default.yaml']);
    });

    it('a file over 1 MiB, however it starts', async () => {
      const file = join(scratch, 'huge.yaml');
      await writeFile(file, `name: x\n# ${'x'.repeat(1024 ** 2)}\n`);
      expect(await load(file)).toEqual(['F: is larger than 1 MiB; a definition is a few dozen lines of YAML']);
    });

    it('Latin-1 and UTF-16 text', async () => {
      expect(await load(join(fixtures, 'broken-latin1.yaml'))).toEqual([
        'F: line 2, column 10: not UTF-8 text; save the definition as UTF-8 (was it written as Latin-1 or UTF-16?) (got "name: caf\uFFFD")',
      ]);
      const file = join(scratch, 'utf16.yaml');
      await writeFile(file, Buffer.from('\uFEFFname: x\n', 'utf16le'));
      expect(await load(file)).toEqual([expect.stringMatching(/^F: line 1, column 1: not UTF-8 text;/)]);
    });

    it('UTF-8 with a byte order mark is fine', async () => {
      const file = join(scratch, 'bom.yaml');
      await writeFile(file, '\uFEFFname: x\n');
      expect(await load(file)).toEqual([]);
    });
  });
});

describe('the uplink section and the kernel\'s ARP monitor', () => {
  const nine = Array.from({ length: 9 }, (_, i) => `10.0.0.${i + 1}`).join(', ');
  const seventeen = Array.from({ length: 17 }, (_, i) => `192.168.1.${i + 1}`).join(', ');

  it('accepts every uplink field within its range, and a switched-off tracker', () => {
    const def = parseDefinition(
      'name: x\nuplink: {targets: [1.1.1.1, 8.8.4.4], count: 5, reliability: 2, interval: 60000, failure_interval: 200, timeout: 10000, down: 20, up: 1}\n',
      'x.yaml',
    );
    expect(def.uplink).toEqual({ enabled: true, targets: ['1.1.1.1', '8.8.4.4'], method: 'icmp', count: 5, reliability: 2, interval: 60000, failure_interval: 200, timeout: 10000, down: 20, up: 1 });
    expect(parseDefinition('name: x\nuplink: {enabled: false}\n', 'x.yaml').uplink.enabled).toBe(false);
  });

  it.each([
    ['uplink: {enabled: "yes"}', 'uplink.enabled: must be true or false'],
    ['uplink: {targets: []}', 'uplink.targets: must be a list of 1 to 8 IPv4 addresses, like [1.1.1.1, 8.8.8.8]'],
    [`uplink: {targets: [${nine}]}`, 'uplink.targets: must be a list of 1 to 8 IPv4 addresses, like [1.1.1.1, 8.8.8.8]'],
    ['uplink: {targets: 1.1.1.1}', 'uplink.targets: must be a list of 1 to 8 IPv4 addresses, like [1.1.1.1, 8.8.8.8]'],
    ['uplink: {targets: [1.1.1.1, "2606:4700::1111"]}', 'uplink.targets[1]: must be a unicast IPv4 address like 1.1.1.1'],
    ['uplink: {targets: [1.1.1.1, 224.0.0.1]}', 'uplink.targets[1]: must be a unicast IPv4 address like 1.1.1.1'],
    ['uplink: {targets: [1.1.1.1, 8.8.8.8, 1.1.1.1]}', 'uplink.targets[2]: is already another target; each target must be listed once'],
    ['uplink: {method: tcp}', 'uplink.method: must be one of: icmp'],
    ['uplink: {count: 6}', 'uplink.count: must be a whole number of echo requests per target from 1 to 5'],
    ['uplink: {reliability: 0}', 'uplink.reliability: must be a whole number of targets from 1 to 8'],
    ['uplink: {reliability: 4}', 'uplink.reliability: must be at most the number of targets (3): it is how many must answer for a round to count as good'],
    ['uplink: {interval: 100}', 'uplink.interval: must be a whole number of milliseconds from 200 to 60000'],
    ['uplink: {failure_interval: 1.5}', 'uplink.failure_interval: must be a whole number of milliseconds from 200 to 60000'],
    ['uplink: {failure_interval: 2000}', 'uplink.failure_interval: must be at most interval (1000): a failing uplink is probed at least as often as a healthy one'],
    ['uplink: {timeout: 20000}', 'uplink.timeout: must be a whole number of milliseconds from 100 to 10000'],
    ['uplink: {down: 0}', 'uplink.down: must be a whole number of rounds from 1 to 20'],
    ['uplink: {up: 101}', 'uplink.up: must be a whole number of rounds from 1 to 100'],
    ['uplink: {interva: 500}', 'uplink.interva: unknown key (did you mean interval?); allowed keys: enabled, targets, method, count, reliability, interval, failure_interval, timeout, down, up'],
    ['uplink: on', 'uplink: must be a mapping with the keys enabled, targets, method, count, reliability, interval, failure_interval, timeout, down, up'],
  ])('%s: %s', (yaml, line) => {
    expect(problems(yaml)).toEqual([line]);
  });

  it('does not pile cross-field noise onto a field that is already wrong', () => {
    expect(problems('uplink: {targets: [1.1.1.1, nope], reliability: 9, interval: fast, failure_interval: 5000}')).toEqual([
      'uplink.targets[1]: must be a unicast IPv4 address like 1.1.1.1',
      'uplink.reliability: must be a whole number of targets from 1 to 8',
      'uplink.interval: must be a whole number of milliseconds from 200 to 60000',
    ]);
    expect(problems('bond: {miimon: fast, arp_interval: 1000, arp_ip_target: [192.168.1.1]}')).toEqual([
      'bond.miimon: must be a whole number of milliseconds from 1 to 10000, or 0 with the ARP monitor (arp_interval)',
    ]);
  });

  it('accepts the ARP monitor in place of miimon, with its targets and validation', () => {
    const def = parseDefinition('name: x\nbond: {miimon: 0, arp_interval: 1000, arp_ip_target: [192.168.1.1, 192.168.8.1], arp_validate: filter_backup}\n', 'x.yaml');
    expect(def.bond).toMatchObject({ miimon: 0, arp_interval: 1000, arp_ip_target: ['192.168.1.1', '192.168.8.1'], arp_validate: 'filter_backup' });
  });

  it.each([
    ['bond: {arp_interval: 1000, arp_ip_target: [192.168.1.1]}', 'bond.arp_interval: the ARP monitor replaces miimon (the kernel runs one or the other): set miimon: 0'],
    ['bond: {miimon: 0, arp_interval: 1000}', 'bond.arp_interval: needs arp_ip_target: the 1 to 16 IPv4 addresses the ARP monitor asks for'],
    ['bond: {miimon: 0}', 'bond.miimon: must be from 1 to 10000: 0 turns the link check off, which only the ARP monitor (arp_interval > 0) may replace'],
    ['bond: {arp_ip_target: [192.168.1.1]}', 'bond.arp_ip_target: is probed only by the ARP monitor: set arp_interval too, like 1000'],
    ['bond: {arp_validate: all}', 'bond.arp_validate: works only with the ARP monitor: set arp_interval too, like 1000'],
    ['bond: {arp_validate: sometimes}', 'bond.arp_validate: must be one of: none, active, backup, all, filter, filter_active, filter_backup'],
    ['bond: {arp_interval: -1}', 'bond.arp_interval: must be a whole number of milliseconds from 0 (off) to 10000'],
    [`bond: {miimon: 0, arp_interval: 1000, arp_ip_target: [${seventeen}]}`, 'bond.arp_ip_target: must be a list of 1 to 16 IPv4 addresses, like [192.168.1.1]'],
    ['bond: {miimon: 0, arp_interval: 1000, arp_ip_target: [255.255.255.255]}', 'bond.arp_ip_target[0]: must be a unicast IPv4 address like 192.168.1.1'],
    ['bond: {miimon: 0, arp_interval: 1000, arp_ip_target: [192.168.1.1, 192.168.1.1]}', 'bond.arp_ip_target[1]: is already another target; each target must be listed once'],
    ['bond: {miimon: 0, arp_interval: 1000, arp_ip_target: [192.168.1.1], updelay: 2000}', 'bond.updelay: works only with miimon, and the ARP monitor turns miimon off: set it to 0'],
  ])('%s: %s', (yaml, line) => {
    expect(problems(yaml)).toEqual([line]);
  });
});

describe('a stock image as the base (base.image)', () => {
  const sha = 'ab'.repeat(32);

  it('takes a path or an http(s) URL of a .img, .img.xz or .img.zst with its sha256 (lower-cased)', () => {
    for (const image of ['raspios.img.xz', 'https://downloads.example/ubuntu-24.04-preinstalled-server-arm64+raspi.img.xz', '../stock/x.img', 'x.img.zst']) {
      const def = parseDefinition(`name: x\nbase: {image: "${image}", sha256: ${sha.toUpperCase()}}\nnetwork: {stack: networkmanager}\n`, 'x.yaml');
      expect(def.base).toMatchObject({ image, sha256: sha });
    }
  });

  it.each([
    [`base: {image: x.iso, sha256: ${sha}}\nnetwork: {stack: netplan}`, 'base.image: must be the path or http(s):// URL of a .img, .img.xz or .img.zst file'],
    [`base: {image: ftp://host/x.img, sha256: ${sha}}\nnetwork: {stack: netplan}`, 'base.image: must be the path or http(s):// URL of a .img, .img.xz or .img.zst file'],
    ['base: {image: x.img}\nnetwork: {stack: netplan}', 'base.sha256: is needed with image: the sha256 its publisher lists beside the file (sha256sum FILE prints it)'],
    [`base: {sha256: ${sha}}`, 'base.image: is missing: sha256 checks a stock image, named by image (a .img, .img.xz or .img.zst path or URL)'],
    ['base: {image: x.img, sha256: abc}\nnetwork: {stack: netplan}', "base.sha256: must be the image file's sha256: 64 hexadecimal digits"],
    [
      `base: {image: x.img, sha256: ${sha}}`,
      "network.stack: must be the stock image's own network stack with base.image: networkmanager for Raspberry Pi OS, netplan for Ubuntu (neither runs ifupdown, the default)",
    ],
    [
      `base: {image: x.img, sha256: ${sha}}\nnetwork: {stack: netplan}\npackages: [vim]`,
      'packages: must be empty with base.image: nothing is installed onto a stock image (install them on the device with apt, or build from the Debian base)',
    ],
    [
      `base: {image: x.img, sha256: ${sha}}\nnetwork: {stack: netplan}\nlocale: en_GB.UTF-8`,
      "locale: cannot be set with base.image: a stock image's locale is its own (raspi-config or cloud-init sets it on the device)",
    ],
  ])('%s: %s', (yaml, line) => {
    expect(problems(yaml)).toEqual([line]);
  });
});
