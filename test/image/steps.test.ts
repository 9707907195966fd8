/**
 * Steps 20-90 against the fake Docker engine: what each runs in the container, with which typed
 * input, what it makes of the exit codes, and what its verify refuses before anything runs.
 */
import type { EngineInfo } from '../../scripts/lib/engine.ts';
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { BuildContext, Step } from '../../scripts/image/context.ts';
import { paths } from '../../scripts/image/context.ts';
import { build } from '../../scripts/image/index.ts';
import { container } from '../../scripts/image/steps/20-container.ts';
import { notCached, rootfs } from '../../scripts/image/steps/30-rootfs.ts';
import { parseRootBaseReport, rootBase, rootBasePaths } from '../../scripts/image/steps/35-root-base.ts';
import { overlays } from '../../scripts/image/steps/40-overlays.ts';
import { configure } from '../../scripts/image/steps/50-configure.ts';
import { disk } from '../../scripts/image/steps/60-disk.ts';
import { checkDefinitionFits, parseInspectReport } from '../../scripts/image/steps/32-stock-image.ts';
import { lay } from '../../scripts/image/steps/62-lay.ts';
import { check } from '../../scripts/image/steps/70-check.ts';
import { outputs } from '../../scripts/image/steps/80-outputs.ts';
import { publish } from '../../scripts/image/steps/90-publish.ts';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { CommandFailed } from '../../scripts/lib/docker.ts';
import { UserError } from '../../scripts/lib/errors.ts';
import { diskLayout } from '../../scripts/lib/layout.ts';
import { Progress } from '../../scripts/lib/log.ts';
import { readManifest, readTimings } from '../../scripts/lib/manifest.ts';
import type { StockImage } from '../../scripts/lib/stock/detect.ts';
import { type ExecScript, FakeEngine } from '../lib/_fake-engine.ts';
import { listTar } from '../lib/_tar-entries.ts';

/** The engine of this machine (a unix socket), on amd64: staging bind-mounted, arm64 emulated. */
const localEngine: EngineInfo = { endpoint: { options: undefined, words: 'the local socket /var/run/docker.sock', local: true, named: false }, arch: 'amd64' };

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'pibond-steps-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

function quietProgress(): Progress {
  return new Progress({ live: false, verbose: false, stream: { write: () => true } as unknown as NodeJS.WriteStream });
}

const defaultYaml = 'name: t\nadmin: {name: pi, authorized_keys: ["ssh-ed25519 AAAA me@laptop"]}\n';

/** A context as the steps before 20 leave it, on a fake engine. */
async function context(engine: FakeEngine, yaml = defaultYaml, options: Partial<BuildContext['options']> = {}, engineInfo?: EngineInfo): Promise<BuildContext> {
  const def = parseDefinition(yaml, 't.yaml');
  const outDir = join(dir, 'out');
  const stagingDir = join(outDir, '.staging');
  await mkdir(stagingDir, { recursive: true });
  return {
    def,
    definitionHash: 'hash',
    options: { definitionFile: 't.yaml', outDir, cache: true, cacheVolume: 'pibond-cache', overlaysDirs: [], sourceDateEpoch: 1704067200, ...options },
    layout: diskLayout(def),
    progress: quietProgress(),
    stagingDir,
    docker: engine.docker,
    builderImage: 'pibond-builder:test',
    engine: engineInfo ?? localEngine,
  };
}

/** A fake engine whose build container runs until removed; each exec answers through `exec`. */
function engineWith(exec: (tool: string, args: string[]) => ExecScript = () => ({})) {
  const execs: { tool: string; args: string[] }[] = [];
  const engine = new FakeEngine({
    container: () => ({}),
    exec: (cmd) => {
      const [path = '', ...args] = cmd;
      // A recipe script by its name; any other command (tar, rm) as it is.
      const tool = path.startsWith(`${paths.tools}/`) ? path.slice(`${paths.tools}/`.length) : path;
      execs.push({ tool, args });
      return exec(tool, args);
    },
  });
  return { engine, execs };
}

