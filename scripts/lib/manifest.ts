/**
 * The manifest `pibond build` writes beside every image (out/<name>.manifest.json): one type for
 * the step that writes it and for everything that reads it back (benchmarks, tests, tools).
 * `pibond boot` checks the parts it relies on with its own schema (scripts/boot/image.ts), since
 * it may be handed any file.
 */
import { readFile } from 'node:fs/promises';
import type { Definition } from './definition.ts';

export interface BuildManifest {
  name: string;
  definition: { file: string; sha256: string; value: Definition };
  base: Definition['base'];
  mirror: string;
  builderImage: string | undefined;
  /** The cached root filesystem's key: what the bootstrap depended on (whether it came from the cache is in the timings). */
  rootfsCache: { key: string } | undefined;
  diskId: string;
  sourceDateEpoch: number;
  /** The card-settings slot `pibond flash` fills in place. */
  card: CardSlot;
  /** Each output file: its size and, for images, its sha256. */
  files: Record<string, { bytes: number; sha256?: string }>;
  sizes: { rootfsBytes: number; kernelModulesBytes: number; bootBytes: number };
  packages: { name: string; version: string; architecture: string }[];
  /** A build laid onto a stock image (base.image): what the image was found to be, and the Node the services run on. */
  stock?:
    | { file: string; sha256: string; rule: string; name: string; release: string; stack: string; cloudInit: boolean; kernels: string[]; kernelBootsVirt: boolean; node: string }
    | undefined;
  /** The lock the package set was installed from (pibond build --locked FILE, or the definition's own lock). */
  lock?: { file: string; sha256: string } | undefined;
}

/**
 * How a build went, beside its manifest (out/<name>.timings.json): each step's duration and whether
 * the root filesystem came from the cache. Kept out of the manifest, which says only what was built,
 * so that two builds of the same inputs give the same manifest bytes.
 */
export interface BuildTimings {
  name: string;
  rootfsFromCache: boolean;
  /** Each step's duration, in the order they ran. */
  steps: { name: string; seconds: number }[];
  /**
   * The .img.zst's frames (one per 16 MiB of the image): how many came from the cache and how many
   * were compressed, at which zstd level. Absent for xz and uncompressed images.
   */
  compression?: { framesReused: number; framesCompressed: number; level: number };
}

/**
 * The file on the boot partition that holds a card's settings: a fixed size, in contiguous
 * clusters, so that it can be written straight into the card at `offset` (bytes into the image).
 */
export interface CardSlot {
  file: string;
  offset: number;
  bytes: number;
}

/** Reads the timings pibond wrote beside a manifest (its own output: not validated again). */
export async function readTimings(file: string): Promise<BuildTimings> {
  return JSON.parse(await readFile(file, 'utf8')) as BuildTimings;
}

/** Reads a manifest pibond wrote (its own output: not validated again). */
export async function readManifest(file: string): Promise<BuildManifest> {
  return JSON.parse(await readFile(file, 'utf8')) as BuildManifest;
}
