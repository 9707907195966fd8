/**
 * The failover scenario against a real image, under QEMU (TCG here: several minutes). The lead's
 * e2e entry calls describeFailover after the build, so a build and a boot never share the machine.
 */
import { describe, expect, it } from 'vitest';
import { makeAccessKey } from '../../scripts/boot/card.ts';
import { type FailoverTestResult, failoverTest } from '../../scripts/boot/failover-test.ts';
import type { CardSettings } from '../../scripts/lib/card.ts';
import { formatFigures, formatVerdict } from '../../scripts/boot/report.ts';

const scenarioTimeoutMs = 20 * 60_000;

export function describeFailover(image: () => string): void {
  describe('QEMU failover', { tags: ['slow'] }, () => {
    let result: FailoverTestResult | undefined;

    it(
      'boots with two NICs, fails over to eth1 and back, ignores a lost backup, survives ten flaps',
      async () => {
        result = await failoverTest({
          image: image(),
          timeoutSeconds: scenarioTimeoutMs / 1000 - 60,
          say: (message) => process.stderr.write(`[boot] ${message}\n`),
        });
        process.stderr.write(`${formatFigures(result.report)}\n${formatVerdict(result.report)}\nreport: ${result.reportFile}\n`);
        const failed = result.report.checks.filter((check) => !check.ok);
        expect(failed, result.report.serialLog ? `serial log: ${result.report.serialLog}` : undefined).toEqual([]);
        expect(result.report.error).toBeUndefined();
        expect(result.report.verdict).toBe('pass');
      },
      scenarioTimeoutMs,
    );

    // FACTS.md: one form of the bond came up with a single slave on two boots of three, so one
    // lucky boot proves nothing. Two more boots, each with its own unplug and replug. The second
    // also carries per-card settings, as `pibond flash` writes them: a host name, a static address
    // (the forwards point at it), a name server and the user's key besides the boot's own.
    const cards: (CardSettings | undefined)[] = [
      undefined,
      {
        hostname: 'e2e-card',
        network: { addressing: { method: 'static', address: '10.0.2.50/24', gateway: '10.0.2.2', dns: ['10.0.2.3'] } },
        admin: { authorized_keys: [makeAccessKey('a user of the e2e test').publicKey.trim()] },
      },
    ];
    it.each([1, 2])(
      'boots again (%i of 2 more): both slaves enslaved, eth0 active, failover and back; the second with card settings, applied',
      async (n) => {
        const card = cards[n - 1];
        const again = await failoverTest({
          image: image(),
          flaps: 1,
          card,
          timeoutSeconds: scenarioTimeoutMs / 1000 - 60,
          reportFile: `${image().replace(/\.img$/, '')}.boot-report.again.json`,
          say: (message) => process.stderr.write(`[boot again] ${message}\n`),
        });
        const failed = again.report.checks.filter((check) => !check.ok);
        expect(failed, again.report.serialLog ? `serial log: ${again.report.serialLog}` : undefined).toEqual([]);
        expect(again.report.verdict).toBe('pass');
        const cardCheck = again.report.checks.find((check) => check.name.startsWith("the card's settings are applied"));
        process.stderr.write(`[boot again] ${cardCheck?.name ?? 'no card check'}: ${cardCheck?.detail ?? ''}\n`);
        const expected = card ? /^host name e2e-card; bond0 has 10\.0\.2\.50\/24; logged in as the admin with the boot's key/ : /^$/;
        expect(cardCheck?.detail ?? '').toMatch(expected);
      },
      scenarioTimeoutMs,
    );

    it('measured boot-to-ready, failover and failback', () => {
      // Figures, not timed assertions: a loaded CI machine must not fail the build on speed.
      const figures = result?.report.figures;
      expect(figures?.bootToReadySeconds).toBeGreaterThan(0);
      expect(figures?.failoverMs).toBeGreaterThan(0);
      expect(figures?.failbackMs).toBeGreaterThan(0);
      expect(figures?.flaps).toHaveLength(10);
    });
  });
}
