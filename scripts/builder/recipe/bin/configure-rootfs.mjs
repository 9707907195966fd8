#!/usr/bin/env node
// Settles the root filesystem after the overlays are laid in: the admin account, time zone,
// locale, and everything that must be unique per device removed so that it is made at first boot.
// Argument: one JSON object {root, adminUser, authorizedKeys: string[], timezone, locale, sourceDateEpoch}.
import { chmod, mkdir, readFile, readdir, rm, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';

const { root, adminUser, authorizedKeys, timezone, locale, sourceDateEpoch } = JSON.parse(process.argv[2] ?? '{}');
// useradd and passwd date the accounts' last password change with it.
const $$ = $({ verbose: true, env: { ...process.env, SOURCE_DATE_EPOCH: String(sourceDateEpoch) } });
const inRoot = (command) => $$`chroot ${root} ${command}`;

// The admin: key-only, no password (the account is locked for password login, not for SSH keys).
// The builder's own shadow tools do it with --root (they chroot themselves once started): the
// image's copies would run under qemu-user emulation, a few tenths of a second each.
if (!(await account(adminUser))) {
  await $$`useradd --root ${root} --create-home --shell /bin/bash --groups sudo,adm,systemd-journal ${adminUser}`;
}
// usermod --lock leaves "!" alone as the hash: sshd accepts keys for such an account with UsePAM.
await $$`usermod --root ${root} --lock ${adminUser}`;
const { home, uid, gid } = await account(adminUser);
const sshDir = join(root, home, '.ssh');
await mkdir(sshDir, { recursive: true });
await chmod(sshDir, 0o700);
await writeFile(join(sshDir, 'authorized_keys'), authorizedKeys.map((key) => `${key}\n`).join(''));
await chmod(join(sshDir, 'authorized_keys'), 0o600);
await $$`chown -R ${`${uid}:${gid}`} ${sshDir}`;
// root has no password and cannot log in with one.
await $$`passwd --root ${root} --lock root`.quiet();

await rm(join(root, 'etc/localtime'), { force: true });
await symlink(`/usr/share/zoneinfo/${timezone}`, join(root, 'etc/localtime'));
await writeFile(join(root, 'etc/timezone'), `${timezone}\n`);
if (locale !== 'C.UTF-8') {
  await writeFile(join(root, 'etc/locale.gen'), `${locale} UTF-8\n`);
  await inRoot(['locale-gen']);
}

// Unique per device: made at first boot, never shipped. An empty machine-id marks the first boot.
await removeMatching('etc/ssh', /^ssh_host_/);
await writeFile(join(root, 'etc/machine-id'), '');
await rm(join(root, 'var/lib/dbus/machine-id'), { force: true });
await rm(join(root, 'var/lib/systemd/random-seed'), { force: true });
// Logs and caches of the build itself.
await removeMatching('var/log', /\.log$/);
await removeMatching('var/log/apt', /./);
await removeMatching('var/cache/apt', /\.bin$/);
// The mirror's indexes (Packages, Release) are of the day of the build, not of the package set:
// they would make a rebuild from the same packages differ. The device fetches its own at apt update.
await removeMatching('var/lib/apt/lists', /^(?!lock$|partial$)/);
// ldconfig's cache of the libraries' inode numbers and times: rebuilt when absent.
await rm(join(root, 'var/cache/ldconfig/aux-cache'), { force: true });

/** Removes the entries of root/dir whose names match, like `rm -rf root/dir/<glob>`. */
async function removeMatching(dir, name) {
  const entries = await readdir(join(root, dir)).catch(() => []);
  for (const entry of entries.filter((e) => name.test(e))) await rm(join(root, dir, entry), { recursive: true, force: true });
}

/** The image's /etc/passwd entry of `name`: {home, uid, gid}, or undefined. */
async function account(name) {
  const lines = (await readFile(join(root, 'etc/passwd'), 'utf8')).split('\n');
  const fields = lines.map((line) => line.split(':')).find((entry) => entry[0] === name);
  return fields && { home: fields[5], uid: Number(fields[2]), gid: Number(fields[3]) };
}