/** The context with the build container running (step 20 done). */
async function running(engine: FakeEngine, yaml?: string, options?: Partial<BuildContext['options']>, engineInfo?: EngineInfo): Promise<BuildContext> {
  const ctx = await context(engine, yaml, options, engineInfo);
  await container.run(ctx);
  return ctx;
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected a rejection');
}

/** An engine reached over tcp (another machine, as far as pibond can tell), running `arch`. */
const remoteEngine = (arch: string): EngineInfo => ({ endpoint: { options: undefined, words: 'DOCKER_HOST=tcp://127.0.0.1:23750', local: false, named: true }, arch });

describe('20-container', () => {
  it('on a remote engine, bind-mounts nothing of this machine: /out is a volume of the container', async () => {
    const { engine, execs } = engineWith();
    await running(engine, undefined, undefined, remoteEngine('amd64'));
    const created = engine.container().opts;
    expect(created.HostConfig?.Binds).toEqual([`pibond-cache:${paths.cache}`]);
    expect(Object.keys(created.Volumes ?? {})).toEqual([paths.work, paths.out]);
    expect(execs).toEqual([{ tool: 'register-binfmt.mjs', args: ['aarch64'] }]);
  });

  it('on an arm64 engine, registers no emulator: the image runs natively', async () => {
    const { engine, execs } = engineWith();
    await running(engine, undefined, undefined, remoteEngine('arm64'));
    expect(execs).toEqual([]);
  });

  it('creates the container with only the privileges the build needs, starts it, registers binfmt, and removes it on cleanup', async () => {
    const { engine, execs } = engineWith();
    const ctx = await running(engine);
    const created = engine.container().opts;
    expect(created.HostConfig?.CapAdd).toEqual(['SYS_ADMIN']);
    expect(created.HostConfig?.Privileged).toBeFalsy();
    expect(created.HostConfig?.SecurityOpt).toEqual(['apparmor=unconfined', 'seccomp=unconfined']);
    expect(created.HostConfig?.Binds).toEqual([`pibond-cache:${paths.cache}`, `${ctx.stagingDir}:/out`]);
    expect(execs).toEqual([{ tool: 'register-binfmt.mjs', args: ['aarch64'] }]);
    expect(engine.calls.slice(0, 3)).toEqual(['create', 'attach', 'start']);

    await container.cleanup?.(ctx);
    expect(engine.container().state).toBe('removed');
    await container.cleanup?.(ctx); // a second cleanup (already gone) is no error
  });

  it('removes the container itself when the build was stopped while it was being made (the cleanups had run already)', async () => {
    const { engine, execs } = engineWith();
    const stop = new AbortController();
    const ctx = { ...(await context(engine)), signal: stop.signal };
    // The stop came while the engine was creating it: the cleanups ran and found no container.
    stop.abort(new Error('interrupted by SIGINT'));
    await container.cleanup?.(ctx);
    await expect(container.run(ctx)).rejects.toThrow('interrupted by SIGINT');
    expect(engine.container().state).toBe('removed');
    expect(execs).toEqual([]);
  });

  it('refuses a cache volume name Docker would refuse, naming the option', async () => {
    const { engine } = engineWith();
    const err = await rejection(container.verify!(await context(engine, defaultYaml, { cacheVolume: 'my cache' })));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^--cache-volume "my cache" is not a Docker volume name/);
    expect(engine.calls).toEqual([]);
  });
});

