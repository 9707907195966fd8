/**
 * The definition's fingerprint, recorded in the manifest: two builds from the same definition carry
 * the same hash however its file was laid out (key order, comments, defaults written or left out).
 */
import { createHash } from 'node:crypto';
import type { Definition } from './schema.ts';

/** A stable hash of the validated definition, recorded in the manifest. */
export function definitionHash(def: Definition): string {
  return createHash('sha256').update(stableJson(def)).digest('hex');
}

/** JSON with every mapping's keys sorted, so equal values print (and hash) alike. */
export function stableJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => a.localeCompare(b)))
      : v,
  );
}
