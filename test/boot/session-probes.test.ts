import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { machineNics, slaveNics } from '../../scripts/boot/machine.ts';
import { NoChange, sessionProbes } from '../../scripts/boot/probes.ts';
import type { BootSession } from '../../scripts/boot/session.ts';

/** A status service on the loopback that answers with whatever `bond` holds now. */
async function statusService(bond: () => object): Promise<{ port: number; server: Server }> {
  const server = createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(req.url === '/api/events' ? { events: [] } : { uptime_seconds: 60, bonds: [bond()] }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { port: (server.address() as AddressInfo).port, server };
}

/** A port on the loopback where nothing listens: the silent router. */
async function silentPort(): Promise<number> {
  const { port, server } = await statusService(() => ({}));
  await new Promise((resolve) => server.close(resolve));
  return port;
}

const servers: Server[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => new Promise((resolve) => s.close(resolve))));
});

/** A BootSession as the probes see it: the bond's primary is eth1, on nic1. */
async function bootWithPrimaryEth1(bond: () => object) {
  const main = await statusService(bond);
  servers.push(main.server);
  const routers = [
    { nic: 'nic0', status: await silentPort(), ssh: 1 },
    { nic: 'nic1', status: main.port, ssh: 2 },
  ];
  const nics = machineNics(8080, slaveNics({ slaves: [{ name: 'eth0' }, { name: 'eth1' }], primary: 'eth1' }), routers);
  const qmp = { setLink: vi.fn(async () => undefined), unplug: vi.fn(async () => undefined), plug: vi.fn(async () => undefined) };
  const boot = { nics, routers, qmp, whileRunning: <T>(work: Promise<T>) => work } as unknown as BootSession;
  return { probes: sessionProbes(boot, 'bond0', undefined), qmp, routers };
}

const eth1Active = () => ({ name: 'bond0', active_slave: 'eth1', failovers: 0, slaves: [{ name: 'eth0', mii_status: 'up' }, { name: 'eth1', mii_status: 'up' }] });

describe('sessionProbes', () => {
  it("acts on the slave's own NIC: set_link, device_del and device_add go to nic1 for eth1, nic0 for eth0", async () => {
    const { probes, qmp } = await bootWithPrimaryEth1(eth1Active);
    await probes.setLink('eth1', false);
    await probes.unplug('eth0');
    await probes.replug('eth0');
    expect(qmp.setLink).toHaveBeenCalledWith('nic1', false);
    expect(qmp.unplug).toHaveBeenCalledWith('nic0', expect.any(Number));
    expect(qmp.plug).toHaveBeenCalledWith({ driver: 'virtio-net-pci', netdev: 'net0', id: 'nic0', mac: '52:54:00:00:00:01', speed: 100, duplex: 'full', bus: 'rp1' });
  });

  it("reaches the service through the slave's router only, and says which router stayed silent", async () => {
    const { probes } = await bootWithPrimaryEth1(eth1Active);
    await expect(probes.reachableOnly('eth1', 'eth1')).resolves.toMatch(/^nic1 answers \(eth1 active\), nic0 is silent \(.*ECONNREFUSED/);
    await expect(probes.reachableOnly('eth1', 'eth0')).rejects.toThrow("the service answered through nic1's router but reports eth1 active, not eth0");
    await expect(probes.reachableOnly('eth0', 'eth0')).rejects.toThrow(/^no answer through nic0's router/);
  });

  it('watches until the awaited change, and fails at once when an answer breaks the rule', async () => {
    let state = eth1Active();
    const { probes } = await bootWithPrimaryEth1(() => state);
    setTimeout(() => (state = { ...state, slaves: [state.slaves[1]!] }), 120);
    const gone = await probes.watch('eth1', (bond) => !bond.slaves?.some((s) => s.name === 'eth0'), { intervalMs: 10 });
    expect(gone.slaves?.map((s) => s.name)).toEqual(['eth1']);
    await expect(probes.watch('eth1', () => false, { each: () => { throw new Error('the active slave became eth0'); } })).rejects.toThrow('the active slave became eth0');
    await expect(probes.watch('eth1', () => false, { timeoutMs: 50, intervalMs: 10 })).rejects.toBeInstanceOf(NoChange);
  });

  it('asks again while a question goes unanswered (a busy guest), but a wrong answer fails at once', async () => {
    let dropped = 0;
    const { probes, routers } = await bootWithPrimaryEth1(eth1Active);
    const flaky = createServer((req, res) => {
      // The first two connections are cut without an answer, as a guest too slow to answer would.
      if (dropped < 2) {
        dropped++;
        req.socket.destroy();
        return;
      }
      res.end(JSON.stringify(req.url === '/api/events' ? { events: [] } : { uptime_seconds: 60, bonds: [eth1Active()] }));
    });
    await new Promise<void>((resolve) => flaky.listen(0, '127.0.0.1', resolve));
    servers.push(flaky);
    routers[1]!.status = (flaky.address() as AddressInfo).port;
    await expect(probes.bond('eth1')).resolves.toMatchObject({ active_slave: 'eth1' });
    expect(dropped).toBe(2);

    const wrong = createServer((_req, res) => res.end(JSON.stringify({ bonds: 'none' })));
    await new Promise<void>((resolve) => wrong.listen(0, '127.0.0.1', resolve));
    servers.push(wrong);
    routers[1]!.status = (wrong.address() as AddressInfo).port;
    const started = performance.now();
    await expect(probes.events('eth1')).rejects.toThrow();
    expect(performance.now() - started).toBeLessThan(1000);
  });
});
