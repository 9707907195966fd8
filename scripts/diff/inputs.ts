/**
 * What `pibond diff` was given: a build manifest, or an image with (maybe) its manifest beside it.
 * Manifests are checked with a schema of the parts diff reads, since any file may be handed in.
 */
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname, join, resolve } from 'node:path';
import { z } from 'zod';
import { UserError } from '../lib/errors.ts';
import type { ComparedManifest } from './manifests.ts';

export type DiffInput =
  | { kind: 'manifest'; file: string; manifest: ComparedManifest }
  | { kind: 'image'; file: string; manifest: ComparedManifest | undefined; manifestFile: string };

const imageName = /\.img(\.zst|\.xz)?$/;
const expected = 'a build manifest (<name>.manifest.json) or an image (<name>.img, .img.zst or .img.xz)';

const manifestSchema = z.looseObject({
  name: z.string(),
  definition: z.looseObject({ value: z.unknown() }),
  base: z.looseObject({}).optional(),
  mirror: z.string().optional(),
  builderImage: z.string().optional(),
  rootfsCache: z.looseObject({ key: z.string() }).optional(),
  diskId: z.string().optional(),
  sourceDateEpoch: z.number().optional(),
  files: z.record(z.string(), z.looseObject({ bytes: z.number(), sha256: z.string().optional() })),
  sizes: z.looseObject({ rootfsBytes: z.number(), kernelModulesBytes: z.number(), bootBytes: z.number() }),
  packages: z.array(z.looseObject({ name: z.string(), version: z.string(), architecture: z.string() })),
});

export async function loadInput(file: string): Promise<DiffInput> {
  const path = resolve(file);
  const info = await stat(path).catch(() => undefined);
  if (!info) throw new UserError(`${file}: no such file; expected ${expected}`);
  if (!info.isFile()) throw new UserError(`${file} is not a file; expected ${expected}`);
  if (imageName.test(path)) {
    const manifestFile = join(dirname(path), `${basename(path).replace(imageName, '')}.manifest.json`);
    const present = await stat(manifestFile).then((s) => s.isFile(), () => false);
    return { kind: 'image', file: path, manifestFile, manifest: present ? await readComparedManifest(manifestFile) : undefined };
  }
  if (path.endsWith('.json')) return { kind: 'manifest', file: path, manifest: await readComparedManifest(path) };
  throw new UserError(`${file}: expected ${expected}; the name tells which, and this one ends in neither`);
}

export async function readComparedManifest(file: string): Promise<ComparedManifest> {
  let json: unknown;
  try {
    json = JSON.parse(await readFile(file, 'utf8'));
  } catch (err) {
    throw new UserError(`${file} is not a build manifest: it is not JSON (${(err as Error).message})`);
  }
  const parsed = manifestSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = issue?.path.join('.') || '(top level)';
    throw new UserError(`${file} is not a build manifest (pibond build writes <name>.manifest.json): field "${field}": ${issue?.message}`);
  }
  return parsed.data as ComparedManifest;
}
