/**
 * /etc/pibond/bond-heal.json, written by render.ts from the image definition. Checked by hand: the
 * bundle runs on the device's bare nodejs.
 */
import type { HealConfig } from './healer.ts';

export interface HealConfigFile extends HealConfig {
  /** Where the heals file and the renewal request go: the unit's RuntimeDirectory. */
  runtime_directory: string;
}

export function checkConfig(raw: unknown, source: string): HealConfigFile {
  const bad = (what: string) => new Error(`${source}: ${what}`);
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw bad('must be a JSON object');
  const c = raw as Record<string, unknown>;
  if (typeof c.bond !== 'string' || !/^[^\s/:]{1,15}$/.test(c.bond)) throw bad('bond must be an interface name');
  if (typeof c.dhcp !== 'boolean') throw bad('dhcp must be true or false');
  if (c.reuseLeases !== undefined && typeof c.reuseLeases !== 'boolean') throw bad('reuseLeases must be true or false');
  if (c.preleaseDirectory !== undefined && (typeof c.preleaseDirectory !== 'string' || !c.preleaseDirectory.startsWith('/'))) throw bad('preleaseDirectory must be an absolute path');
  if (typeof c.runtime_directory !== 'string' || !c.runtime_directory.startsWith('/')) throw bad('runtime_directory must be an absolute path');
  const gateways = c.gateways ?? {};
  if (typeof gateways !== 'object' || gateways === null || Object.values(gateways).some((g) => typeof g !== 'string')) throw bad('gateways must map slaves to addresses');
  const number = (value: unknown, fallback: number) => (typeof value === 'number' && value > 0 ? value : fallback);
  return {
    bond: c.bond,
    dhcp: c.dhcp,
    gateways: gateways as Record<string, string>,
    answerWithinMs: number(c.answerWithinMs, 300),
    giveUpAfterMs: number(c.giveUpAfterMs, 30_000),
    reuseLeases: c.reuseLeases === true,
    ...(typeof c.preleaseDirectory === 'string' ? { preleaseDirectory: c.preleaseDirectory } : {}),
    runtime_directory: c.runtime_directory,
  };
}
