/**
 * What every device program (the units' TypeScript bundles: pibond-heal, pibond-uplink) starts and
 * reads with, in one place: the base overlay's, since every image carries those programs' base.
 * Bundled into each program by esbuild; nothing here runs on the host.
 */
import { readFileSync } from 'node:fs';

/** A sysfs attribute or /proc file, trimmed; null when it is missing, unreadable or empty. */
export function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8').trim() || null;
  } catch {
    return null;
  }
}

/**
 * Runs a program's main and ends the process with its outcome: 0, or 1 with the error on stderr at
 * syslog priority 3 (err), which journald keeps as the unit's failure reason; systemd restarts it.
 */
export function runMain(name: string, main: (argv: string[]) => Promise<void>): void {
  main(process.argv.slice(2)).then(
    () => process.exit(0),
    (err: unknown) => {
      process.stderr.write(`<3>${name}: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    },
  );
}
