/**
 * The test bed of real routers, proven without QEMU: a fake Pi (a namespace with one NIC on each
 * router's bridge, where QEMU's taps go) gets a lease from each router, is reached through each
 * router's port forwards and reaches the internet through each router's NAT, all judged from the
 * internet's side; a failed WAN and a hung router are what they claim to be; and nothing has a way
 * out of the machine.
 *
 * Run from test/e2e/e2e.test.ts after the build, which makes the pibond-builder image it needs. The
 * builder recipe has the test bed's packages (testbedPackages); the fake Pi's DHCP client (busybox)
 * is added in a throwaway image here.
 */
import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type Docker, CommandFailed, buildImage, connectDocker, imageExists } from '../../scripts/lib/docker.ts';
import { DEFAULT_SOURCE_DATE_EPOCH, packTar } from '../../scripts/lib/tar.ts';
import { type LayoutName, type RouterName, Testbed, documentationRanges, layoutNames, routerNames, testbedPackages } from '../../scripts/boot/testbed/index.ts';

const fakePi = '/opt/pibond-testbed/test/_fake-pi.mjs';
const piNamespace = 'pibond-pi';
/** The fake Pi's NIC on each router's LAN, as QEMU's nic0/nic1 will be. */
const nicOf: Record<RouterName, string> = { main: 'eth0', backup: 'eth1' };
/** Addresses that are somebody's on the real internet: nothing in the test bed may have a route there. */
const outside = ['1.1.1.1', '8.8.8.8', '10.0.0.1', '172.17.0.1'];
const outside6 = '2606:4700:4700::1111';
/** The udhcpc the fake Pi uses is busybox's; the real Pi brings its own client. */
const testOnlyPackages = ['busybox'];
/**
 * How long a probe that should be answered may take (a loaded machine is slow to schedule), and
 * how long one that must not be answered is given: on a veth LAN an answer takes a millisecond.
 */
const answerSeconds = 3;
const silenceSeconds = 1;

interface Lease {
  nic: string;
  mac: string;
  address: string;
  prefix: number;
  router: string;
}

/** What the fake Pi's server answers: the NIC and address a request reached, and whence. */
interface PiAnswer {
  nic: string;
  address: string;
  port: number;
  from: string;
}

