/**
 * pibond-card: pibond-card.service's program (see apply.ts). Runs once per boot, before the
 * network; with no settings on the card it ends at once.
 */
import { writeFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { runMain } from '../../00-base/src/device.ts';
import { applyCard } from './apply.ts';

runMain('pibond-card', async (argv) => {
  const { values } = parseArgs({ args: argv, options: { card: { type: 'string' }, definition: { type: 'string' } } });
  if (values.card === undefined || values.definition === undefined) throw new Error('usage: pibond-card --card FILE --definition FILE');
  await applyCard(
    { card: values.card, definition: values.definition, root: '/' },
    {
      // The kernel's host name; /etc/hostname (rewritten already) keeps it for later boots.
      setHostname: (name) => writeFile('/proc/sys/kernel/hostname', name),
      now: () => new Date(),
      log: (message) => process.stdout.write(`${message}\n`),
    },
  );
});
