import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { freePorts } from '../../scripts/boot/ports.ts';

describe('freePorts', () => {
  it('returns distinct ports that can be bound at once on the loopback', async () => {
    const ports = await freePorts(4);
    expect(ports).toHaveLength(4);
    expect(new Set(ports).size).toBe(4);
    const servers = await Promise.all(
      ports.map(
        (port) =>
          new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
            const server = createServer();
            server.once('error', reject);
            server.listen(port, '127.0.0.1', () => resolve(server));
          }),
      ),
    );
    await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  });

  it('returns nothing when asked for nothing', async () => {
    expect(await freePorts(0)).toEqual([]);
  });
});