describe('30-rootfs', () => {
  const cacheEntry = (args: string[]) => JSON.parse(args[1] ?? '{}') as { entry: string; rootfs: string; keep?: number };

  it('restores from the cache when the entry is there, and bootstraps nothing', async () => {
    const { engine, execs } = engineWith();
    const ctx = await running(engine);
    await rootfs.run(ctx);
    const tools = execs.slice(1);
    expect(tools.map((e) => [e.tool, e.args[0]])).toEqual([['rootfs-cache.mjs', 'restore']]);
    expect(cacheEntry(tools[0]!.args)).toEqual({ entry: expect.stringMatching(/^\/cache\/rootfs\/[0-9a-f]{24}\.tree$/), rootfs: paths.rootfs, work: paths.work });
    expect(ctx.rootfs).toEqual({ key: expect.any(String), fromCache: true });
  });

  it('bootstraps when there is no entry (exit 3), then saves it keeping the newest five (one for each stack example definition, and one more)', async () => {
    const { engine, execs } = engineWith((tool, args) => (tool === 'rootfs-cache.mjs' && args[0] === 'restore' ? { exitCode: notCached } : {}));
    const ctx = await running(engine);
    await rootfs.run(ctx);
    expect(execs.slice(1).map((e) => [e.tool, e.args[0]])).toEqual([
      ['rootfs-cache.mjs', 'restore'],
      ['bootstrap-rootfs', paths.rootfs],
      ['rootfs-cache.mjs', 'save'],
    ]);
    expect(cacheEntry(execs[3]!.args).keep).toBe(5);
    expect(ctx.rootfs?.fromCache).toBe(false);
  });

  it('with --no-cache, bootstraps without looking in the cache', async () => {
    const { engine, execs } = engineWith();
    await rootfs.run(await running(engine, defaultYaml, { cache: false }));
    expect(execs.slice(1).map((e) => e.tool)).toEqual(['bootstrap-rootfs', 'rootfs-cache.mjs']);
  });

  it('a restore that fails otherwise is a UserError saying how to replace the entry, not a reason to bootstrap', async () => {
    const { engine, execs } = engineWith((tool) => (tool === 'rootfs-cache.mjs' ? { exitCode: 2, output: [['stderr', 'zstd: corrupted\n']] } : {}));
    const err = await rejection(rootfs.run(await running(engine)));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^the cached root filesystem [0-9a-f]{24} could not be restored; build once with --no-cache to replace it \(or empty the cache: docker volume rm pibond-cache\)\. The restore said:\n {2}zstd: corrupted$/);
    expect(execs.map((e) => e.tool)).not.toContain('bootstrap-rootfs');
  });

  it('explains a failed bootstrap in the definition\'s words, and saves nothing', async () => {
    const { engine, execs } = engineWith((tool) =>
      tool === 'rootfs-cache.mjs' ? { exitCode: notCached } : tool === 'bootstrap-rootfs' ? { exitCode: 1, output: [['stderr', 'E: Unable to locate package curlx\n']] } : {},
    );
    const err = await rejection(rootfs.run(await running(engine, `${defaultYaml}packages: [curlx]\n`)));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^package "curlx" is not in/);
    expect(execs.filter((e) => e.args[0] === 'save')).toEqual([]);
  });
});

