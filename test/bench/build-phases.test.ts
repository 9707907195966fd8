/** The cold build's bench rows: mmdebstrap's phases and pibond's own hooks, read from a build log. */
import { describe, expect, it } from 'vitest';
import { bootstrapPhases } from '../../scripts/bench/build.ts';

const log = [
  '## Start the build container',
  '[   1.0] started',
  '## Root filesystem',
  '[   2.5] I: running apt-get update...',
  '[   5.0] I: downloading packages with apt...',
  '[  60.0] I: installing remaining packages inside the chroot...',
  '[ 200.0] I: running --customize-hook in shell: sh -c \'echo "I: pibond hook, linking the CA certificates once..."',
  '[ 200.1] I: pibond hook, linking the CA certificates once...',
  '[ 202.6] I: running --customize-hook in shell: sh -c \'echo "I: pibond hook, making the initrd once..."',
  '[ 202.7] I: pibond hook, making the initrd once...',
  '[ 203.0] W: No zstd in /usr/bin:/sbin:/bin, using gzip',
  '[ 252.7] I: running --customize-hook in shell: sh -c \'rm -f "$1"/var/cache/apt/archives/*.deb\'',
  '[ 253.0] I: cleaning package lists and apt cache...',
  '[ 253.5] I: success in 251.0 seconds',
  '## Root file system base image',
  '[ 260.0] I: not a phase of the bootstrap...',
].join('\n');

describe('bootstrapPhases', () => {
  it('times each phase to the next, the hooks pibond announces by name, and a recurring phase as one summed row', () => {
    expect(bootstrapPhases(log)).toEqual([
      { name: 'mmdebstrap: running apt-get update', seconds: 2.5 },
      { name: 'mmdebstrap: downloading packages with apt', seconds: 55 },
      { name: 'mmdebstrap: installing remaining packages inside the chroot', seconds: 140 },
      { name: 'mmdebstrap: running --customize-hook in shell', seconds: 0.5 },
      { name: 'mmdebstrap: pibond hook, linking the CA certificates once', seconds: 2.5 },
      { name: 'mmdebstrap: pibond hook, making the initrd once', seconds: 50 },
      { name: 'mmdebstrap: cleaning package lists and apt cache', seconds: 0.5 },
    ]);
  });

  it('finds nothing in a log without the root filesystem step (a cached build)', () => {
    expect(bootstrapPhases('## Root filesystem base image\n[ 1.0] I: running apt-get update...')).toEqual([]);
  });
});
