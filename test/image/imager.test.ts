/** The Raspberry Pi Imager repository entry: the fields Imager reads, with the types it expects. */
import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { type ImagerFile, imagerRepository } from '../../scripts/lib/imager.ts';

const def = parseDefinition('name: pibond-test\nadmin: {name: pi}\n', 'test.yaml');
const image: ImagerFile = { file: 'pibond-test.img', bytes: 2 * 1024 ** 3, sha256: 'a'.repeat(64) };
const compressed: ImagerFile = { file: 'pibond-test.img.zst', bytes: 177_543_626, sha256: 'b'.repeat(64) };

describe('imagerRepository', () => {
  it('describes the compressed download and the raw image Imager writes', () => {
    const repository = imagerRepository(def, image, compressed, 1704067200);
    expect(repository.os_list).toHaveLength(1);
    const os = repository.os_list[0]!;
    expect(os).toMatchObject({
      name: 'pibond-test',
      url: 'pibond-test.img.zst',
      extract_size: 2 * 1024 ** 3,
      extract_sha256: 'a'.repeat(64),
      image_download_size: 177_543_626,
      image_download_sha256: 'b'.repeat(64),
      release_date: '2024-01-01',
    });
    expect(os.description).toMatch(/^pibond: Debian bookworm arm64, eth0 \+ eth1 bonded \(active-backup, primary eth0\)/);
  });

  it('has exactly the fields Imager reads, with their JSON types, and no init_format', () => {
    const os = imagerRepository(def, image, compressed, 1704067200).os_list[0]!;
    const types = Object.fromEntries(Object.entries(os).map(([field, value]) => [field, Array.isArray(value) ? 'array' : typeof value]));
    expect(types).toEqual({
      name: 'string',
      description: 'string',
      url: 'string',
      extract_size: 'number',
      extract_sha256: 'string',
      image_download_size: 'number',
      image_download_sha256: 'string',
      release_date: 'string',
      devices: 'array',
    });
    expect(os).not.toHaveProperty('init_format');
    expect(Number.isSafeInteger(os.extract_size) && Number.isSafeInteger(os.image_download_size)).toBe(true);
    expect(os.release_date).toMatch(/^\d{4}-\d{2}-\d{2}$/);
  });

  it('names the 64-bit Pis Debian boots, and brings a device list whose tags select the entry', () => {
    const repository = imagerRepository(def, image, compressed, 0);
    const os = repository.os_list[0]!;
    expect(os.devices).toEqual(['pi4-64bit', 'pi3-64bit']);
    // Imager 2 shows an entry only under a chosen device that carries one of its tags; a custom
    // repository has no device list but its own.
    for (const device of repository.imager.devices) expect(device.tags.some((tag) => os.devices.includes(tag))).toBe(true);
    expect(repository.imager.devices.map((device) => device.name)).toEqual(['Raspberry Pi 4', 'Raspberry Pi 3', 'Raspberry Pi Zero 2 W']);
  });

  it('points at the raw image when the definition asks for no compression', () => {
    const os = imagerRepository(def, image, image, 0).os_list[0]!;
    expect(os).toMatchObject({ url: 'pibond-test.img', image_download_size: image.bytes, image_download_sha256: image.sha256, extract_size: image.bytes });
  });

  it('is the same for the same build (release_date from SOURCE_DATE_EPOCH)', () => {
    expect(JSON.stringify(imagerRepository(def, image, compressed, 1704067200))).toBe(JSON.stringify(imagerRepository(def, image, compressed, 1704067200)));
  });
});