describe('40-overlays', () => {
  async function overlayTree(name: string, files: Record<string, string>): Promise<string> {
    const root = join(dir, name);
    for (const [path, content] of Object.entries(files)) {
      await mkdir(join(root, path, '..'), { recursive: true });
      await writeFile(join(root, path), content);
    }
    return root;
  }

  it('streams one tar of the merged overlays into the container and unpacks it onto the root filesystem there', async () => {
    const mine = await overlayTree('mine', { '50-my-app/rootfs/etc/hello': 'hi\n' });
    const { engine, execs } = engineWith();
    const ctx = await running(engine, defaultYaml, { overlaysDirs: [mine] });
    await overlays.verify!(ctx);
    await overlays.run(ctx);
    // The engine's archive API cannot see the overlay mount made inside the container: the tar
    // goes into the scratch space as a file.
    const [archive] = engine.container().archives;
    expect(archive?.path).toBe(paths.work);
    const [wrapper] = await listTar(archive!.content);
    expect(wrapper?.name).toBe('overlays.tar');
    // One file: its 512-byte header (the size in octal at byte 124), then its bytes.
    const size = parseInt(archive!.content.subarray(124, 136).toString('ascii'), 8);
    const entries = await listTar(archive!.content.subarray(512, 512 + size));
    expect(entries.map((e) => e.name)).toEqual(['etc', 'etc/hello']);
    expect(entries[1]?.content).toBe('hi\n');
    expect(execs.slice(-2).map((e) => [e.tool, ...e.args].join(' '))).toEqual([
      `tar -x -p --numeric-owner -f ${paths.work}/overlays.tar -C ${paths.rootfs}`,
      `rm ${paths.work}/overlays.tar`,
    ]);
  });

  it('refuses a missing --overlays folder, naming it', async () => {
    const { engine } = engineWith();
    const err = await rejection(overlays.verify!(await context(engine, defaultYaml, { overlaysDirs: [join(dir, 'overlayz')] })));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe(`--overlays ${join(dir, 'overlayz')}: no such directory; it must be a folder of NN-name overlay trees, like DIR/50-my-app/rootfs/etc/...`);
  });

  it('refuses an overlay folder outside the NN-name scheme and a render.ts without render()', async () => {
    const { engine } = engineWith();
    const misnamed = await overlayTree('misnamed', { 'my-app/rootfs/etc/x': '' });
    expect((await rejection(overlays.verify!(await context(engine, defaultYaml, { overlaysDirs: [misnamed] })))).message).toMatch(/must be named NN-name.*got my-app/);
    const noRender = await overlayTree('norender', { '50-app/render.ts': 'export const x = 1;\n' });
    const err = await rejection(overlays.verify!(await context(engine, defaultYaml, { overlaysDirs: [noRender] })));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe(`${join(noRender, '50-app', 'render.ts')} must export async function render(def: Definition); it exports x`);
  });

  it('a mistyped --overlays path stops the build in verify, before any step runs', async () => {
    const events: string[] = [];
    const recording = (title: string): Step => ({ title, run: async () => void events.push(`run ${title}`) });
    const outDir = join(dir, 'out');
    const err = await rejection(
      build(
        { definitionFile: join(import.meta.dirname, '..', '..', 'images', 'default.yaml'), outDir, cache: true, cacheVolume: 'pibond-cache', overlaysDirs: [join(dir, 'overlays-typo')], sourceDateEpoch: 0 },
        quietProgress(),
        undefined,
        [recording('host'), recording('rootfs'), overlays, recording('publish')],
      ),
    );
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toContain(`--overlays ${join(dir, 'overlays-typo')}: no such directory`);
    expect(events).toEqual([]);
  });
});

describe('50-configure', () => {
  it('runs configure-rootfs.mjs with the account, keys, zone, locale and timestamp as one JSON input', async () => {
    const { engine, execs } = engineWith();
    await configure.run(await running(engine, `${defaultYaml}timezone: Europe/Berlin\nlocale: de_DE.UTF-8\n`));
    expect(execs[1]?.tool).toBe('configure-rootfs.mjs');
    expect(JSON.parse(execs[1]!.args[0]!)).toEqual({
      root: paths.rootfs,
      adminUser: 'pi',
      authorizedKeys: ['ssh-ed25519 AAAA me@laptop'],
      timezone: 'Europe/Berlin',
      locale: 'de_DE.UTF-8',
      sourceDateEpoch: 1704067200,
    });
  });

  it('refuses an admin named after a system account', async () => {
    const { engine } = engineWith();
    const err = await rejection(configure.verify!(await context(engine, 'name: t\nadmin: {name: root}\n')));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^admin\.name "root" is a system account/);
  });
});

const cardSlot = { file: 'pibond-card.yaml', offset: 4_210_688, bytes: 65536 };

