/**
 * The scenario's row for a boot with card settings (`pibond boot --test --hostname ...`): the image
 * applied them at first boot, as the user meets them. The status service reports the host name and
 * the bond's static address (and answers through forwards pointed at that address); logging in
 * with the boot's access key works; the card file holds no settings any more.
 */
import { type CardSettings, describeCard } from '../lib/card.ts';
import type { Cast, Check } from './checks.ts';

/** The card file as the device sees it. */
const cardOnDevice = '/boot/firmware/pibond-card.yaml';

export function cardApplied({ bond, primary }: Cast, card: CardSettings, opts: { login: boolean }): Check {
  return {
    name: `the card's settings are applied (${describeCard(card)})`,
    async run({ probes }) {
      const seen: string[] = [];
      const status = await probes.status(primary.slave);
      if (card.hostname !== undefined) {
        if (status.hostname !== card.hostname) throw new Error(`the status service reports the host name ${status.hostname ?? '(none)'}, expected ${card.hostname}`);
        seen.push(`host name ${status.hostname}`);
      }
      const addressing = card.network?.addressing;
      if (addressing?.method === 'static') {
        const addresses = status.bonds.find((b) => b.name === bond)?.addresses ?? [];
        if (!addresses.includes(addressing.address)) throw new Error(`${bond}'s addresses are ${addresses.join(', ') || 'none'}, expected ${addressing.address} among them`);
        seen.push(`${bond} has ${addressing.address}`);
      }
      if (opts.login) {
        const answer = await probes.sshRun(primary.slave, `hostname; echo ---; cat ${cardOnDevice}`);
        if (answer.code !== 0) throw new Error(`logging in with the boot's key and running hostname failed (status ${answer.code}): ${answer.stderr.trim()}`);
        const [name = '', left = ''] = answer.stdout.split('---\n');
        if (card.hostname !== undefined && name.trim() !== card.hostname) throw new Error(`hostname on the guest says ${name.trim()}, expected ${card.hostname}`);
        const settingsLeft = left.split('\n').filter((line) => line.trim() !== '' && !line.startsWith('#'));
        if (settingsLeft.length > 0) throw new Error(`${cardOnDevice} still holds settings after the first boot: ${settingsLeft.slice(0, 3).join(' | ')}`);
        seen.push(`logged in as the admin with the boot's key; ${cardOnDevice} holds no settings now`);
      }
      return seen.join('; ');
    },
  };
}
