import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { diskLayout } from '../../scripts/lib/layout.ts';

describe('diskLayout', () => {
  const def = parseDefinition('name: t\ndisk: {size: 2GiB, boot_size: 256MiB}\n', 't.yaml');

  it('puts the boot partition at 4 MiB and the root right after it, up to the end of the disk', () => {
    const layout = diskLayout(def);
    expect(layout.bootStart).toBe(8192);
    expect(layout.bootSectors).toBe(524288);
    expect(layout.rootStart).toBe(8192 + 524288);
    expect(layout.rootStart + layout.rootSectors).toBe(layout.totalSectors);
    expect(layout.totalSectors).toBe(4194304);
  });

  it('derives the disk id from the definition: stable, and different for another definition', () => {
    const layout = diskLayout(def);
    expect(layout.diskId).toMatch(/^[0-9a-f]{8}$/);
    expect(layout.rootPartuuid).toBe(`${layout.diskId}-02`);
    expect(diskLayout(parseDefinition('name: t\ndisk: {size: 2GiB, boot_size: 256MiB}\n', 'other.yaml')).diskId).toBe(layout.diskId);
    expect(diskLayout(parseDefinition('name: u\n', 'u.yaml')).diskId).not.toBe(layout.diskId);
  });
});
