/**
 * Outage benchmark: the default image on the test bed of real routers, in each layout, flapped ten
 * times; per layout, the inbound and outbound outage seen from the test bed's internet, median and
 * worst, for failovers and failbacks. Figures, not a verdict: today's image does not heal a switch,
 * and a switch whose traffic never came back within the window is shown as "never".
 * Alone: `tsx scripts/bench/outage.ts [out/NAME.img]`.
 */
import { pathToFileURL } from 'node:url';
import { failoverTest } from '../boot/failover-test.ts';
import { goals, outageTable } from '../boot/report.ts';
import { outageWindowMs } from '../boot/scenario.ts';
import { layoutNames } from '../boot/testbed/index.ts';

const flaps = 10;

export async function benchOutage(image: string): Promise<Record<string, number | string>> {
  const figures: Record<string, number | string> = {};
  for (const layout of layoutNames) {
    const { report, reportFile } = await failoverTest({
      image,
      routers: { kind: 'testbed', layout },
      flaps,
      // Every switch may take the whole window (a switch that never heals): 2 x 11 x 25 s, and the boot.
      timeoutSeconds: 1800,
      reportFile: image.replace(/\.img$/, `.outage-report.${layout}.json`),
      say: (message) => process.stderr.write(`[${layout}] ${message}\n`),
    });
    // The flaps only: the scenario's first unplug-and-replug before them and the switch through the
    // re-enslaved backup after them are the same kinds, but not "over 10 flaps".
    const flapped = report.figures.outages.slice(2, 2 + 2 * flaps);
    const ms = (value: number | null, never: number) => (value === null ? (never ? `never (> ${outageWindowMs / 1000} s)` : 'not measured') : value);
    for (const row of outageTable(flapped)) {
      const what = `${layout} ${row.direction} ${row.switch}`;
      figures[`${what} median ms (goal <= ${goals.outageMedianMs})`] = ms(row.median, row.never);
      figures[`${what} worst ms (goal <= ${goals.outageWorstMs})`] = ms(row.worst, row.never);
    }
    figures[`${layout} switches measured`] = flapped.length;
    figures[`${layout} verdict`] = report.verdict;
    figures[`${layout} report`] = reportFile;
  }
  return figures;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await benchOutage(process.argv[2] ?? 'out/pibond-bookworm-arm64.img');
  for (const [key, value] of Object.entries(figures)) console.log(`${key.padEnd(64)} ${value}`);
}
