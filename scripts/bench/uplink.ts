/**
 * Uplink benchmark: the default image on the test bed of real routers (same subnet), its main
 * router's line cut and restored, the main router hung and back, then 5 minutes of 30% loss on the
 * main line (each way); per failure, the outage seen from the test bed's internet until traffic
 * flows through the other router, the switches made under loss, and the probe traffic per uplink.
 * Figures, not a verdict. Alone: `tsx scripts/bench/uplink.ts [out/NAME.img]`.
 */
import { pathToFileURL } from 'node:url';
import { failoverTest } from '../boot/failover-test.ts';
import { uplinkGoals } from '../boot/report.ts';

/** The goal's "zero switches in 5 minutes of 30% loss". */
const lossSeconds = 300;

export async function benchUplink(image: string): Promise<Record<string, number | string>> {
  const { report, reportFile } = await failoverTest({
    image,
    routers: { kind: 'testbed', layout: 'same-subnet' },
    scenario: 'uplink',
    lossSeconds,
    timeoutSeconds: 1800,
    reportFile: image.replace(/\.img$/, '.uplink-report.json'),
    say: (message) => process.stderr.write(`[uplink] ${message}\n`),
  });
  const uplink = report.figures.uplink ?? {};
  const figures: Record<string, number | string> = {};
  const rows = [
    ['main WAN cut -> through the backup', uplink.wanCut, uplinkGoals.detectAndSwitchMs],
    ['main WAN restored -> through the main', uplink.wanBack, uplinkGoals.backMs],
    ['main router hung -> through the backup', uplink.hang, uplinkGoals.detectAndSwitchMs],
    ['main router back -> through the main', uplink.unhang, uplinkGoals.backMs],
  ] as const;
  for (const [what, outage, goal] of rows) {
    figures[`${what}, inbound ms (goal <= ${goal})`] = outage?.inboundMs ?? 'never';
    figures[`${what}, outbound ms (goal <= ${goal})`] = outage?.outboundMs ?? 'never';
  }
  figures[`switches in ${lossSeconds} s of 30% loss (goal 0)`] = uplink.loss?.switches ?? 'not measured';
  for (const [slave, rate] of Object.entries(uplink.probeBytesPerSecond ?? {})) {
    figures[`probe traffic ${slave}, B/s (goal < ${uplinkGoals.probeBytesPerSecond})`] = rate;
  }
  figures.verdict = report.verdict;
  figures.report = reportFile;
  return figures;
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  const figures = await benchUplink(process.argv[2] ?? 'out/pibond-bookworm-arm64.img');
  for (const [key, value] of Object.entries(figures)) console.log(`${key.padEnd(64)} ${value}`);
}
