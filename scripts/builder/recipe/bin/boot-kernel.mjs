#!/usr/bin/env node
// The kernel pibond boot uses for an image whose own kernel cannot boot QEMU's virt machine
// (Raspberry Pi OS's and Ubuntu's Pi kernels): Debian's arm64 kernel, with an initrd made here
// that mounts the image's root and lays the kernel's modules over its /lib/modules
// (boot-kernel-init). Made once per recipe and kept in the cache volume:
//   boot-kernel.mjs {kits, aptCache, mirror, suite, initrdModules, guestModules, optionalModules}
//     kits: the directory that keeps them (one per recipe, named by its hash); aptCache: the
//     builds' .deb cache; initrdModules: what mounts the root; guestModules: what the guest needs
//     besides (an error when the kernel lacks one); optionalModules: loaded by the guest when there.
// Prints one JSON line last: {dir, version, made (false: it was there already), seconds}.
import { createHash, randomBytes } from 'node:crypto';
import { chmod, copyFile, mkdir, readFile, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { $ } from 'zx';
import { loadOrder, moduleName, parseAliases, parseBuiltin, parseModulesDep, parseSoftdeps } from './lib/modules.mjs';

const input = JSON.parse(process.argv[2] ?? '{}');
const { kits, aptCache, mirror, suite, initrdModules, guestModules, optionalModules } = input;
const started = Date.now();
$.verbose = false;

const initScript = await readFile(new URL('./boot-kernel-init', import.meta.url));
const recipe = createHash('sha256')
  .update(await readFile(new URL(import.meta.url)))
  .update(initScript)
  .update(JSON.stringify({ mirror, suite, initrdModules, guestModules, optionalModules }))
  .digest('hex')
  .slice(0, 16);
const dir = join(kits, recipe);

if (await exists(join(dir, 'version'))) {
  const version = (await readFile(join(dir, 'version'), 'utf8')).trim();
  console.log(JSON.stringify({ dir, version, made: false, seconds: 0 }));
  process.exit(0);
}

// A boot stopped while it made a kit leaves its work directory: gone after an hour.
await mkdir(kits, { recursive: true });
for (const name of await readdir(kits)) {
  const left = join(kits, name);
  if (name.startsWith('.tmp-') && Date.now() - (await stat(left)).mtimeMs > 3600_000) await rm(left, { recursive: true, force: true });
}
const work = join(kits, `.tmp-${recipe}-${randomBytes(4).toString('hex')}`);
try {
  await mkdir(work, { recursive: true });
  await mkdir(aptCache, { recursive: true });
  const packages = join(work, 'packages');
  // extract: the packages' files only, no maintainer script runs: nothing is emulated. Its stdin
  // closed: without a suite mmdebstrap reads sources.list from it.
  const args = [
    '--mode=root',
    '--arch=arm64',
    '--variant=extract',
    '--include=linux-image-arm64,busybox-static',
    '--setup-hook=mkdir -p "$1/var/cache/apt/archives"',
    `--setup-hook=sync-in ${aptCache} /var/cache/apt/archives`,
    `--customize-hook=sync-out /var/cache/apt/archives ${aptCache}`,
    suite,
    packages,
    mirror,
  ];
  await $({ stdio: ['ignore', 'pipe', 'pipe'] })`mmdebstrap ${args}`;

  const versions = (await readdir(join(packages, 'usr/lib/modules')).catch(() => readdir(join(packages, 'lib/modules')))).filter((v) => v.endsWith('-arm64'));
  if (versions.length !== 1) throw new Error(`expected one arm64 kernel in linux-image-arm64, found ${versions.join(', ') || 'none'}`);
  const [version] = versions;
  const modulesDir = await firstExisting([join(packages, 'usr/lib/modules', version), join(packages, 'lib/modules', version)]);
  // The kernel's postinst runs depmod, and nothing ran here. Its base is the tree above lib/modules.
  await $`depmod --basedir=${dirname(dirname(dirname(modulesDir)))} ${version}`;
  const modules = parseModulesDep(await readFile(join(modulesDir, 'modules.dep'), 'utf8'));
  const builtin = parseBuiltin(await readFile(join(modulesDir, 'modules.builtin'), 'utf8'));
  const present = [...guestModules, ...optionalModules.filter((name) => modules.has(moduleName(name)) || builtin.has(moduleName(name)))];
  const soft = {
    softdeps: parseSoftdeps(await readFile(join(modulesDir, 'modules.softdep'), 'utf8')),
    aliases: parseAliases(await readFile(join(modulesDir, 'modules.alias'), 'utf8')),
  };
  const initrdOrder = loadOrder(initrdModules, modules, builtin, soft);
  const guestOrder = loadOrder([...initrdModules, ...present], modules, builtin, soft);

  // The initrd: busybox, the init, the modules (those it loads and those it lays over the root's).
  const initrd = join(work, 'initrd');
  const into = join(initrd, 'lib/modules', version);
  for (const path of guestOrder) {
    await mkdir(dirname(join(into, path)), { recursive: true });
    await copyFile(join(modulesDir, path), join(into, path));
  }
  for (const file of ['modules.order', 'modules.builtin', 'modules.builtin.modinfo']) await copyFile(join(modulesDir, file), join(into, file));
  await $`depmod --basedir=${initrd} ${version}`;
  await mkdir(join(initrd, 'bin'), { recursive: true });
  await mkdir(join(initrd, 'etc'), { recursive: true });
  await copyFile(await firstExisting([join(packages, 'usr/bin/busybox'), join(packages, 'bin/busybox')]), join(initrd, 'bin/busybox'));
  await chmod(join(initrd, 'bin/busybox'), 0o755);
  await writeFile(join(initrd, 'init'), initScript, { mode: 0o755 });
  await writeFile(join(initrd, 'etc/pibond-initrd-modules'), `${initrdOrder.join('\n')}\n`);

  const kit = join(work, 'kit');
  await mkdir(kit);
  await copyFile(join(packages, 'boot', `vmlinuz-${version}`), join(kit, 'vmlinuz'));
  await $`cd ${initrd} && find . | LC_ALL=C sort | cpio --quiet -o -H newc -R 0:0 | gzip -6 > ${join(kit, 'initrd.img')}`;
  await writeFile(join(kit, 'modules'), `${guestOrder.join('\n')}\n`);
  await writeFile(join(kit, 'version'), `${version}\n`);
  await rm(dir, { recursive: true, force: true });
  await rename(kit, dir);
  // One kit is kept: those of earlier recipes go.
  for (const other of await readdir(kits)) if (other !== recipe && !other.startsWith('.tmp-')) await rm(join(kits, other), { recursive: true, force: true });
  const { size } = await stat(join(dir, 'initrd.img'));
  console.error(`boot-kernel: Debian ${version}, ${guestOrder.length} modules, initrd ${(size / 1024 ** 2).toFixed(1)} MiB`);
  console.log(JSON.stringify({ dir, version, made: true, seconds: Math.round((Date.now() - started) / 100) / 10 }));
} finally {
  await rm(work, { recursive: true, force: true });
}

async function exists(path) {
  return stat(path).then(() => true, () => false);
}

async function firstExisting(paths) {
  for (const path of paths) if (await exists(path)) return path;
  throw new Error(`none of ${paths.join(', ')} exists`);
}