export function describeTestbed(): void {
  describe('test bed of real routers', { tags: ['slow'], timeout: 60_000 }, () => {
    let docker: Docker;
    let image: string;

    beforeAll(async () => {
      docker = await connectDocker();
      image = await testbedImage(docker);
    }, 5 * 60_000);

    describe.each(layoutNames)('%s', (layout: LayoutName) => {
      let bed: Testbed;
      const probe = () => probes(bed);

      beforeAll(async () => {
        bed = await Testbed.start({ docker, image, layout, binds: [`${import.meta.dirname}:/opt/pibond-testbed/test:ro`] });
        await bed.exec(['node', fakePi, 'add', bed.router('main').bridge, bed.router('backup').bridge]);
      }, 2 * 60_000);

      afterAll(async () => {
        await bed?.stop();
      });

      it('nothing leaves: no route out anywhere, no interface but the test bed\'s own', async () => {
        const p = probe();
        const info = await bed.running.container.inspect();
        expect(info.HostConfig.NetworkMode).toBe('none');

        const routers = bed.plan.routers;
        const rootLinks = JSON.parse(await bed.exec(['ip', '-j', 'link', 'show'])) as { ifname: string }[];
        const ours = ['lo', ...routers.flatMap((r) => [r.bridge, r.tap, r.lan.port]), 'pi-eth0', 'pi-eth1'];
        expect(rootLinks.map((l) => l.ifname).sort()).toEqual(ours.sort());

        const namespaces = (await bed.exec(['ip', 'netns', 'list'])).split('\n').map((line) => line.split(' ')[0]).filter(Boolean);
        const bedNamespaces = [bed.plan.internet.namespace, ...routers.map((r) => r.namespace)];
        expect(namespaces.sort()).toEqual([...bedNamespaces, piNamespace].sort());

        // Inside the test bed (the container's own namespace and every one it made), a route may lead
        // only to the documentation ranges or to a router's LAN; the Pi is the guest's stand-in.
        const lans = routers.map((r) => `${r.lan.address}/${r.lan.prefix}`);
        for (const ns of [undefined, ...bedNamespaces]) {
          const routes = JSON.parse(await p.run(ns, ['ip', '-4', '-j', 'route', 'show', 'table', 'main'])) as { dst: string }[];
          for (const route of routes) {
            expect(route.dst, `${ns ?? 'container'}: route to ${route.dst}`).not.toBe('default');
            expect(inAny(route.dst, [...documentationRanges, ...lans]), `${ns ?? 'container'}: route to ${route.dst}`).toBe(true);
          }
          // The kernel's own answer, one process per namespace: which of these has a route. A target
          // is on the list too, so a probe that could never see a route would not pass unnoticed.
          const target = bed.plan.internet.targets[0] ?? '';
          const routable = await p.run(ns, ['sh', '-c', 'for a; do ip route get "$a" >/dev/null 2>&1 && echo "$a"; done; true', 'probe', target, ...outside, outside6]);
          expect(routable.split('\n').filter(Boolean), `${ns ?? 'container'}: addresses with a route`).toEqual(ns ? [target] : []);
        }

        // Even a Pi that sends to a real address, down its default route, is told "unreachable".
        await p.use('main');
        const ping = await p.attempt(piNamespace, ['ping', '-c', '1', '-W', String(answerSeconds), outside[0] ?? '']);
        expect(ping.ok).toBe(false);
        expect(ping.out).toMatch(/Unreachable/);
      });

      it.each(routerNames)('%s router: a DHCP lease in its subnet, port forwards in, NAT out', async (name) => {
        const p = probe();
        const router = bed.router(name);
        const lease = await p.use(name);
        expect(lease).toMatchObject({ nic: nicOf[name], address: router.lan.pi, prefix: router.lan.prefix, router: router.lan.address });
        expect(sameSubnet(lease.address, router.lan.address, router.lan.prefix)).toBe(true);
        const status = await bed.status();
        expect(status.routers[name].dhcp.leases).toContainEqual(expect.objectContaining({ mac: lease.mac, address: lease.address }));

        // Inbound, from the internet's client: each forward lands on this router's NIC, from the client's own address.
        for (const forward of router.forwards) {
          expect(await p.inbound(name, forward.wanPort)).toEqual({ nic: nicOf[name], address: router.lan.pi, port: forward.piPort, from: bed.plan.internet.client });
        }
        // Outbound: the target sees the router's WAN address (NAT), not the Pi's.
        expect(await p.outbound()).toMatchObject({ from: router.wan.address });
        // The other router's forward does not reach a Pi that is not on its LAN.
        const other = routerNames.find((n) => n !== name) as RouterName;
        await expect(p.inbound(other, 8080, silenceSeconds)).rejects.toThrow();
      });

      // The controls are the same code for either router: each layout exercises one of them.
      const subject: RouterName = layout === 'same-subnet' ? 'main' : 'backup';

      it(`fail-wan ${subject}: the internet is gone through it, its LAN still answers; restore-wan brings it back`, async () => {
        const p = probe();
        const router = bed.router(subject);
        const other = routerNames.find((n) => n !== subject) as RouterName;
        await bed.failWan(subject);
        // DHCP still works, so the Pi sees nothing wrong on its link.
        await p.use(subject);
        // Judged from where the user stands first; the test bed's own report of itself after.
        await expect(p.outbound(silenceSeconds)).rejects.toThrow();
        await expect(p.inbound(subject, 8080, silenceSeconds)).rejects.toThrow();
        expect(await p.lanAnswers(subject)).toEqual({ arp: true, ping: true });
        expect((await bed.status()).routers[subject]).toMatchObject({ wanFailed: true, lan: { carrier: true }, wan: { carrier: false } });
        // The other router is untouched.
        await p.use(other);
        expect(await p.outbound()).toMatchObject({ from: bed.router(other).wan.address });

        await bed.restoreWan(subject);
        await p.use(subject);
        expect((await bed.status()).routers[subject].wanFailed).toBe(false);
        expect(await p.outbound()).toMatchObject({ from: router.wan.address });
        expect(await p.inbound(subject, 8080)).toMatchObject({ nic: nicOf[subject] });
      });

      it(`hang ${subject}: its LAN link stays up but nothing answers, not even ARP; unhang brings it back`, async () => {
        const p = probe();
        await p.use(subject);
        expect(await p.lanAnswers(subject)).toEqual({ arp: true, ping: true });
        await bed.hang(subject);
        expect(await p.lanAnswers(subject, silenceSeconds)).toEqual({ arp: false, ping: false });
        await expect(p.outbound(silenceSeconds)).rejects.toThrow();
        // ...while both ends of the link keep carrier: nothing a bond's miimon could notice.
        expect(await p.piCarrier(subject)).toBe(true);
        expect((await bed.status()).routers[subject]).toMatchObject({ hung: true, lan: { up: true, carrier: true } });

        await bed.unhang(subject);
        expect((await bed.status()).routers[subject].hung).toBe(false);
        expect(await p.lanAnswers(subject)).toEqual({ arp: true, ping: true });
        expect(await p.outbound()).toMatchObject({ from: bed.router(subject).wan.address });
      });
      it(`loss ${subject}: a share of what crosses its WAN is lost each way, the rest gets through; 0 ends it`, async () => {
        const p = probe();
        await p.use(subject);
        const target = bed.plan.internet.targets[0] ?? '';
        const answered = async (count: number) => {
          const { out } = await p.attempt(piNamespace, ['ping', '-n', '-q', '-c', String(count), '-i', '0.01', '-W', '1', target]);
          return Number(/(\d+) received/.exec(out)?.[1] ?? Number.NaN);
        };
        await bed.loss(subject, 30);
        expect((await bed.status()).routers[subject].lossPercent).toBe(30);
        // 30% each way: an echo comes back with p = 0.49. Of 60, fewer than 8 or more than 52
        // answered happens with a chance below 1e-8 either way.
        const lossy = await answered(60);
        expect(lossy).toBeGreaterThan(8);
        expect(lossy).toBeLessThan(52);
        // The LAN is untouched: the router itself still answers every time.
        expect(await p.lanAnswers(subject)).toEqual({ arp: true, ping: true });

        await bed.loss(subject, 0);
        expect((await bed.status()).routers[subject].lossPercent).toBe(0);
        expect(await answered(20)).toBe(20);
      });
    });
  });
}

