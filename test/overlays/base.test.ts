/**
 * The base overlay (overlays/00-base): on pibond's own Debian base it writes the system's fstab,
 * firmware settings and first-boot resize; laid onto a stock image it leaves those to the image.
 */
import { describe, expect, it } from 'vitest';
import { nodePath, render } from '../../overlays/00-base/render.ts';
import { definitionSchema } from '../../scripts/lib/definition/schema.ts';

const paths = async (yaml: object) => (await render(definitionSchema.parse({ name: 'x', ...yaml }))).map((entry) => entry.path).sort();

describe('overlays/00-base', () => {
  it("on the Debian base: fstab, locale, the firmware's settings and the root's growth at first boot", async () => {
    expect(await paths({})).toEqual([
      'etc/default/locale',
      'etc/default/raspi-firmware',
      'etc/fstab',
      'etc/hostname',
      'etc/hosts',
      'etc/sudoers.d/pibond-admin',
      'etc/systemd/system/sysinit.target.wants/pibond-grow-root.service',
      nodePath,
    ]);
  });

  it("on a stock image: only the host name, the admin's sudo rule and the Node link; the image keeps its own fstab, firmware settings and resize", async () => {
    expect(await paths({ base: { image: 'x.img', sha256: 'a'.repeat(64) }, network: { stack: 'netplan' } })).toEqual([
      'etc/hostname',
      'etc/hosts',
      'etc/sudoers.d/pibond-admin',
      nodePath,
    ]);
  });

  it("links the services' Node to the image's /usr/bin/node (the lay step replaces it with the runtime where the image has none)", async () => {
    const entries = await render(definitionSchema.parse({ name: 'x' }));
    expect(entries.find((entry) => entry.path === nodePath)).toEqual({ path: nodePath, target: '/usr/bin/node' });
  });
});