describe('35-root-base', () => {
  it('runs root-base.mjs with a key of the root filesystem, the root partition and the epoch', async () => {
    const uuid = '0b5e0ea4-7c1d-4a2b-8c3d-0123456789ab';
    const { engine, execs } = engineWith((tool) => (tool === 'root-base.mjs' ? { output: [['stdout', `{"built":false,"seconds":0.1,"uuid":"${uuid}"}\n`]] } : {}));
    const ctx = await running(engine);
    ctx.rootfs = { key: 'k', fromCache: true };
    await rootBase.run(ctx);
    const input = JSON.parse(execs[1]!.args[0]!) as Record<string, unknown>;
    expect(execs[1]?.tool).toBe('root-base.mjs');
    const base = rootBasePaths(ctx);
    expect(input).toMatchObject({ root: paths.rootfs, base: base.file, rootBytes: ctx.layout.rootSectors * 512, reuse: true, sourceDateEpoch: 1704067200 });
    expect(base.file).toMatch(/^\/cache\/root-base\/[0-9a-f]{24}\.ext4$/);
    // The UUID is the tree's (root-base.mjs makes it from the packages), and the disk step's.
    expect(ctx.rootBaseUuid).toBe(uuid);
  });

  it('a report without a UUID is a failed step, not an image with a made-up one', () => {
    expect(() => parseRootBaseReport(['{"built":true,"seconds":1}'])).toThrow(/root-base\.mjs reported no file system UUID/);
    expect(() => parseRootBaseReport(['{"built":true,"uuid":"not-a-uuid"}'])).toThrow(/no file system UUID/);
  });

  it('keys the base by the root filesystem, the partition size and the epoch, never by the definition', async () => {
    const { engine } = engineWith();
    const ctx = await running(engine);
    ctx.rootfs = { key: 'k', fromCache: true };
    const other = await running(engine);
    other.rootfs = { key: 'k', fromCache: false };
    const renamed = { ...other, def: { ...other.def, hostname: 'elsewhere' } };
    expect(rootBasePaths(renamed)).toEqual(rootBasePaths(ctx));
    expect(rootBasePaths({ ...ctx, rootfs: { key: 'k2', fromCache: true } }).key).not.toBe(rootBasePaths(ctx).key);
    expect(rootBasePaths({ ...ctx, options: { ...ctx.options, sourceDateEpoch: 1 } }).key).not.toBe(rootBasePaths(ctx).key);
  });
});

describe('60-disk', () => {
  it('runs assemble-disk.mjs with the layout and a command line naming the root by PARTUUID', async () => {
    const { engine, execs } = engineWith((tool) => (tool === 'assemble-disk.mjs' ? { output: [['stdout', `${JSON.stringify({ card: cardSlot })}\n`]] } : {}));
    const ctx = await running(engine);
    ctx.rootfs = { key: 'k', fromCache: true };
    ctx.rootBaseUuid = '0b5e0ea4-7c1d-4a2b-8c3d-0123456789ab';
    await disk.run(ctx);
    expect(ctx.card).toEqual(cardSlot);
    const input = JSON.parse(execs[1]!.args[0]!) as Record<string, unknown>;
    expect(execs[1]?.tool).toBe('assemble-disk.mjs');
    expect(input).toMatchObject({
      root: paths.rootfs,
      image: '/out/t.img',
      diskId: ctx.layout.diskId,
      bootStart: 8192,
      rootSectors: ctx.layout.rootSectors,
      totalSectors: 4194304,
      sourceDateEpoch: 1704067200,
      rootBase: { ...rootBasePaths(ctx), uuid: '0b5e0ea4-7c1d-4a2b-8c3d-0123456789ab' },
    });
    expect(input['cmdline']).toContain(`root=PARTUUID=${ctx.layout.diskId}-02 `);
  });

  it('refuses a disk whose root partition cannot hold the root filesystem, before anything runs', async () => {
    const { engine } = engineWith();
    const err = await rejection(disk.verify!(await context(engine, `${defaultYaml}disk: {size: 768MiB}\n`)));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toMatch(/^disk\.size leaves 508 MiB for the root partition.*at least 1284MiB\.$/);
  });
});

