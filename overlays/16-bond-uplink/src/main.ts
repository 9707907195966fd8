/**
 * Entry point of the bundle (/usr/lib/pibond/bond-uplink.js), run by pibond-uplink.service:
 *
 *   bond-uplink.js --config /etc/pibond/bond-uplink.json
 *
 * Wires the service's loop (service.ts) to the machine: a probe helper per slave (Perl, packet
 * sockets), the bond read from sysfs, /proc/net/route and os.networkInterfaces (no process per
 * round), `ip link set BOND type bond primary SLAVE` to change the preferred slave, and the report
 * in /run/pibond-uplink/uplinks.json. A test boot may point the probes elsewhere with
 * `pibond.uplink.targets=A,B` on the kernel command line (pibond boot does: the test bed's
 * internet), which replaces the definition's targets.
 */
import { execFile } from 'node:child_process';
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { parseArgs, promisify } from 'node:util';
import { targetsFromCommandLine } from './command-line.ts';
import { readText, runMain } from '../../00-base/src/device.ts';
import { checkConfig } from './config.ts';
import { ProbeHelper } from './probe-helper.ts';
import { type UplinkEffects, UplinkService } from './service.ts';
import { type BondView, defaultGatewayFrom } from './sources.ts';

const run = promisify(execFile);
const priorities = { warning: 4, notice: 5, info: 6 } as const;
const reportFileName = 'uplinks.json';

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string', default: '/etc/pibond/bond-uplink.json' } } });
  const path = values.config ?? '';
  const config = checkConfig(JSON.parse(readFileSync(path, 'utf8')) as unknown, path);
  const log: UplinkEffects['log'] = (priority, message) => void process.stdout.write(`<${priorities[priority]}>${message}\n`);
  const override = targetsFromCommandLine(readText('/proc/cmdline') ?? '');
  if (override !== null) {
    log('notice', `probing ${override.join(', ')} (pibond.uplink.targets on the kernel command line), not ${config.targets.join(', ')}`);
    config.targets = override;
    config.reliability = Math.min(config.reliability, override.length);
  }

  const helpers = new Map<string, ProbeHelper>();
  const helperFor = async (slave: string): Promise<ProbeHelper> => {
    let helper = helpers.get(slave);
    if (helper === undefined || !helper.alive) {
      helper = new ProbeHelper(slave);
      helpers.set(slave, helper);
      await helper.ready;
    }
    return helper;
  };

  const bondDir = `/sys/class/net/${config.bond}/bonding`;
  const effects: UplinkEffects = {
    now: () => performance.now(),
    wallClock: () => new Date(),
    view: () => bondView(config.bond),
    carrier: (slave) => readText(`/sys/class/net/${slave}/carrier`) === '1',
    mac: (slave) => readText(`/sys/class/net/${slave}/address`),
    probe: async (slave, request) => (await helperFor(slave)).probe(request),
    preferred: () => readText(`${bondDir}/primary`),
    setPreferred: async (slave) => {
      await run('ip', ['link', 'set', 'dev', config.bond, 'type', 'bond', 'primary', slave]);
    },
    writeReport: (file) => {
      const target = join(config.runtime_directory, reportFileName);
      writeFileSync(`${target}.new`, `${JSON.stringify(file)}\n`, { mode: 0o644 });
      renameSync(`${target}.new`, target);
    },
    sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    log,
  };
  const service = new UplinkService(config, effects);
  process.once('SIGTERM', () => {
    service.stop();
    for (const helper of helpers.values()) helper.stop();
    process.exit(0);
  });
  await service.run();
}

function bondView(bond: string): BondView {
  const address = (networkInterfaces()[bond] ?? []).find((a) => a.family === 'IPv4' && !a.internal);
  const prefix = address?.cidr ? Number(address.cidr.split('/')[1]) : null;
  return {
    active: readText(`/sys/class/net/${bond}/bonding/active_slave`),
    address: address && prefix !== null ? { address: address.address, prefix } : null,
    gateway: defaultGatewayFrom(readText('/proc/net/route') ?? '', bond),
  };
}

runMain('bond-uplink', main);
