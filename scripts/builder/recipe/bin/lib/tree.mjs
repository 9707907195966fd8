// Moving a directory's entries, for the build's scripts: the Pi firmware's files are set aside while
// mke2fs -d reads the root tree, which must not hold them (they go to the FAT partition).
import { readdir, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { $ } from 'zx';

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