describe('32-stock-image', () => {
  it("refuses a definition whose network stack is not the image's, saying which to set", () => {
    expect(() => checkDefinitionFits('netplan', 'networkmanager', 'Raspberry Pi OS bookworm', 'pi.yaml')).toThrow(
      new UserError('pi.yaml: network.stack is netplan, but the base image is Raspberry Pi OS bookworm, whose network stack is networkmanager: set network.stack: networkmanager'),
    );
    expect(() => checkDefinitionFits('netplan', 'netplan', 'Ubuntu noble', 'u.yaml')).not.toThrow();
  });

  it("reads stock-image.mjs inspect's last JSON line, and says so when there is none", () => {
    const report = { diskId: '0a1b2c3d', partitions: [{ type: 12, start: 8192, sectors: 1024, filesystem: 'vfat', label: 'bootfs' }], files: ['/etc/rpi-issue'] };
    expect(parseInspectReport(['stock-image: unpacked 2048 MiB in 4.1 s', JSON.stringify(report)])).toEqual(report);
    expect(() => parseInspectReport(['debugfs 1.47.2'])).toThrow(/printed no report; its output ended:\n {2}debugfs 1\.47\.2/);
  });
});

describe('62-lay', () => {
  const stockYaml = `name: t\nbase: {image: raspios.img.xz, sha256: ${'a'.repeat(64)}}\nadmin: {name: pi, authorized_keys: ["ssh-ed25519 AAAA me@laptop"]}\nnetwork: {stack: networkmanager}\ntimezone: Europe/Berlin\n`;
  const found: StockImage = {
    rule: 'raspios-bookworm',
    name: 'Raspberry Pi OS bookworm',
    distribution: 'raspios',
    release: 'bookworm',
    version: '12',
    architecture: 'arm64',
    stack: 'networkmanager',
    bootMount: '/boot/firmware',
    cloudInit: false,
    nodejs: '18.19.0+dfsg-6~deb12u2',
    kernels: ['linux-image-rpi-v8'],
    kernelBootsVirt: false,
    labels: { boot: 'bootfs', root: 'rootfs' },
    notes: [],
  };
  const report = { card: cardSlot, sizes: { rootfsBytes: 3, kernelModulesBytes: 2, bootBytes: 1 }, summary: {} };

  it("runs lay-stock.mjs on the image's partitions with the account, keys, zone and cloud-init's presence; the image's own Node serves", async () => {
    const { engine, execs } = engineWith((tool) => (tool === 'lay-stock.mjs' ? { output: [['stdout', `${JSON.stringify(report)}\n`]] } : {}));
    const ctx = await running(engine, stockYaml);
    ctx.stock = { image: found, diskId: '0a1b2c3d', bootOffset: 4194304, rootOffset: 541065216 };
    await lay.run(ctx);
    expect(execs.map((exec) => exec.tool)).toEqual(['register-binfmt.mjs', 'lay-stock.mjs']);
    expect(JSON.parse(execs[1]!.args[0]!)).toEqual({
      image: '/out/t.img',
      tree: paths.rootfs,
      rootOffset: 541065216,
      bootOffset: 4194304,
      adminUser: 'pi',
      authorizedKeys: ['ssh-ed25519 AAAA me@laptop'],
      timezone: 'Europe/Berlin',
      sourceDateEpoch: 1704067200,
      cloudInit: false,
      dpkgRoot: `${paths.work}/stock-dpkg`,
    });
    expect(ctx.card).toEqual(cardSlot);
    expect(ctx.stockSizes).toEqual(report.sizes);
  });

  it('a root file system without room is a UserError naming the image and how to grow it', async () => {
    const { engine } = engineWith((tool) =>
      tool === 'lay-stock.mjs' ? { exitCode: 4, output: [['stderr', "lay-stock: no room: the image's root file system has 20 MiB free and pibond needs 130 MiB. Grow it.\n"]] } : {},
    );
    const ctx = await running(engine, stockYaml);
    ctx.stock = { image: found, diskId: '0a1b2c3d', bootOffset: 4194304, rootOffset: 541065216 };
    const err = await rejection(lay.run(ctx));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe("base.image raspios.img.xz: the image's root file system has 20 MiB free and pibond needs 130 MiB. Grow it.");
  });

  it('refuses an admin named after a system account, before anything runs', async () => {
    const { engine } = engineWith();
    const err = await rejection(lay.verify!(await context(engine, stockYaml.replace('name: pi,', 'name: daemon,'))));
    expect(err).toBeInstanceOf(UserError);
  });
});

