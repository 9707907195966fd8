#!/usr/bin/env node
// Registers qemu-user for foreign architectures with the kernel's binfmt_misc, from inside this
// (privileged) container, so the host needs no qemu package. The "F" flag makes the kernel open the
// interpreter now, so it also runs inside chroots that do not contain it. binfmt_misc is global
// to the host: an existing registration without "F" is replaced by the same one with "F".
// Arguments: the qemu architecture names to register (aarch64, arm).
import { readFile, writeFile } from 'node:fs/promises';
import { $ } from 'zx';

$.verbose = true;
// binfmt_misc has one instance for the whole host; mounting it here (CAP_SYS_ADMIN) reaches it.
const dir = '/proc/sys/fs/binfmt_misc';
if ((await $`mountpoint -q ${dir}`.nothrow()).exitCode !== 0) await $`mount -t binfmt_misc binfmt_misc ${dir}`;

for (const arch of process.argv.slice(2)) {
  const conf = await readFile(`/usr/lib/binfmt.d/qemu-${arch}.conf`, 'utf8').catch(() => undefined);
  if (conf === undefined) {
    console.error(`no qemu-user registration for ${arch} in the builder`);
    process.exit(1);
  }
  const entry = `${dir}/qemu-${arch}`;
  const current = await readFile(entry, 'utf8').catch(() => undefined);
  if (current !== undefined) {
    if (/^flags:.*F/m.test(current) && /^enabled/m.test(current)) {
      console.log(`binfmt: qemu-${arch} already registered`);
      continue;
    }
    await writeFile(entry, '-1');
  }
  // The line is ":name:type:offset:magic:mask:interpreter:flags"; keep its flags and add F.
  let line = conf.split('\n').find((l) => l.trim() !== '' && !l.startsWith('#')) ?? '';
  if (!line.slice(line.lastIndexOf(':') + 1).includes('F')) line += 'F';
  await writeFile(`${dir}/register`, line);
  const flags = /^flags: (.*)$/m.exec(await readFile(entry, 'utf8'))?.[1];
  console.log(`binfmt: registered qemu-${arch} (${flags})`);
}
