/**
 * Boot benchmark: the failover scenario's figures for one image (boot to status-service-ready,
 * failover and failback times), in the flat form `npm run bench` prints.
 * Alone: `tsx scripts/bench/boot.ts [out/NAME.img]`.
 */
import { pathToFileURL } from 'node:url';
import { failoverTest } from '../boot/failover-test.ts';
import { formatFigures, formatVerdict } from '../boot/report.ts';
import { goals } from '../boot/scenario.ts';

export async function benchBoot(image: string): Promise<Record<string, number | string>> {
  const { report, reportFile } = await failoverTest({ image, say: (message) => process.stderr.write(`${message}\n`) });
  const { figures } = report;
  const switches = figures.flaps.flatMap((f) => [f.failoverMs, f.failbackMs]).sort((a, b) => a - b);
  const figure = (value: number | null | undefined) => value ?? 'not measured';
  return {
    'boot verdict': report.verdict,
    [`boot to ready s (goal <= ${goals.bootToReadySeconds})`]: figure(figures.bootToReadySeconds),
    [`boot failover ms (goal <= ${goals.failoverMs})`]: figure(figures.failoverMs),
    [`boot failback ms (goal <= ${goals.failbackMs})`]: figure(figures.failbackMs),
    'boot flap switches': switches.length,
    'boot flap switch median ms': figure(switches[Math.floor(switches.length / 2)]),
    'boot flap switch max ms': figure(switches.at(-1)),
    'boot report': reportFile,
  };
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const image = process.argv[2] ?? 'out/pibond-bookworm-arm64.img';
  const { report } = await failoverTest({ image, say: (message) => process.stderr.write(`${message}\n`) });
  process.stdout.write(`${formatFigures(report)}\n${formatVerdict(report)}\n`);
  process.exitCode = report.verdict === 'pass' ? 0 : 1;
}
