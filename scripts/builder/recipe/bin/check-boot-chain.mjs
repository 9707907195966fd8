#!/usr/bin/env node
// The boot-chain self-check, on the finished image: every file config.txt names is on the boot
// partition, cmdline.txt names the root partition by the PARTUUID the partition table has, and the
// initrd holds (or the kernel has built in) every required module, i.e. what a Pi needs to mount
// its root from the SD card, and the root holds every module the appliance needs with all it
// depends on (the build leaves many of the kernel's modules out). Prints one "self-check: " line
// per problem on stderr and exits 1 if there is any (the check step turns those lines into its
// error).
// Argument: one JSON object {image, root (the tree the image was made from), requiredModules:
//   string[] (in the initrd), applianceModules: string[] (on the root)}.
import { access, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';

const { image, root, requiredModules, applianceModules = [] } = JSON.parse(process.argv[2] ?? '{}');
const problems = [];
const problem = (text) => {
  problems.push(text);
  console.error(`self-check: ${text}`);
};

const work = await mkdtemp('/tmp/check.');
try {
  const table = (await $`sfdisk --dump ${image}`.quiet()).stdout;
  const bootStart = Number(/1 : start=\s*(\d+),/.exec(table)?.[1]);
  const diskId = /^label-id: 0x([0-9a-f]+)/m.exec(table)?.[1];
  const boot = `${image}@@${bootStart * 512}`;
  await $`mcopy -n -i ${boot} ::config.txt ::cmdline.txt ${`${work}/`}`;
  const config = await readFile(join(work, 'config.txt'), 'utf8');
  const cmdline = await readFile(join(work, 'cmdline.txt'), 'utf8');

  // The three checks run side by side (the initrd's listing is the slow one); their problems are
  // reported in this order.
  // modules.builtin lists what the kernel has compiled in; both module checks count it as there.
  const builtin = readBuiltin();
  const [files, chain, modules] = await Promise.all([checkConfigFiles(config, boot), checkInitrd(config, boot, builtin), checkRootModules(applianceModules, builtin)]);
  const rootNamed = cmdline.includes(`root=PARTUUID=${diskId}-02 `) ? [] : [`cmdline.txt does not name root=PARTUUID=${diskId}-02: ${cmdline.trim()}`];
  for (const text of [...files, ...rootNamed, ...chain.problems, ...modules.problems]) problem(text);
  if (problems.length === 0) console.log(`self-check: boot chain OK (${chain.inInitrd} modules in the initrd, ${modules.found} the appliance needs on the root)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
process.exitCode = problems.length > 0 ? 1 : 0;

/** config.txt's kernel=, initramfs and device_tree name files; dtoverlay=X means overlays/X.dtbo. Each must be on the boot partition. */
async function checkConfigFiles(config, boot) {
  const found = [];
  for (const line of config.split('\n')) {
    const [key = '', value] = line.replace(/#.*/, '').trim().split(/\s+/);
    let file;
    if (/^(kernel|device_tree)=/.test(key)) file = key.slice(key.indexOf('=') + 1);
    else if (key === 'initramfs') file = value;
    else if (key.startsWith('dtoverlay=')) file = `overlays/${key.slice('dtoverlay='.length).split(',')[0]}.dtbo`;
    else continue;
    found.push($`mdir -b -i ${boot} ${`::${file}`}`.nothrow().quiet().then((listed) => (listed.exitCode === 0 ? [] : [`config.txt names ${file}, which is not on the boot partition`])));
  }
  const missing = (await Promise.all(found)).flat();
  return /^kernel=/m.test(config) ? missing : [...missing, 'config.txt names no kernel'];
}

/** The initrd config.txt names holds (or the kernel has built in) every required module. */
async function checkInitrd(config, boot, builtinModules) {
  const initrd = /^initramfs (\S+)/m.exec(config)?.[1];
  if (!initrd) return { problems: ['config.txt names no initramfs'], inInitrd: 0 };
  await $`mcopy -n -i ${boot} ${`::${initrd}`} ${join(work, 'initrd.img')}`;
  const listing = (await $`lsinitramfs ${join(work, 'initrd.img')}`.quiet()).stdout.split('\n');
  const inInitrd = new Set(listing.map(moduleName).filter(Boolean));
  const builtin = await builtinModules;
  const problems = requiredModules.filter((module) => !inInitrd.has(underscored(module)) && !builtin.has(underscored(module))).map((module) => `the initrd lacks module ${module}, and the kernel does not have it built in`);
  return { problems, inInitrd: inInitrd.size };
}

function underscored(name) {
  return name.replaceAll('-', '_');
}

/** The module a path names (foo-bar.ko, .ko.xz, .ko.zst: foo_bar), or undefined for another file. */
function moduleName(path) {
  const name = /([^/]*)\.ko(\.[gx]z|\.zst)?$/.exec(path)?.[1];
  return name && underscored(name);
}

/** The kernel's modules directory on the root (the newest version), or undefined. */
async function modulesDir() {
  const modules = join(root, 'usr/lib/modules');
  const version = (await readdir(modules).catch(() => [])).sort().at(-1);
  return version && join(modules, version);
}

async function readBuiltin() {
  const dir = await modulesDir();
  const text = dir && (await readFile(join(dir, 'modules.builtin'), 'utf8').catch(() => undefined));
  return new Set((text ?? '').split('\n').map(moduleName).filter(Boolean));
}

/**
 * Each of `names`, and every module it depends on, is on the root or built into the kernel. The
 * dependencies come from each module's own `depends=` (modinfo), which the kernel's build wrote:
 * modules.dep is made from the modules that are there, so it cannot show one left out. Returns the
 * problems and how many modules were found.
 */
async function checkRootModules(names, builtinModules) {
  const problems = [];
  if (names.length === 0) return { problems, found: 0 };
  const dir = await modulesDir();
  const dep = dir && (await readFile(join(dir, 'modules.dep'), 'utf8').catch(() => undefined));
  if (dep === undefined) return { problems: ['the root file system has no kernel modules (usr/lib/modules/*/modules.dep)'], found: 0 };
  const files = new Map(dep.split('\n').map((line) => line.split(':')[0]).filter(Boolean).map((path) => [moduleName(path) ?? path, join(dir, path)]));
  const exists = (file) => access(file).then(() => true, () => false);
  const builtin = await builtinModules;
  const seen = new Set();
  let wave = names.map((name) => ({ name: underscored(name), neededBy: undefined }));
  let found = 0;
  while (wave.length > 0) {
    const present = [];
    for (const { name, neededBy } of wave) {
      if (seen.has(name)) continue;
      seen.add(name);
      if (files.has(name) && (await exists(files.get(name)))) present.push(name);
      else if (!builtin.has(name)) problems.push(`the root file system lacks kernel module ${name}${neededBy ? `, which ${neededBy} needs` : ''}`);
    }
    found += present.length;
    if (present.length === 0) break;
    // One line per module, in order, empty for none.
    const lines = (await $`modinfo -F depends ${present.map((name) => files.get(name))}`.quiet()).stdout.split('\n');
    wave = present.flatMap((name, i) => (lines[i] ?? '').split(',').filter(Boolean).map((dependency) => ({ name: underscored(dependency), neededBy: name })));
  }
  return { problems, found };
}