describe('70-check', () => {
  it('passes the image, the tree and the modules the initrd must hold', async () => {
    const { engine, execs } = engineWith(() => ({ output: [['stdout', 'self-check: boot chain OK (11 modules in the initrd)\n']] }));
    await check.run(await running(engine));
    expect(JSON.parse(execs[1]!.args[0]!)).toMatchObject({ image: '/out/t.img', root: paths.rootfs, requiredModules: expect.arrayContaining(['mmc_block', 'ext4']) });
  });

  it('turns the self-check\'s problems (exit 1) into one UserError listing them', async () => {
    const { engine } = engineWith((tool) =>
      tool === 'check-boot-chain.mjs'
        ? { exitCode: 1, output: [['stderr', 'self-check: config.txt names no kernel\nself-check: the initrd lacks module mmc_block, and the kernel does not have it built in\n']] }
        : {},
    );
    const err = await rejection(check.run(await running(engine)));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe(
      'the image would not boot; the self-check found:\n  config.txt names no kernel\n  the initrd lacks module mmc_block, and the kernel does not have it built in',
    );
  });

  it('a failure without a self-check line is a bug, reported whole', async () => {
    const { engine } = engineWith((tool) => (tool === 'check-boot-chain.mjs' ? { exitCode: 127, output: [['stderr', 'node: not found\n']] } : {}));
    const err = await rejection(check.run(await running(engine)));
    expect(err).toBeInstanceOf(CommandFailed);
    expect((err as CommandFailed).exitCode).toBe(127);
  });
});

