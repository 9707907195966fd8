/**
 * The heals file, /run/pibond-heal/heals.json: the last switches and how each healed, for the status
 * service (which runs as another, unprivileged user and only reads it). Written whole to a temporary
 * file and renamed over the old one, so a reader never sees half of it.
 */
import { renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { HealRecord } from './healer.ts';

export const healsFileName = 'heals.json';

export interface HealsFile {
  heals: HealRecord[];
}

export class HealLog {
  private readonly heals: HealRecord[] = [];

  constructor(
    private readonly directory: string,
    private readonly capacity = 64,
  ) {}

  add(heal: HealRecord): void {
    this.heals.push(heal);
    if (this.heals.length > this.capacity) this.heals.shift();
    const file: HealsFile = { heals: this.heals };
    const path = join(this.directory, healsFileName);
    writeFileSync(`${path}.new`, `${JSON.stringify(file)}\n`, { mode: 0o644 });
    renameSync(`${path}.new`, path);
  }
}