/** The probes, each run where a user's traffic would come from: the internet, or the (fake) Pi. */
function probes(bed: Testbed) {
  const inNs = (ns: string | undefined, cmd: string[]) => (ns ? ['ip', 'netns', 'exec', ns, ...cmd] : cmd);
  const p = {
    run: (ns: string | undefined, cmd: string[]) => bed.exec(inNs(ns, cmd)),
    /** A probe that may fail: whether it succeeded, and what it printed. */
    async attempt(ns: string | undefined, cmd: string[]): Promise<{ ok: boolean; out: string }> {
      const out: string[] = [];
      try {
        out.push(await bed.exec(inNs(ns, ['sh', '-c', '"$@" 2>&1', 'probe', ...cmd])));
        return { ok: true, out: out.join('\n') };
      } catch (err) {
        if (!(err instanceof CommandFailed)) throw err;
        return { ok: false, out: err.tail.join('\n') };
      }
    },
    /** The fake Pi on this router's LAN alone, with a fresh lease from it. */
    async use(router: RouterName): Promise<Lease> {
      return JSON.parse(await bed.exec(['node', fakePi, 'use', nicOf[router]])) as Lease;
    },
    /** From the internet's client, through the router's port forward. */
    async inbound(router: RouterName, wanPort: number, seconds = answerSeconds): Promise<PiAnswer> {
      const url = `http://${bed.router(router).wan.address}:${wanPort}/`;
      return JSON.parse(await p.run(bed.plan.internet.namespace, ['curl', '-sS', '--max-time', String(seconds), url])) as PiAnswer;
    },
    /** From the Pi to the internet's first target, which answers with the address it saw. */
    async outbound(seconds = answerSeconds): Promise<{ from: string }> {
      const { targets, whoamiPort } = bed.plan.internet;
      const url = `http://${targets[0]}:${whoamiPort}/`;
      return JSON.parse(await p.run(piNamespace, ['curl', '-sS', '--max-time', String(seconds), url])) as { from: string };
    },
    /** Whether the router answers the Pi on its LAN: ARP (raw, whatever the neighbour cache holds) and ping. */
    async lanAnswers(router: RouterName, seconds = answerSeconds): Promise<{ arp: boolean; ping: boolean }> {
      const { address } = bed.router(router).lan;
      const arp = await p.attempt(piNamespace, ['arping', '-c', '1', '-w', String(seconds), '-I', nicOf[router], address]);
      const ping = await p.attempt(piNamespace, ['ping', '-c', '1', '-W', String(seconds), '-I', nicOf[router], address]);
      return { arp: arp.ok, ping: ping.ok };
    },
    /** Whether the Pi's NIC on this router's LAN has carrier: what miimon would see. */
    async piCarrier(router: RouterName): Promise<boolean> {
      const [link] = JSON.parse(await p.run(undefined, ['ip', '-j', '-n', piNamespace, 'link', 'show', 'dev', nicOf[router]])) as { flags: string[] }[];
      return link?.flags.includes('LOWER_UP') ?? false;
    },
  };
  return p;
}