describe('80-outputs', () => {
  it('runs outputs.mjs and writes the manifest from its report', async () => {
    const report = {
      compressSeconds: 1.5,
      bmapSeconds: 0.5,
      checksums: { 't.img': 'a'.repeat(64), 't.img.zst': 'b'.repeat(64) },
      packages: [{ name: 'bash', version: '5.2', architecture: 'arm64' }],
      sizes: { rootfsBytes: 3, kernelModulesBytes: 2, bootBytes: 1 },
    };
    const { engine, execs } = engineWith((tool) => (tool === 'outputs.mjs' ? { output: [['stderr', '$ zstd ...\n'], ['stdout', `${JSON.stringify(report)}\n`]] } : {}));
    const ctx = await running(engine);
    ctx.card = cardSlot;
    for (const file of ['t.img', 't.img.zst', 't.img.sha256']) await writeFile(join(ctx.stagingDir, file), file);
    await writeFile(join(ctx.stagingDir, '.bmap-ranges.json'), JSON.stringify({ imageSize: 5, blockSize: 4096, ranges: [{ first: 0, last: 0, sha256: 'c'.repeat(64) }] }));
    await outputs.run(ctx);
    expect(JSON.parse(execs[1]!.args[0]!)).toEqual({
      dir: '/out',
      image: 't.img',
      compression: 'zstd',
      checksums: 't.img.sha256',
      bmapRanges: '.bmap-ranges.json',
      root: paths.rootfs,
      frames: { dir: '/cache/zstd-frames', reuse: true },
    });
    const manifest = await readManifest(join(ctx.stagingDir, 't.manifest.json'));
    expect(manifest.files).toMatchObject({
      't.img': { bytes: 5, sha256: 'a'.repeat(64) },
      't.img.zst': { bytes: 9, sha256: 'b'.repeat(64) },
      't.img.sha256': { bytes: 12 },
    });
    expect(Object.keys(manifest.files)).toEqual(['t.img', 't.img.zst', 't.img.sha256', 't.img.bmap', 't.rpi-imager.json']);
    expect(await readFile(join(ctx.stagingDir, 't.img.bmap'), 'utf8')).toContain(`<Range chksum="${'c'.repeat(64)}"> 0 </Range>`);
    expect(await readdir(ctx.stagingDir)).not.toContain('.bmap-ranges.json');
    expect(manifest.card).toEqual(cardSlot);
    expect(manifest.packages).toEqual(report.packages);
    expect(manifest.sizes).toEqual(report.sizes);
    expect(manifest).not.toHaveProperty('steps');
    const timings = await readTimings(join(ctx.stagingDir, 't.timings.json'));
    expect(timings.steps.slice(-2)).toEqual([{ name: 'Compress', seconds: 1.5 }, { name: 'Block map', seconds: 0.5 }]);
  });

  it('on a remote engine, fetches every output outputs.mjs wrote through the API before describing them', async () => {
    const report = {
      compressSeconds: 1,
      bmapSeconds: 1,
      checksums: { 't.img': 'a'.repeat(64), 't.img.zst': 'b'.repeat(64) },
      packages: [],
      sizes: { rootfsBytes: 3, kernelModulesBytes: 2, bootBytes: 1 },
    };
    const ranges = JSON.stringify({ imageSize: 5, blockSize: 4096, ranges: [{ first: 0, last: 0, sha256: 'c'.repeat(64) }] });
    const contents: Record<string, string> = { '/out/t.img': 'image', '/out/t.img.zst': 'zst-bytes', '/out/t.img.sha256': 'sums of both', '/out/.bmap-ranges.json': ranges };
    const { engine, execs } = engineWith((tool, args) => {
      if (tool === 'outputs.mjs') return { output: [['stdout', `${JSON.stringify(report)}\n`]] };
      if (tool !== 'send-file.mjs') return {};
      const bytes = Buffer.from(contents[args[0]!] ?? '');
      const header = (offset: number, length: number) => {
        const b = Buffer.alloc(16);
        b.writeBigUInt64BE(BigInt(offset), 0);
        b.writeBigUInt64BE(BigInt(length), 8);
        return b;
      };
      return { output: [['stdout', Buffer.concat([header(0, bytes.length), bytes, header(bytes.length, 0)])]] };
    });
    const ctx = await running(engine, undefined, undefined, remoteEngine('amd64'));
    ctx.card = cardSlot;
    await outputs.run(ctx);
    expect(execs.filter((e) => e.tool === 'send-file.mjs').map((e) => e.args[0])).toEqual(['/out/t.img', '/out/t.img.zst', '/out/t.img.sha256', '/out/.bmap-ranges.json']);
    expect(await readFile(join(ctx.stagingDir, 't.img.zst'), 'utf8')).toBe('zst-bytes');
    const manifest = await readManifest(join(ctx.stagingDir, 't.manifest.json'));
    expect(manifest.files).toMatchObject({ 't.img': { bytes: 5 }, 't.img.zst': { bytes: 9 }, 't.img.sha256': { bytes: 12 } });
    expect(await readFile(join(ctx.stagingDir, 't.img.bmap'), 'utf8')).toContain(`<Range chksum="${'c'.repeat(64)}"> 0 </Range>`);
  });
});

describe('90-publish', () => {
  it('renames every staged output into the output directory, the manifest last', async () => {
    const { engine } = engineWith();
    const ctx = await context(engine);
    const files = ['t.img', 't.img.zst', 't.img.sha256', 't.img.bmap', 't.rpi-imager.json', 't.timings.json', 't.manifest.json'];
    for (const file of files) await writeFile(join(ctx.stagingDir, file), file);
    await publish.verify!(ctx);
    await publish.run(ctx);
    expect(ctx.outputs).toEqual(files.map((f) => join(ctx.options.outDir, f)));
    expect(await readdir(ctx.stagingDir)).toEqual([]);
    expect(await readFile(join(ctx.options.outDir, 't.img'), 'utf8')).toBe('t.img');
  });

  it('refuses, before anything runs, an output path taken by a directory', async () => {
    const { engine } = engineWith();
    const ctx = await context(engine);
    await mkdir(join(ctx.options.outDir, 't.img'));
    const err = await rejection(publish.verify!(ctx));
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe(`${join(ctx.options.outDir, 't.img')} is in the way of an output (it is not a file): move it away or choose another --out`);
  });
});
