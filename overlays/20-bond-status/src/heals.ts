/**
 * The heal of each switch, as pibond-heal.service records it in /run/pibond-heal/heals.json: how
 * long after the failover the gateway answered on the new segment. That unit is privileged and
 * this service is not, so the file is the whole interface: read bounded, checked field by field,
 * and a missing or broken file is simply "no heals known" (the unit may not be installed).
 */
import { join } from 'node:path';
import type { HealRecord } from '../../15-bond-heal/src/healer.ts';
import { readBounded } from './read-bonds.ts';

export type { HealRecord };

export const healsFile = 'run/pibond-heal/heals.json';

/** 64 records of ~200 bytes. */
const maxHealsBytes = 32 * 1024;

export function readHeals(root: string): HealRecord[] {
  const read = readBounded(join(root, healsFile), maxHealsBytes);
  if (!read.ok) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(read.text);
  } catch {
    return [];
  }
  const heals = (raw as { heals?: unknown } | null)?.heals;
  return Array.isArray(heals) ? heals.filter(isHealRecord) : [];
}

function isHealRecord(value: unknown): value is HealRecord {
  if (value === null || typeof value !== 'object') return false;
  const h = value as Record<string, unknown>;
  const nullableString = (v: unknown) => v === null || typeof v === 'string';
  return (
    typeof h.bond === 'string' &&
    typeof h.time === 'string' &&
    !Number.isNaN(Date.parse(h.time)) &&
    nullableString(h.to) &&
    nullableString(h.gateway) &&
    (h.action === 'flush' || h.action === 'reuse' || h.action === 'renew') &&
    (h.outcome === 'healed' || h.outcome === 'not_healed' || h.outcome === 'superseded') &&
    (h.heal_ms === null || (typeof h.heal_ms === 'number' && Number.isFinite(h.heal_ms) && h.heal_ms >= 0))
  );
}

/** A heal belongs to the failover of the same bond to the same slave seen within this much of it. */
export const matchWindowMs = 2000;

export function healKey(heal: HealRecord): string {
  return `${heal.bond} ${heal.time} ${heal.to ?? ''}`;
}
