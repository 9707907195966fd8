/**
 * The look-alike stock images (test/fixtures/stock): a Raspberry Pi OS-like and an Ubuntu-like
 * system, built from Debian packages by pibond's own build with the look-alike's overlays in place
 * of pibond's, so that nothing of pibond is in them. One test-only step takes out what the real
 * images lack and pibond's base package list brings: Node.js, and on the Raspberry Pi OS-like a
 * kernel that boots QEMU's virt machine.
 */
import { access } from 'node:fs/promises';
import { join } from 'node:path';
import { type Step, paths, requireContainer } from '../../scripts/image/context.ts';
import { build, defaultCacheVolume, steps } from '../../scripts/image/index.ts';
import { configure } from '../../scripts/image/steps/50-configure.ts';
import { check } from '../../scripts/image/steps/70-check.ts';
import { loadDefinition } from '../../scripts/lib/definition.ts';
import { execIn } from '../../scripts/lib/docker.ts';
import { Progress } from '../../scripts/lib/log.ts';
import { sourceDateEpochFrom } from '../../scripts/lib/tar.ts';

export type LookalikeKind = 'raspios' | 'ubuntu';

const fixtures = join(import.meta.dirname, '..', 'fixtures', 'stock');

/**
 * Node.js and the libraries only it needed, purged from the build's root file system, and the
 * initramfs settings pibond's bootstrap leaves (pibond.conf: a short module list). It runs after the
 * base image step, on the overlay mount over the cached tree: the cache, and the base image other
 * definitions of the same package set share, keep them.
 *
 * The Raspberry Pi OS-like loses Debian's kernel too: the real image's kernel (linux-image-rpi-v8)
 * cannot boot QEMU's virt machine, and neither can one that is not there, so `pibond boot` takes the
 * builder's kernel for both. Its boot partition then looks like Raspberry Pi OS's: a config.txt
 * that names no kernel (the firmware's default, kernel8.img), and no Debian kernel or initrd.
 */
function removeWhatStockLacks(kind: LookalikeKind): Step {
  return {
    title: 'Remove what the stock image lacks',
    async run(ctx) {
      const { docker, container } = requireContainer(ctx);
      const run = (cmd: string[]) => execIn(docker, container, cmd, { sink: ctx.progress.sink, env: { DEBIAN_FRONTEND: 'noninteractive' } });
      const purge = (names: string) => run(['sh', '-c', `chroot ${paths.rootfs} apt-get --yes --purge --autoremove -o Dpkg::Use-Pty=0 purge ${names}`]);
      await purge('nodejs');
      const initramfsSettings = ['etc/initramfs-tools/conf.d', 'usr/share/initramfs-tools/modules.d'].map((dir) => `${paths.rootfs}/${dir}`);
      await run(['find', ...initramfsSettings, '-name', 'pibond*', '-print', '-delete']);
      if (kind !== 'raspios') return;
      // raspi-firmware's kernel hook stops the removal in a chroot it does not recognise as one
      // ("missing /boot/firmware"); run-parts skips it while it is not executable.
      const hook = `${paths.rootfs}/etc/kernel/postrm.d/z50-raspi-firmware`;
      await run(['chmod', '-x', hook]);
      await purge(`$(chroot ${paths.rootfs} dpkg-query -W -f '\${Package}\n' 'linux-image-*')`);
      await run(['chmod', '+x', hook]);
      const firmware = `${paths.rootfs}/boot/firmware`;
      await run(['sh', '-c', `rm -fv ${firmware}/vmlinuz-* ${firmware}/initrd.img-* && sed -i '/^kernel=/d; /^initramfs /d' ${firmware}/config.txt`]);
    },
  };
}

/**
 * The build's steps, with the removal just before the system is configured (whose clean-up then
 * covers it too). The Raspberry Pi OS-like skips pibond's boot-chain check: its boot partition is
 * the firmware's, like the real image's, not the chain pibond builds.
 */
function lookalikeSteps(kind: LookalikeKind): Step[] {
  const at = steps.indexOf(configure);
  if (at < 0) throw new Error('the build has no configure step to put the removal of Node.js before');
  const all = [...steps.slice(0, at), removeWhatStockLacks(kind), ...steps.slice(at)];
  return kind === 'raspios' ? all.filter((step) => step !== check) : all;
}

/** Builds the look-alike into `outDir` unless its .img is there already; returns the .img's path. */
export async function buildLookalike(kind: LookalikeKind, outDir: string): Promise<string> {
  const definitionFile = join(fixtures, `lookalike-${kind}.yaml`);
  const image = join(outDir, `${(await loadDefinition(definitionFile)).name}.img`);
  if (await exists(image)) return image;
  await build(
    {
      definitionFile,
      outDir,
      cache: true,
      cacheVolume: defaultCacheVolume,
      overlaysDirs: [join(fixtures, `overlays-${kind}`)],
      sourceDateEpoch: sourceDateEpochFrom(process.env),
    },
    new Progress({ live: false, verbose: false }),
    undefined,
    lookalikeSteps(kind),
  );
  return image;
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
