/**
 * `npm run bench`: every speed and size goal, measured and printed (not asserted: a noisy machine
 * must not fail a test). `npm run bench -- build status boot` picks some; the default is all.
 */
import { join } from 'node:path';

const suites: Record<string, () => Promise<Record<string, number | string>>> = {
  status: async () => (await import('./bench/bond-status.ts')).benchBondStatus(),
  build: async () => (await import('./bench/build.ts')).benchBuild(),
  lay: async () => (await import('./bench/lay.ts')).benchLay(),
  fetch: async () => (await import('./bench/fetch.ts')).benchFetch(),
  boot: async () => (await import('./bench/boot.ts')).benchBoot(join(import.meta.dirname, '..', 'out', 'pibond-bookworm-arm64.img')),
  outage: async () => (await import('./bench/outage.ts')).benchOutage(join(import.meta.dirname, '..', 'out', 'pibond-bookworm-arm64.img')),
  uplink: async () => (await import('./bench/uplink.ts')).benchUplink(join(import.meta.dirname, '..', 'out', 'pibond-bookworm-arm64.img')),
  flash: async () => (await import('./bench/flash.ts')).benchFlash(join(import.meta.dirname, '..', 'out', 'pibond-bookworm-arm64.img')),
};

const wanted = process.argv.slice(2).length ? process.argv.slice(2) : Object.keys(suites);
for (const name of wanted) {
  const suite = suites[name];
  if (!suite) {
    console.error(`unknown benchmark "${name}"; choose from: ${Object.keys(suites).join(', ')}`);
    process.exit(2);
  }
  console.log(`\n## ${name}`);
  const figures = await suite();
  for (const [key, value] of Object.entries(figures)) console.log(`${key.padEnd(64)} ${typeof value === 'number' ? value.toFixed(2) : value}`);
}
