/**
 * pibond-card: pibond-card.service's program (see apply.ts). Runs once per boot, before the
 * network; with no settings on the card it ends at once.
 */
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { promisify } from 'node:util';
import { parseArgs } from 'node:util';
import { runMain } from '../../00-base/src/device.ts';
import { applyCard } from './apply.ts';

runMain('pibond-card', async (argv) => {
  // --root: another system's tree instead of / (for a look at what a card would change); the host name is then left alone.
  const { values } = parseArgs({ args: argv, options: { card: { type: 'string' }, definition: { type: 'string' }, root: { type: 'string', default: '/' } } });
  if (values.card === undefined || values.definition === undefined) throw new Error('usage: pibond-card --card FILE --definition FILE');
  await applyCard(
    { card: values.card, definition: values.definition, root: values.root },
    {
      // The kernel's host name; /etc/hostname (rewritten already) keeps it for later boots.
      setHostname: async (name) => (values.root === '/' ? writeFile('/proc/sys/kernel/hostname', name) : undefined),
      // netplan's own generator (C, what its systemd generator runs): /etc/netplan to /run/systemd/network.
      regenerateNetplan: async () => {
        if (values.root === '/') await promisify(execFile)('/usr/libexec/netplan/generate');
      },
      now: () => new Date(),
      log: (message) => process.stdout.write(`${message}\n`),
    },
  );
});
