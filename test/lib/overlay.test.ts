import { chmod, mkdir, mkdtemp, rm, symlink, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { collectOverlays, type OverlayEntry } from '../../scripts/lib/overlay.ts';
import { packTar } from '../../scripts/lib/tar.ts';
import { listTar } from './_tar-entries.ts';

const def = parseDefinition('name: overlay-test\nhostname: tree\n', 'overlay-test.yaml');
const epoch = 1_700_000_000;

/** Two overlays: 10-first lays a tree, 20-second replaces one of its files and renders one. */
const files: { path: string; content: string; executable: boolean }[] = [
  { path: '10-first/rootfs/etc/motd', content: 'from 10\n', executable: false },
  { path: '10-first/rootfs/etc/issue', content: 'kept\n', executable: false },
  { path: '10-first/rootfs/usr/lib/pibond/hello', content: '#!/bin/sh\necho hello\n', executable: true },
  { path: '10-first/rootfs/usr/lib/systemd/system/hello.service', content: '[Service]\nExecStart=/usr/lib/pibond/hello\n', executable: false },
  { path: '20-second/rootfs/etc/motd', content: 'from 20\n', executable: false },
  {
    path: '20-second/render.ts',
    content:
      "import type { Definition } from '../../scripts/lib/definition.ts';\n" +
      'export async function render(def: Definition) {\n' +
      "  return [{ path: 'etc/hostname', content: `${def.hostname}\\n`, mode: 0o644 }, { path: 'etc/issue.net', content: 'rendered', mode: 0o600 }];\n" +
      '}\n',
    executable: false,
  },
];
const links = [{ path: '10-first/rootfs/etc/systemd/system/multi-user.target.wants/hello.service', target: '/usr/lib/systemd/system/hello.service' }];

interface Checkout {
  /** Write order: a different order gives a different readdir order on most file systems. */
  reverse: boolean;
  /** The permission bits a checkout under some umask would give: [plain file, executable, directory]. */
  modes: [number, number, number];
  mtime: Date;
}

const temps: string[] = [];
afterEach(async () => {
  await Promise.all(temps.splice(0).map((dir) => rm(dir, { recursive: true, force: true })));
});

async function checkout({ reverse, modes, mtime }: Checkout): Promise<string> {
  const root = await mkdtemp(join(tmpdir(), 'pibond-overlay-'));
  temps.push(root);
  const ordered = reverse ? [...files].reverse() : files;
  for (const file of ordered) {
    const target = join(root, file.path);
    await mkdir(dirname(target), { recursive: true });
    await writeFile(target, file.content);
    await chmod(target, file.executable ? modes[1] : modes[0]);
    await utimes(target, mtime, mtime);
  }
  for (const link of links) {
    await mkdir(dirname(join(root, link.path)), { recursive: true });
    await symlink(link.target, join(root, link.path));
  }
  for (const dir of ['10-first/rootfs/etc', '10-first/rootfs/usr/lib/pibond', '20-second/rootfs/etc']) {
    await chmod(join(root, dir), modes[2]);
    await utimes(join(root, dir), mtime, mtime);
  }
  return root;
}

const umask022: Checkout = { reverse: false, modes: [0o644, 0o755, 0o755], mtime: new Date('2020-01-01T00:00:00Z') };
const umask077: Checkout = { reverse: true, modes: [0o600, 0o700, 0o700], mtime: new Date('2025-06-30T12:34:56Z') };

function summary(entries: OverlayEntry[]): string[] {
  return entries.map((e) =>
    e.type === 'symlink' ? `${e.path} -> ${e.target}` : e.type === 'directory' ? `${e.path}/ ${e.mode.toString(8)}` : `${e.path} ${e.mode.toString(8)} ${String(e.content).trim()}`,
  );
}

describe('collectOverlays', () => {
  it('lays overlays in name order: a later file replaces an earlier one, rendered files join in', async () => {
    const entries = await collectOverlays(await checkout(umask022), def);
    expect(summary(entries)).toEqual([
      'etc/ 755',
      'etc/hostname 644 tree',
      'etc/issue 644 kept',
      'etc/issue.net 600 rendered',
      'etc/motd 644 from 20',
      'etc/systemd/ 755',
      'etc/systemd/system/ 755',
      'etc/systemd/system/multi-user.target.wants/ 755',
      'etc/systemd/system/multi-user.target.wants/hello.service -> /usr/lib/systemd/system/hello.service',
      'usr/ 755',
      'usr/lib/ 755',
      'usr/lib/pibond/ 755',
      'usr/lib/pibond/hello 755 #!/bin/sh\necho hello',
      'usr/lib/systemd/ 755',
      'usr/lib/systemd/system/ 755',
      'usr/lib/systemd/system/hello.service 644 [Service]\nExecStart=/usr/lib/pibond/hello',
    ]);
  });

  it('keeps only the exec bit of a file: a umask of 077 gives the same modes as 022', async () => {
    const modes = (entries: OverlayEntry[]) => entries.map((e) => `${e.path} ${e.type === 'symlink' ? 'link' : e.mode.toString(8)}`);
    expect(modes(await collectOverlays(await checkout(umask077), def))).toEqual(modes(await collectOverlays(await checkout(umask022), def)));
  });

  it("merges a user's folder of overlays with the repo's in NN order, the later folder winning on equal names", async () => {
    const user = await mkdtemp(join(tmpdir(), 'pibond-user-overlays-'));
    temps.push(user);
    for (const [path, content] of [['15-mine/rootfs/etc/motd', 'from 15\n'], ['20-second/rootfs/etc/issue', 'mine\n'], ['90-last/rootfs/etc/extra', 'x\n']]) {
      await mkdir(dirname(join(user, path!)), { recursive: true });
      await writeFile(join(user, path!), content!);
    }
    const entries = summary(await collectOverlays([await checkout(umask022), user], def));
    // 20-second (repo) still replaces 15-mine's motd; the user's 20-second comes after the repo's.
    expect(entries).toContain('etc/motd 644 from 20');
    expect(entries).toContain('etc/issue 644 mine');
    expect(entries).toContain('etc/extra 644 x');
  });

  it('refuses an overlay folder outside the NN-name scheme', async () => {
    const root = await checkout(umask022);
    await mkdir(join(root, 'bond'));
    await expect(collectOverlays(root, def)).rejects.toThrow('overlay folders must be named NN-name, like 10-bond-ifupdown (got bond)');
  });
});

describe('overlay tars', () => {
  const tarOf = async (root: string) => packTar(await collectOverlays(root, def), epoch);

  it('are byte-identical from two checkouts with other mtimes, umasks and creation order', async () => {
    const first = await tarOf(await checkout(umask022));
    const second = await tarOf(await checkout(umask077));
    expect(second.equals(first)).toBe(true);
    expect(first.length).toBeGreaterThan(0);
  });

  it('differ when a file changes, or loses its exec bit', async () => {
    const root = await checkout(umask022);
    const before = await tarOf(root);
    await writeFile(join(root, '10-first/rootfs/etc/issue'), 'changed\n');
    const changed = await tarOf(root);
    expect(changed.equals(before)).toBe(false);
    await chmod(join(root, '10-first/rootfs/usr/lib/pibond/hello'), 0o644);
    const notExecutable = await tarOf(root);
    expect(notExecutable.equals(changed)).toBe(false);
    expect((await listTar(notExecutable)).find((e) => e.name === 'usr/lib/pibond/hello')?.mode).toBe(0o644);
  });

  it('keep the exec bit and put every directory before what it holds', async () => {
    const listed = await listTar(await tarOf(await checkout(umask077)));
    expect(listed.find((e) => e.name === 'usr/lib/pibond/hello')?.mode).toBe(0o755);
    const seen = new Set<string>(['.']);
    const beforeTheirDirectory = listed.filter((entry) => {
      seen.add(entry.name);
      return !seen.has(dirname(entry.name));
    });
    expect(beforeTheirDirectory.map((entry) => entry.name)).toEqual([]);
  });
});
