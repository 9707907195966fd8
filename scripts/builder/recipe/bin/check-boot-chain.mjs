#!/usr/bin/env node
// The boot-chain self-check, on the finished image: every file config.txt names is on the boot
// partition, cmdline.txt names the root partition by the PARTUUID the partition table has, and the
// initrd holds (or the kernel has built in) every required module, i.e. what a Pi needs to mount
// its root from the SD card. Prints one "self-check: " line per problem on stderr and exits 1 if
// there is any (the check step turns those lines into its error).
// Argument: one JSON object {image, root (the tree the image was made from), requiredModules: string[]}.
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';

const { image, root, requiredModules } = JSON.parse(process.argv[2] ?? '{}');
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

  // config.txt: kernel=, initramfs and device_tree name files; dtoverlay=X means overlays/X.dtbo.
  for (const line of config.split('\n')) {
    const [key = '', value] = line.replace(/#.*/, '').trim().split(/\s+/);
    let file;
    if (/^(kernel|device_tree)=/.test(key)) file = key.slice(key.indexOf('=') + 1);
    else if (key === 'initramfs') file = value;
    else if (key.startsWith('dtoverlay=')) file = `overlays/${key.slice('dtoverlay='.length).split(',')[0]}.dtbo`;
    else continue;
    const found = await $`mdir -b -i ${boot} ${`::${file}`}`.nothrow().quiet();
    if (found.exitCode !== 0) problem(`config.txt names ${file}, which is not on the boot partition`);
  }
  if (!/^kernel=/m.test(config)) problem('config.txt names no kernel');

  if (!cmdline.includes(`root=PARTUUID=${diskId}-02 `)) problem(`cmdline.txt does not name root=PARTUUID=${diskId}-02: ${cmdline.trim()}`);

  const initrd = /^initramfs (\S+)/m.exec(config)?.[1];
  let inInitrd = new Set();
  if (initrd) {
    await $`mcopy -n -i ${boot} ${`::${initrd}`} ${join(work, 'initrd.img')}`;
    const listing = (await $`lsinitramfs ${join(work, 'initrd.img')}`.quiet()).stdout.split('\n');
    inInitrd = new Set(listing.map((path) => /([^/]*)\.ko(\.[gx]z|\.zst)?$/.exec(path)?.[1]).filter(Boolean).map(underscored));
    // modules.builtin lists what the kernel has compiled in.
    const builtin = await readBuiltin();
    for (const module of requiredModules) {
      const name = underscored(module);
      if (!inInitrd.has(name) && !builtin.has(name)) problem(`the initrd lacks module ${module}, and the kernel does not have it built in`);
    }
  } else {
    problem('config.txt names no initramfs');
  }
  if (problems.length === 0) console.log(`self-check: boot chain OK (${inInitrd.size} modules in the initrd)`);
} finally {
  await rm(work, { recursive: true, force: true });
}
process.exitCode = problems.length > 0 ? 1 : 0;

function underscored(name) {
  return name.replaceAll('-', '_');
}

async function readBuiltin() {
  const modules = join(root, 'usr/lib/modules');
  for (const version of (await readdir(modules).catch(() => [])).sort()) {
    const text = await readFile(join(modules, version, 'modules.builtin'), 'utf8').catch(() => undefined);
    if (text !== undefined) return new Set(text.split('\n').map((path) => /([^/]*)\.ko$/.exec(path)?.[1]).filter(Boolean).map(underscored));
  }
  return new Set();
}
