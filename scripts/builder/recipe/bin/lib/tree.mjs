// Moving a directory's entries, for the build's scripts: the Pi firmware's files are set aside while
// mke2fs -d reads the root tree, which must not hold them (they go to the FAT partition).
import { readdir, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';
import { accessTimeCommands } from './root-delta.mjs';

/**
 * Moves every entry of `from` into `to`. A rename where it can; across file systems (the root tree
 * is an overlay mount, the scratch space is not) a copy with owners, modes and times, then removal.
 */
export async function moveAll(from, to) {
  for (const name of await readdir(from)) {
    try {
      await rename(join(from, name), join(to, name));
    } catch (err) {
      if (err.code !== 'EXDEV') throw err;
      await $`cp -a --preserve=all ${join(from, name)} ${to}`;
      await $`rm -rf ${join(from, name)}`;
    }
  }
}

/**
 * Gives every inode of a file system just made with mke2fs -d from a tree the access time
 * SOURCE_DATE_EPOCH (see accessTimeCommands). `device` is what debugfs opens (FILE or
 * FILE?offset=N), `paths` the tree's paths, `env` mke2fs's environment (the fake time).
 */
export async function settleAccessTimes(device, paths, sourceDateEpoch, scratch, env) {
  const { commands, unquoted } = accessTimeCommands(paths, sourceDateEpoch);
  if (unquoted.length > 0) console.log(`access times left as copied for names debugfs cannot quote: ${unquoted.join(', ')}`);
  const file = join(scratch, 'access-times.debugfs');
  await writeFile(file, `${commands.join('\n')}\n`);
  const applied = await $({ env })`debugfs -w -f ${file} ${device}`.quiet();
  const errors = applied.stderr.split('\n').filter((line) => line.trim() !== '' && !/^debugfs \d/.test(line));
  if (errors.length > 0) throw new Error(`debugfs could not set the access times:\n  ${errors.slice(0, 10).join('\n  ')}`);
}
