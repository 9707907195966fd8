/**
 * Free host ports, chosen at run time: the kernel picks each (bind to port 0), we read it and let
 * it go for QEMU to bind. Ports are kept apart from each other, so one run never gets a port twice.
 */
import { createServer } from 'node:net';
import { bounded } from '../lib/poll.ts';

export async function freePorts(count: number, host = '127.0.0.1'): Promise<number[]> {
  const ports: number[] = [];
  // Hold every port until all are chosen, so the kernel cannot hand out the same one twice.
  const servers = [];
  try {
    while (ports.length < count) {
      const server = createServer();
      servers.push(server);
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(0, host, () => resolve());
      });
      const address = server.address();
      if (address === null || typeof address === 'string') throw new Error(`cannot read the port bound on ${host}`);
      ports.push(address.port);
    }
    return ports;
  } finally {
    // close() frees the port at once; its callback also waits for connections a stranger made in
    // the meantime, which must not hold up the boot.
    const closed = Promise.all(servers.map((server) => new Promise<void>((resolve) => server.close(() => resolve()))));
    await bounded(closed, 1000, []);
  }
}
