/**
 * The Raspberry Pi Imager repository entry beside every image (out/<name>.rpi-imager.json), so that
 * `rpi-imager --repo FILE-OR-URL` lists the image. Imager downloads `url`, checks it against
 * image_download_sha256, and checks what it wrote against extract_sha256.
 *
 * No `init_format`: Imager's customisation hooks (`systemd`: a firstrun.sh started through
 * systemd.run= on cmdline.txt; `cloudinit`/`cloudinit-rpi`: user-data and network-config on the boot
 * partition) are not implemented by the image, and cloud-init's network-config would put eth0 on
 * plain DHCP and undo the bond. Per-card settings come from `pibond flash --hostname ...` instead.
 */
import { stockFileName } from './stock/source.ts';
import type { Definition } from './definition.ts';

export interface ImagerOs {
  name: string;
  description: string;
  /** The compressed image's file name: relative to the JSON file; replace it with where it is hosted. */
  url: string;
  extract_size: number;
  extract_sha256: string;
  image_download_size: number;
  image_download_sha256: string;
  release_date: string;
  devices: string[];
}

export interface ImagerDevice {
  name: string;
  description: string;
  tags: string[];
}

export interface ImagerRepository {
  /** Imager 2 asks for the device first, from this list; a custom repository brings its own. */
  imager: { devices: ImagerDevice[] };
  os_list: ImagerOs[];
}

/** One file as the entry describes it. */
export interface ImagerFile {
  file: string;
  bytes: number;
  sha256: string;
}

/**
 * The Pis Debian's arm64 kernel and raspi-firmware boot (bookworm's kernel has no Pi 5 support),
 * with Imager's device tags (the Zero 2 W is a Pi 3 to Imager: same SoC family, tag pi3-64bit).
 */
const devices: ImagerDevice[] = [
  { name: 'Raspberry Pi 4', description: 'Raspberry Pi 4 Model B, 400, Compute Module 4', tags: ['pi4-64bit'] },
  { name: 'Raspberry Pi 3', description: 'Raspberry Pi 3 Model B/B+/A+, Compute Module 3', tags: ['pi3-64bit'] },
  { name: 'Raspberry Pi Zero 2 W', description: 'Raspberry Pi Zero 2 W', tags: ['pi3-64bit'] },
];

/**
 * The repository file for one build. `download` is the file users fetch (the compressed image,
 * or the raw one when disk.compression is none); `image` is the raw image Imager writes.
 */
export function imagerRepository(def: Definition, image: ImagerFile, download: ImagerFile, sourceDateEpoch: number): ImagerRepository {
  const slaves = def.bond.slaves.map((slave) => slave.name).join(' + ');
  return {
    imager: { devices },
    os_list: [
      {
        name: def.name,
        description: `pibond: ${def.base.image === undefined ? `Debian ${def.base.suite}` : `laid onto ${stockFileName(def.base.image)}`} ${def.base.architecture}, ${slaves} bonded (${def.bond.mode}, primary ${def.bond.primary}), with the bond-status service`,
        url: download.file,
        extract_size: image.bytes,
        extract_sha256: image.sha256,
        image_download_size: download.bytes,
        image_download_sha256: download.sha256,
        release_date: new Date(sourceDateEpoch * 1000).toISOString().slice(0, 10),
        devices: [...new Set(devices.flatMap((device) => device.tags))],
      },
    ],
  };
}