function ipv4(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function sameSubnet(a: string, b: string, prefix: number): boolean {
  const size = 2 ** (32 - prefix);
  return Math.floor(ipv4(a) / size) === Math.floor(ipv4(b) / size);
}

/** Whether a route's destination (an address or a prefix) lies inside one of the ranges. */
function inAny(dst: string, ranges: readonly string[]): boolean {
  const [address = '', bits = '32'] = dst.split('/');
  return ranges.some((range) => {
    const [base = '', prefix = '32'] = range.split('/');
    return Number(bits) >= Number(prefix) && sameSubnet(address, base, Number(prefix));
  });
}

/**
 * The newest builder image plus the test bed's packages, built once per builder image and package
 * list. The builder's own apt sources (the Debian mirror) are the only network the build uses.
 */
async function testbedImage(docker: Docker): Promise<string> {
  const builders = await docker.listImages({ filters: JSON.stringify({ reference: ['pibond-builder'] }) });
  const newest = builders.sort((a, b) => b.Created - a.Created)[0];
  const base = newest?.RepoTags?.find((tag) => tag.startsWith('pibond-builder:'));
  if (!base) throw new Error('no pibond-builder image here: build one first (pibond build); the test bed is made from it');
  const packages = [...testbedPackages, ...testOnlyPackages];
  const tag = `pibond-testbed-test:${createHash('sha256').update(`${newest?.Id}\0${packages.join(' ')}`).digest('hex').slice(0, 16)}`;
  if (await imageExists(docker, tag)) return tag;
  const dockerfile = [
    `FROM ${base}`,
    `RUN apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends ${packages.join(' ')} && apt-get clean && rm -rf /var/lib/apt/lists/*`,
    '',
  ].join('\n');
  const context = Readable.from([await packTar([{ type: 'file', path: 'Dockerfile', content: dockerfile, mode: 0o644 }], DEFAULT_SOURCE_DATE_EPOCH)]);
  await buildImage(docker, context, { tag }, () => {});
  return tag;
}
