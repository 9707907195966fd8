/**
 * Recognising a stock image (scripts/lib/stock/detect.ts, rules.ts) on facts recorded from the real
 * images and pibond's look-alikes (test/fixtures/stock): each sample is a row, the look-alikes
 * recognised by the same rules as the images they imitate, and each refusal names the file and
 * what was found.
 */
import { existsSync } from 'node:fs';
import { readFile, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { networkStacks } from '../../../scripts/lib/definition/schema.ts';
import { UserError } from '../../../scripts/lib/errors.ts';
import { type StockFacts, type StockImage, detectStock, markerPaths, parseDpkgStatus, parseOsRelease } from '../../../scripts/lib/stock/detect.ts';
import { otherKernels, stockRules } from '../../../scripts/lib/stock/rules.ts';

const samplesDir = join(import.meta.dirname, '../../fixtures/stock');
const samples = (await readdir(samplesDir, { withFileTypes: true }))
  .filter((entry) => entry.isDirectory() && existsSync(join(samplesDir, entry.name, 'facts.json')))
  .map((entry) => entry.name);

/** A sample's facts, as the stock image step assembles them from the inspector's report and files. */
async function sample(name: string): Promise<StockFacts> {
  const dir = join(samplesDir, name);
  const dpkg = parseDpkgStatus(await readFile(join(dir, 'status'), 'utf8'));
  const recorded = JSON.parse(await readFile(join(dir, 'facts.json'), 'utf8')) as Pick<StockFacts, 'files' | 'partitions'>;
  return {
    osRelease: await readFile(join(dir, 'os-release'), 'utf8'),
    files: recorded.files,
    partitions: recorded.partitions,
    packages: dpkg.packages,
    architecture: dpkg.architecture,
  };
}

/** `facts` with packages added (name -> version) or taken out (name -> undefined). */
function withPackages(facts: StockFacts, changes: Record<string, string | undefined>): StockFacts {
  const packages = new Map(facts.packages);
  for (const [name, version] of Object.entries(changes)) {
    if (version === undefined) packages.delete(name);
    else packages.set(name, version);
  }
  return { ...facts, packages };
}

/** The UserError detectStock refuses `facts` with. */
function refusal(facts: StockFacts, source: string): UserError {
  try {
    detectStock(facts, source);
  } catch (err) {
    if (err instanceof UserError) return err;
    throw err;
  }
  throw new Error(`detectStock accepted ${source}`);
}

const recognised: readonly (Pick<StockImage, 'rule' | 'stack' | 'cloudInit' | 'kernelBootsVirt' | 'nodejs' | 'version'> & { sample: string })[] = [
  { sample: 'raspios-bookworm-lite', rule: 'raspios-bookworm', version: '12', stack: 'networkmanager', cloudInit: false, kernelBootsVirt: false, nodejs: undefined },
  { sample: 'raspios-trixie-lite', rule: 'raspios-trixie', version: '13', stack: 'networkmanager', cloudInit: true, kernelBootsVirt: false, nodejs: undefined },
  { sample: 'ubuntu-24.04-server-raspi', rule: 'ubuntu-noble', version: '24.04', stack: 'netplan', cloudInit: true, kernelBootsVirt: false, nodejs: undefined },
  { sample: 'ubuntu-22.04-server-raspi', rule: 'ubuntu-jammy', version: '22.04', stack: 'netplan', cloudInit: true, kernelBootsVirt: false, nodejs: undefined },
  // The look-alikes: the real images' rules, with Debian's kernel, which boots QEMU's virt machine.
  { sample: 'lookalike-raspios', rule: 'raspios-bookworm', version: '12', stack: 'networkmanager', cloudInit: false, kernelBootsVirt: false, nodejs: undefined },
  { sample: 'lookalike-ubuntu', rule: 'ubuntu-noble', version: '24.04', stack: 'netplan', cloudInit: true, kernelBootsVirt: true, nodejs: undefined },
];

const refused: readonly { sample: string; message: RegExp }[] = [
  { sample: 'raspios-bookworm-armhf', message: /Raspberry Pi OS bookworm .* is built for armhf; pibond lays onto 64-bit \(arm64\) images only: 32-bit Raspberry Pi OS \(armhf\) is not supported/ },
  { sample: 'debian-bookworm-raspi', message: /pibond does not know this image\. Its os-release says ID=debian VERSION_CODENAME=bookworm/ },
];

describe('the recorded samples', () => {
  it('each has a row here, so a new sample cannot go untested', () => {
    expect([...samples].sort()).toEqual([...recognised, ...refused].map((row) => row.sample).sort());
  });

  it('record only marker files the inspector is asked about', async () => {
    for (const name of samples) {
      for (const file of (await sample(name)).files) expect(markerPaths, `${name}: ${file}`).toContain(file);
    }
  });
});

describe.each(recognised)('$sample', ({ sample: name, ...expected }) => {
  it(`is ${expected.rule}: stack ${expected.stack}, cloud-init ${expected.cloudInit}, kernel boots virt ${expected.kernelBootsVirt}`, async () => {
    const found = detectStock(await sample(name), `${name}.img.xz`);
    expect(found.rule).toBe(expected.rule);
    expect(found.version).toBe(expected.version);
    expect(found.stack).toBe(expected.stack);
    expect(found.cloudInit).toBe(expected.cloudInit);
    expect(found.kernelBootsVirt).toBe(expected.kernelBootsVirt);
    expect(found.nodejs).toBe(expected.nodejs);
    expect(found.architecture).toBe('arm64');
    expect(found.bootMount).toBe('/boot/firmware');
  });
});

describe.each(refused)('$sample', ({ sample: name, message }) => {
  it('is refused, naming the file', async () => {
    const err = refusal(await sample(name), `${name}.img.xz`);
    expect(err.message).toMatch(new RegExp(`^${name}\\.img\\.xz: `));
    expect(err.message).toMatch(message);
  });
});

describe('what is reported of a recognised image', () => {
  it('gives the whole picture of Raspberry Pi OS bookworm, with nothing to note', async () => {
    expect(detectStock(await sample('raspios-bookworm-lite'), '2024-11-19-raspios-bookworm-arm64-lite.img.xz')).toEqual({
      rule: 'raspios-bookworm',
      name: 'Raspberry Pi OS bookworm',
      distribution: 'raspios',
      release: 'bookworm',
      version: '12',
      architecture: 'arm64',
      stack: 'networkmanager',
      bootMount: '/boot/firmware',
      cloudInit: false,
      nodejs: undefined,
      kernels: ['linux-image-6.6.51+rpt-rpi-2712', 'linux-image-6.6.51+rpt-rpi-v8', 'linux-image-rpi-2712', 'linux-image-rpi-v8'],
      kernelBootsVirt: false,
      labels: { boot: 'bootfs', root: 'rootfs' },
      notes: [],
    });
  });

  it("notes where a look-alike differs from the real image: labels, kernel", async () => {
    const raspios = detectStock(await sample('lookalike-raspios'), 'raspios.img.zst');
    // The look-alike has no kernel at all: like the real image's, none of it boots QEMU's virt machine.
    expect(raspios.kernels).toEqual([]);
    expect(raspios.labels).toEqual({ boot: 'BOOTFS', root: 'rootfs' });
    expect(raspios.notes).toEqual(['partition labels are BOOTFS/rootfs (Raspberry Pi OS bookworm has bootfs/rootfs)', 'no kernel package found']);
    const ubuntu = detectStock(await sample('lookalike-ubuntu'), 'ubuntu.img.zst');
    expect(ubuntu.notes[0]).toBe('partition labels are BOOTFS/rootfs (Ubuntu Server 24.04 for Raspberry Pi has system-boot/writable)');
  });

  it("reports Ubuntu's own kernel and labels, and trixie's NetworkManager with netplan", async () => {
    const noble = detectStock(await sample('ubuntu-24.04-server-raspi'), 'noble.img.xz');
    expect(noble.kernels).toEqual(['linux-image-6.8.0-1004-raspi', 'linux-image-raspi', 'linux-raspi']);
    expect(noble.labels).toEqual({ boot: 'system-boot', root: 'writable' });
    expect(noble.notes).toEqual([]);
    const trixie = detectStock(await sample('raspios-trixie-lite'), 'trixie.img.xz');
    expect(trixie.notes).toEqual([expect.stringMatching(/netplan YAML .* nmcli/)]);
  });

  it('notes cloud-init where the real image has none, and none where it has it', async () => {
    const bookworm = await sample('raspios-bookworm-lite');
    expect(detectStock(withPackages(bookworm, { 'cloud-init': '22.4.2-1+deb12u4' }), 'x.img').notes).toEqual(['cloud-init is installed, which Raspberry Pi OS bookworm does not ship']);
    const noble = await sample('ubuntu-24.04-server-raspi');
    const withoutCloudInit = detectStock(withPackages(noble, { 'cloud-init': undefined }), 'x.img');
    expect(withoutCloudInit.cloudInit).toBe(false);
    expect(withoutCloudInit.notes).toEqual(['cloud-init is not installed (Ubuntu Server 24.04 for Raspberry Pi ships it)']);
  });

  it('takes a Pi kernel beside a generic one as booting virt, and notes an image without a kernel', async () => {
    const bookworm = await sample('raspios-bookworm-lite');
    expect(detectStock(withPackages(bookworm, { 'linux-image-arm64': '6.1.176-1' }), 'x.img').kernelBootsVirt).toBe(true);
    const noKernel = detectStock(
      withPackages(bookworm, { 'linux-image-rpi-v8': undefined, 'linux-image-rpi-2712': undefined, 'linux-image-6.6.51+rpt-rpi-v8': undefined, 'linux-image-6.6.51+rpt-rpi-2712': undefined }),
      'x.img',
    );
    expect(noKernel.kernels).toEqual([]);
    expect(noKernel.kernelBootsVirt).toBe(false);
    expect(noKernel.notes).toEqual(['no kernel package found']);
  });

  it('leaves partitions after the root alone, and says so', async () => {
    const bookworm = await sample('raspios-bookworm-lite');
    const found = detectStock({ ...bookworm, partitions: [...bookworm.partitions, { type: 0x83, filesystem: 'ext4', label: 'data' }] }, 'x.img');
    expect(found.notes).toEqual(['p3, ext4 "data" (type 0x83), is left as it is']);
  });
});

describe("the image's own nodejs", () => {
  const cases = [
    { version: '18.19.0+dfsg-6~deb12u2', usable: true },
    { version: '18.20.4+dfsg-1~deb12u2', usable: true },
    { version: '20.20.2-1nodesource1', usable: true },
    { version: '1:22.11.0-1', usable: true },
    { version: '17.9.1-1', usable: false },
    { version: '12.22.12~dfsg-1', usable: false },
    { version: '12.22.9~dfsg-1ubuntu3', usable: false },
  ];
  it.each(cases)('$version is usable: $usable', async ({ version, usable }) => {
    const found = detectStock(withPackages(await sample('ubuntu-22.04-server-raspi'), { nodejs: version }), 'x.img');
    expect(found.nodejs).toBe(usable ? version : undefined);
    expect(found.notes.some((note) => note.includes(`its nodejs ${version} is older than Node 18`))).toBe(!usable);
  });
});

describe('refusals name the file and what was found', () => {
  it('an image without os-release', async () => {
    const err = refusal({ ...(await sample('raspios-bookworm-lite')), osRelease: undefined }, 'odd.img');
    expect(err.message).toBe('odd.img: its root file system (p2, ext4 "rootfs" (type 0x83)) has neither /etc/os-release nor /usr/lib/os-release, so pibond cannot tell what system it is');
  });

  it('an image that is neither FAT boot + ext4 root, nor MBR', async () => {
    const bookworm = await sample('raspios-bookworm-lite');
    const [boot, root] = bookworm.partitions;
    expect(refusal({ ...bookworm, partitions: [root!, boot!] }, 'swapped.img').message).toBe(
      'swapped.img: found partitions p1 ext4 "rootfs" (type 0x83), p2 vfat "bootfs" (type 0x0c); pibond lays onto an MBR image whose first partition is the FAT boot partition and whose second is the ext4 root, as Raspberry Pi OS\'s and Ubuntu\'s are',
    );
    expect(refusal({ ...bookworm, partitions: [boot!] }, 'one.img').message).toMatch(/^one\.img: found partitions p1 vfat "bootfs" \(type 0x0c\); /);
    expect(refusal({ ...bookworm, partitions: [] }, 'gpt.img').message).toMatch(/^gpt\.img: found no MBR partitions \(a GPT or unpartitioned image\?\)/);
  });

  it('32-bit Raspberry Pi OS: the architecture found, and that arm64 only is laid onto', async () => {
    const err = refusal(await sample('raspios-bookworm-armhf'), '2024-11-19-raspios-bookworm-armhf-lite.img.xz');
    expect(err.message).toBe(
      '2024-11-19-raspios-bookworm-armhf-lite.img.xz: Raspberry Pi OS bookworm (os-release: Raspbian GNU/Linux 12 (bookworm)) is built for armhf; ' +
        'pibond lays onto 64-bit (arm64) images only: 32-bit Raspberry Pi OS (armhf) is not supported, take the 64-bit (arm64) image of the same release',
    );
  });

  it('an image of another architecture that no rule knows', async () => {
    const debian = await sample('debian-bookworm-raspi');
    const err = refusal({ ...debian, architecture: 'amd64' }, 'pc.img');
    expect(err.message).toBe('pc.img: Debian GNU/Linux 12 (bookworm) is built for amd64; pibond lays onto 64-bit (arm64) images only');
  });

  it('a known image whose architecture cannot be told', async () => {
    const err = refusal({ ...(await sample('raspios-bookworm-lite')), architecture: undefined }, 'nodpkg.img');
    expect(err.message).toMatch(/^nodpkg\.img: Raspberry Pi OS bookworm .*its dpkg status lists no installed dpkg package, so its architecture is unknown/);
  });

  it('an image no rule knows: its ID and codename, the markers it has, the images pibond knows', async () => {
    const err = refusal(await sample('debian-bookworm-raspi'), 'raspi_4_bookworm.img.xz');
    expect(err.message).toBe(
      'raspi_4_bookworm.img.xz: pibond does not know this image. Its os-release says ID=debian VERSION_CODENAME=bookworm (Debian GNU/Linux 12 (bookworm)) and it has raspi-firmware; ' +
        'Raspberry Pi OS bookworm says so too, but has one of /etc/rpi-issue, raspberrypi-sys-mods. ' +
        'pibond knows Raspberry Pi OS bookworm, Raspberry Pi OS trixie, Ubuntu Server 22.04 for Raspberry Pi, Ubuntu Server 24.04 for Raspberry Pi (scripts/lib/stock/rules.ts)',
    );
  });

  it('a system no image pibond knows says it is', () => {
    const fedora: StockFacts = {
      osRelease: 'NAME="Fedora Linux"\nVERSION_ID=41\nID=fedora\nPRETTY_NAME="Fedora Linux 41 (Server Edition)"\n',
      files: [],
      packages: new Map(),
      architecture: undefined,
      partitions: [
        { type: 0x06, filesystem: 'vfat', label: 'EFI' },
        { type: 0x83, filesystem: 'ext4', label: 'root' },
      ],
    };
    expect(refusal(fedora, 'Fedora.raw.xz').message).toMatch(
      /^Fedora\.raw\.xz: pibond does not know this image\. Its os-release says ID=fedora VERSION_CODENAME=\(none\) \(Fedora Linux 41 \(Server Edition\)\) and it has none of the markers; no image pibond knows says so\. pibond knows Raspberry Pi OS bookworm, /,
    );
  });

  it("a known image without its network stack's package", async () => {
    const bookworm = withPackages(await sample('raspios-bookworm-lite'), { 'network-manager': undefined });
    expect(refusal(bookworm, 'no-nm.img').message).toBe(
      'no-nm.img: Raspberry Pi OS bookworm without its network stack: package network-manager is not installed. pibond renders the bond for networkmanager, the stack Raspberry Pi OS bookworm runs; start from an image that still has it',
    );
    const noble = withPackages(await sample('ubuntu-24.04-server-raspi'), { 'netplan.io': undefined });
    expect(refusal(noble, 'no-netplan.img').message).toMatch(/^no-netplan\.img: Ubuntu Server 24\.04 for Raspberry Pi without its network stack: package netplan\.io is not installed/);
  });
});

describe('the rules', () => {
  it('have unique ids, stacks pibond renders, and one `*` at most in a kernel pattern', () => {
    expect(new Set(stockRules.map((rule) => rule.id)).size).toBe(stockRules.length);
    for (const rule of stockRules) expect(networkStacks).toContain(rule.stack);
    for (const pattern of [...stockRules, ...otherKernels].flatMap((entry) => ('kernel' in entry ? entry.kernel.packages : entry.packages))) {
      expect(pattern.split('*').length, pattern).toBeLessThanOrEqual(2);
    }
  });

  it('are each matched by a recorded sample', () => {
    expect(stockRules.map((rule) => rule.id).sort()).toEqual([...new Set(recognised.map((row) => row.rule))].sort());
  });

  it('ask the inspector about every marker file', () => {
    expect(markerPaths).toEqual(['/etc/rpi-issue']);
  });

  it('need a marker besides os-release: Debian bookworm with /etc/rpi-issue alone, or raspberrypi-sys-mods alone, is Raspberry Pi OS', async () => {
    const debian = await sample('debian-bookworm-raspi');
    const withNetworkManager = withPackages(debian, { 'network-manager': '1.42.4-1+deb12u1' });
    expect(detectStock({ ...withNetworkManager, files: ['/etc/rpi-issue'] }, 'x.img').rule).toBe('raspios-bookworm');
    expect(detectStock(withPackages(withNetworkManager, { 'raspberrypi-sys-mods': '20241107' }), 'x.img').rule).toBe('raspios-bookworm');
    expect(refusal(withNetworkManager, 'x.img').message).toMatch(/does not know this image/);
  });
});

describe('parseOsRelease', () => {
  it('reads shell-style assignments, unquoting as the shell would', () => {
    const text = [
      '# a comment',
      '',
      'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"',
      "NAME='Single \\quoted'",
      'ID=debian',
      'VERSION_ID="12"\r',
      'QUOTES="say \\"hi\\" for \\$5 \\\\ \\`x\\`"',
      'BARE=a\\ b',
      'URL="https://example.org/?a=b"',
      '  INDENTED=yes  ',
      'not an assignment',
      'EMPTY=',
    ].join('\n');
    expect(parseOsRelease(text)).toEqual({
      PRETTY_NAME: 'Debian GNU/Linux 12 (bookworm)',
      NAME: 'Single \\quoted',
      ID: 'debian',
      VERSION_ID: '12',
      QUOTES: 'say "hi" for $5 \\ `x`',
      BARE: 'a b',
      URL: 'https://example.org/?a=b',
      INDENTED: 'yes',
      EMPTY: '',
    });
  });

  it('reads the recorded Ubuntu os-release', async () => {
    const fields = parseOsRelease(await readFile(join(samplesDir, 'ubuntu-24.04-server-raspi', 'os-release'), 'utf8'));
    expect(fields).toMatchObject({ ID: 'ubuntu', ID_LIKE: 'debian', VERSION_ID: '24.04', VERSION_CODENAME: 'noble', VERSION: '24.04 LTS (Noble Numbat)' });
  });
});

describe('parseDpkgStatus', () => {
  const status = `Package: dpkg
Essential: yes
Status: install ok installed
Architecture: arm64
Multi-Arch: foreign
Version: 1.21.22
Conffiles:
 /etc/dpkg/dpkg.cfg f4413ffb515f8f753624ae3bb365b81b
Description: Debian package management system
 Package: not-a-package
 .
 Version: 9

Package: network-manager
Status: hold ok installed
Architecture: arm64
Version: 1.42.4-1+rpt1

Package: dhcpcd5
Status: deinstall ok config-files
Architecture: arm64
Version: 1:8.1.2-1+rpt1

Package: half
Status: install ok half-configured
Architecture: arm64
Version: 1

Package: libc6
Status: install ok installed
Architecture: armhf
Multi-Arch: same
Version: 2.36-9+rpi1+deb12u9

Package: libc6
Status: install ok installed
Architecture: arm64
Multi-Arch: same
Version: 2.36-9+deb12u9
`;

  it('lists installed packages (held ones too) and dpkg\'s architecture; continuation lines are not fields', () => {
    const { packages, architecture } = parseDpkgStatus(status);
    expect(architecture).toBe('arm64');
    expect(Object.fromEntries(packages)).toEqual({ dpkg: '1.21.22', 'network-manager': '1.42.4-1+rpt1', libc6: '2.36-9+deb12u9' });
  });

  it('takes the native version of a package installed for two architectures, whichever comes first', () => {
    const reordered = status.split('\n\n');
    const [dpkg, ...rest] = reordered;
    const { packages } = parseDpkgStatus([...rest.reverse(), dpkg].join('\n\n'));
    expect(packages.get('libc6')).toBe('2.36-9+deb12u9');
  });

  it('has no architecture without an installed dpkg, and nothing from nothing', () => {
    expect(parseDpkgStatus('Package: dpkg\nStatus: deinstall ok config-files\nArchitecture: arm64\nVersion: 1.21.22\n').architecture).toBeUndefined();
    expect(parseDpkgStatus('')).toEqual({ packages: new Map(), architecture: undefined });
  });

  it('reads the recorded samples: every stanza installed, dpkg native', async () => {
    const bookworm = parseDpkgStatus(await readFile(join(samplesDir, 'raspios-bookworm-lite', 'status'), 'utf8'));
    expect(bookworm.architecture).toBe('arm64');
    expect(bookworm.packages.get('network-manager')).toBe('1.42.4-1+rpt1');
    expect(bookworm.packages.get('linux-image-rpi-v8')).toBe('1:6.6.51-1+rpt3');
    const armhf = parseDpkgStatus(await readFile(join(samplesDir, 'raspios-bookworm-armhf', 'status'), 'utf8'));
    expect(armhf.architecture).toBe('armhf');
  });
});
