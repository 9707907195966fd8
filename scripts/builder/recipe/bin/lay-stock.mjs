#!/usr/bin/env node
// Lays pibond onto a stock image's root file system in place, without mounting it: the overlays'
// tree (unpacked by the overlays step) plus the first-boot settings made here are written with
// debugfs, and nothing else of the image is touched: its files keep their owners, modes, links and
// file capabilities (ping's cap_net_raw), its directories theirs.
// Argument: one JSON object {image, tree, rootOffset, bootOffset, adminUser, authorizedKeys,
//   timezone, sourceDateEpoch, cloudInit (the image runs cloud-init), nodeRuntime (a node binary
//   to lay as /usr/lib/pibond/node, when the image has no Node of its own), dpkgRoot (where to copy
//   the image's dpkg status, for the manifest's package list)}.
// Prints one JSON line last: {card: {file, offset, bytes}, sizes: {rootfsBytes, kernelModulesBytes, bootBytes}, summary}.
// A root file system without room for what is laid fails with a line starting "lay-stock: no room:".
import { chmod, chown, copyFile, cp, mkdir, mkdtemp, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { $ } from 'zx';
import { card, cardContent, cardOffset } from './lib/card-slot.mjs';
import { debugfsErrors, ext4At } from './lib/ext4.mjs';
import { layCommands, parseChangedListing } from './lib/root-delta.mjs';

const input = JSON.parse(process.argv[2] ?? '{}');
const { image, tree, rootOffset, bootOffset, adminUser, authorizedKeys, timezone, sourceDateEpoch } = input;
const fs = ext4At(image, rootOffset);
const reproducible = { ...process.env, SOURCE_DATE_EPOCH: String(sourceDateEpoch) };
// Every inode time debugfs writes is SOURCE_DATE_EPOCH; what it zeroes is written, never a hole.
const rootEnv = { ...reproducible, E2FSPROGS_FAKE_TIME: String(sourceDateEpoch), UNIX_IO_NOZEROOUT: '1' };
/** Groups an admin joins where the image has them (Debian's and Ubuntu's names). */
const adminGroups = ['adm', 'sudo', 'systemd-journal'];
$.verbose = false;

/**
 * cloud-init renders its own network configuration at every boot where it finds one: Raspberry Pi
 * Imager's network-config puts eth0 on plain DHCP, which would take eth0 out of the bond. pibond's
 * stack files are the network's configuration; cloud-init keeps everything else (users, keys).
 */
const cloudInitNetworkOff = `# Written by pibond: the bond is configured by pibond's own files for this image's network stack.
# cloud-init must not write a network configuration of its own (a seed's network-config would put
# eth0 on plain DHCP, outside the bond). Its other modules (users, SSH keys) still run.
network:
  config: disabled
`;

const cloudInitNetplan = 'etc/netplan/50-cloud-init.yaml';

/** cloud-config keys that give an account a password, or turn SSH password log-in on. */
const setsPassword = /^\s*(-\s*)?(password|passwd|plain_text_passwd|hashed_passwd|chpasswd)\s*:|^\s*ssh_pwauth\s*:\s*(true|yes|1)\b/im;

const seedUserData = `#cloud-config
# Written by pibond over the image's own user-data, which set a default password. The admin
# account and its SSH keys are pibond's (the definition's admin); no account has a password.
ssh_pwauth: false
`;

const work = await mkdtemp('/work/lay.');
try {
  await settleAccounts();
  await settleTimezone();
  const removed = await perDeviceFiles();
  if (input.cloudInit) {
    await writeInTree('etc/cloud/cloud.cfg.d/99-pibond-network.cfg', cloudInitNetworkOff, 0o644);
    // What cloud-init rendered at an earlier boot (eth0 on DHCP, maybe matched by MAC): with its
    // network turned off it would stay, and netplan would merge it into the bond's NICs.
    removed.push(cloudInitNetplan);
  }
  if (input.nodeRuntime) {
    await rm(join(tree, 'usr/lib/pibond/node'), { force: true });
    await copyFile(input.nodeRuntime, join(tree, 'usr/lib/pibond/node'));
    await chmod(join(tree, 'usr/lib/pibond/node'), 0o755);
  }

  const epoch = `@${sourceDateEpoch}`;
  await $`find ${tree} -newermt ${epoch} -exec touch --no-dereference ${`--date=${epoch}`} {} +`;
  const entries = parseChangedListing((await $`find ${tree} -printf ${'%y %m %U %G %T@ %n %P\\0%l\\0'}`).stdout);
  const existing = await existingEntries([...entries.map((entry) => entry.path).filter(Boolean), ...removed]);
  await checkRoom(entries, existing);
  const { commands, summary } = layCommands({ existing, entries, removed, root: tree, sourceDateEpoch });
  const script = join(work, 'lay.debugfs');
  // The superblock's lifetime write counter says how the file system was made, not what it holds.
  await writeFile(script, `${[...commands, 'ssv kbytes_written 0'].join('\n')}\n`);
  const applied = await $({ env: rootEnv })`debugfs -w -f ${script} ${fs.device}`;
  const errors = debugfsErrors(applied.stderr);
  if (errors.length > 0) throw new Error(`lay-stock: debugfs could not lay the tree:\n  ${errors.slice(0, 10).join('\n  ')}`);
  console.log(`lay-stock: laid ${summary.written} files, ${summary.links} links, ${summary.directories} new directories; removed ${summary.removed} per-device files`);

  if (input.cloudInit) await seedWithoutPasswords();
  const slot = await cardSlot();
  await mkdir(join(input.dpkgRoot, 'var/lib/dpkg/info'), { recursive: true });
  await fs.copyOut('/var/lib/dpkg/status', join(input.dpkgRoot, 'var/lib/dpkg/status'));
  console.log(JSON.stringify({ card: slot, sizes: await sizes(), summary }));
} finally {
  await rm(work, { recursive: true, force: true });
}

/**
 * The admin account, key-only: made when the image lacks it (with its own group, the image's
 * admin groups, a home from /etc/skel), locked for passwords either way, and root locked too. The
 * account files are the image's, edited, so its other accounts stay exactly as they were.
 */
async function settleAccounts() {
  for (const file of ['passwd', 'shadow', 'group', 'gshadow']) {
    await mkdir(join(tree, 'etc'), { recursive: true });
    if (!(await fs.copyOut(`/etc/${file}`, join(tree, 'etc', file)))) throw new Error(`lay-stock: the image has no /etc/${file}`);
  }
  const table = async (file) => (await readFile(join(tree, 'etc', file), 'utf8')).split('\n').filter(Boolean).map((line) => line.split(':'));
  const passwd = await table('passwd');
  const shadow = await table('shadow');
  const group = await table('group');
  const gshadow = await table('gshadow');

  let account = passwd.find((fields) => fields[0] === adminUser);
  const made = account === undefined;
  if (made) {
    const uid = freeId(passwd.map((fields) => Number(fields[2])));
    const gid = group.some((fields) => Number(fields[2]) === uid) ? freeId(group.map((fields) => Number(fields[2]))) : uid;
    account = [adminUser, 'x', String(uid), String(gid), '', `/home/${adminUser}`, '/bin/bash'];
    passwd.push(account);
    shadow.push([adminUser, '!', String(Math.floor(sourceDateEpoch / 86400)), '0', '99999', '7', '', '', '']);
    group.push([adminUser, 'x', String(gid), '']);
    gshadow.push([adminUser, '!', '', '']);
  }
  for (const name of adminGroups) {
    for (const [rows, membersAt] of [[group, 3], [gshadow, 3]]) {
      const row = rows.find((fields) => fields[0] === name);
      if (!row) continue;
      const members = (row[membersAt] ?? '').split(',').filter(Boolean);
      if (!members.includes(adminUser)) row[membersAt] = [...members, adminUser].join(',');
    }
  }
  // A "!" before the hash locks password log-in and leaves the account's SSH keys working.
  for (const name of [adminUser, 'root']) {
    const row = shadow.find((fields) => fields[0] === name);
    if (row && !row[1].startsWith('!')) row[1] = `!${row[1]}`;
  }
  for (const [file, rows] of [['passwd', passwd], ['shadow', shadow], ['group', group], ['gshadow', gshadow]]) {
    const path = join(tree, 'etc', file);
    const { mode, uid, gid } = await stat(path);
    await writeFile(path, rows.map((fields) => `${fields.join(':')}\n`).join(''));
    await chmod(path, mode & 0o7777);
    await chown(path, uid, gid);
  }

  const uid = Number(account[2]);
  const gid = Number(account[3]);
  const home = join(tree, account[5]);
  await mkdir(home, { recursive: true });
  if (made) {
    const skel = join(work, 'skel');
    if (await fs.copyOut('/etc/skel', skel)) await cp(skel, home, { recursive: true });
    await $`chown -R ${`${uid}:${gid}`} ${home}`;
    await chmod(home, 0o700);
  }
  const ssh = join(home, '.ssh');
  await mkdir(ssh, { recursive: true });
  await writeFile(join(ssh, 'authorized_keys'), authorizedKeys.map((key) => `${key}\n`).join(''));
  await chmod(ssh, 0o700);
  await chmod(join(ssh, 'authorized_keys'), 0o600);
  await $`chown -R ${`${uid}:${gid}`} ${ssh}`;
}

/** The lowest id from 1000 on that no entry uses (Debian's FIRST_UID). */
function freeId(used) {
  let id = 1000;
  while (used.includes(id)) id++;
  return id;
}

async function settleTimezone() {
  await rm(join(tree, 'etc/localtime'), { force: true });
  await symlink(`/usr/share/zoneinfo/${timezone}`, join(tree, 'etc/localtime'));
  await writeFile(join(tree, 'etc/timezone'), `${timezone}\n`);
}

/**
 * Unique per device, made at first boot, never shipped: the SSH host keys go (pibond-ssh-keygen
 * makes them), machine-id is emptied (which also marks the first boot). Returns the paths to remove.
 */
async function perDeviceFiles() {
  const removed = [];
  for (const [name, entry] of (await fs.list('/etc/ssh')) ?? new Map()) {
    if (name.startsWith('ssh_host_') && entry.type !== 'd') removed.push(`etc/ssh/${name}`);
  }
  removed.push('var/lib/systemd/random-seed');
  // Debian links it to /etc/machine-id; an image with a file of its own there would keep its id.
  if ((await fs.type('/var/lib/dbus/machine-id')) === 'regular') removed.push('var/lib/dbus/machine-id');
  await writeInTree('etc/machine-id', '', 0o444);
  return removed;
}

async function writeInTree(path, content, mode) {
  await mkdir(dirname(join(tree, path)), { recursive: true });
  await writeFile(join(tree, path), content);
  await chmod(join(tree, path), mode);
}

/**
 * The image's entries at `paths`: one `ls -p` of each directory on the way to them, parents first
 * (a directory the image lacks, or has as a link, has nothing below it to find).
 */
async function existingEntries(paths) {
  const dirs = new Set(['']);
  for (const path of paths) for (let dir = dirname(path); dir !== '.'; dir = dirname(dir)) dirs.add(dir);
  const existing = new Map();
  // A parent sorts before its children.
  for (const dir of [...dirs].sort()) {
    if (dir !== '' && existing.get(dir) !== 'd') continue;
    const listed = await fs.list(`/${dir}`);
    for (const [name, entry] of listed ?? []) existing.set(dir === '' ? name : `${dir}/${name}`, entry.type);
  }
  return existing;
}

/** The tree's files need the root file system's free space (with a margin for directories and metadata). */
async function checkRoom(entries, existing) {
  const { blockSize, freeBlocks } = await fs.space();
  let needed = 0;
  for (const entry of entries.filter((e) => e.type === 'f')) {
    needed += Math.ceil((await stat(join(tree, entry.path))).size / blockSize) * blockSize;
  }
  needed += entries.filter((e) => e.type === 'd' && !existing.has(e.path)).length * blockSize;
  needed = Math.ceil(needed * 1.05) + 4 * 1024 ** 2;
  const free = freeBlocks * blockSize;
  if (needed > free) {
    const mib = (bytes) => `${(bytes / 1024 ** 2).toFixed(0)} MiB`;
    console.error(
      `lay-stock: no room: the image's root file system has ${mib(free)} free and pibond needs ${mib(needed)} ` +
        '(its services and, without a Node of the image\'s own, the Node runtime). Grow the image\'s root partition first ' +
        '(truncate -s +512M FILE; parted FILE resizepart 2 100%; then resize2fs on the partition), or free space in it.',
    );
    process.exit(4);
  }
}

/**
 * The boot partition's cloud-init user-data, replaced where it sets a password: Ubuntu's sets the
 * ubuntu user's password to "ubuntu" at first boot and turns SSH password log-in on. A pibond image
 * has no passwords: its admin and keys are the definition's. (Raspberry Pi Imager writes its own
 * user-data over this one when a user customises the card.)
 */
async function seedWithoutPasswords() {
  const fat = `${image}@@${bootOffset}`;
  const current = await $`mtype -i ${fat} ::/user-data`.quiet().nothrow();
  if (current.exitCode !== 0 || !setsPassword.test(current.stdout)) return;
  const file = join(work, 'user-data');
  await writeFile(file, seedUserData);
  await $({ env: reproducible })`mcopy -o -m -i ${fat} ${file} ::/user-data`;
  console.log('lay-stock: replaced the boot partition\'s cloud-init user-data (it set a default password)');
}

/** The card-settings slot on the image's boot partition (replacing one an earlier lay left). */
async function cardSlot() {
  const file = join(work, card.file);
  await writeFile(file, cardContent());
  const fat = `${image}@@${bootOffset}`;
  await $({ env: reproducible })`mcopy -o -m -i ${fat} ${file} ::/`;
  return { file: card.file, offset: await cardOffset(image, bootOffset), bytes: card.bytes };
}

/**
 * The manifest's sizes: the root file system's used space; the kernel's, as its packages record it
 * (Installed-Size of linux-image-*, linux-modules-*, raspberrypi-kernel); the boot partition's files.
 */
async function sizes() {
  const { blockSize, blocks, freeBlocks } = await fs.space();
  const status = await readFile(join(input.dpkgRoot, 'var/lib/dpkg/status'), 'utf8');
  let kernelModulesBytes = 0;
  for (const stanza of status.split(/\n\n+/)) {
    const name = /^Package: (.+)$/m.exec(stanza)?.[1] ?? '';
    if (!/^(linux-image-|linux-modules-|raspberrypi-kernel$)/.test(name) || !/^Status: .* installed$/m.test(stanza)) continue;
    kernelModulesBytes += Number(/^Installed-Size: (\d+)$/m.exec(stanza)?.[1] ?? 0) * 1024;
  }
  const boot = join(work, 'boot');
  await mkdir(boot);
  await $`mcopy -s -n -i ${`${image}@@${bootOffset}`} ${'::/*'} ${boot}`.nothrow();
  const bootBytes = Number((await $`du -sb ${boot}`).stdout.split('\t')[0]);
  return { rootfsBytes: (blocks - freeBlocks) * blockSize, kernelModulesBytes, bootBytes };
}
