/**
 * Entry point of the bundle (/usr/lib/pibond/bond-status.js):
 *
 *   bond-status.js serve  [--config FILE] [--root DIR] [--listen ADDR] [--port N]   the systemd service
 *   bond-status.js status [--config FILE] [--root DIR]                              what /usr/bin/bond-status runs
 *
 * One handler at the top: a UsageError prints as one line (exit 2), anything else is a bug and
 * prints whole (exit 1). Options are read here, at the edge; only typed values travel further.
 */
import { parseArgs } from 'node:util';
import { defaultConfig, checkListen, checkPort, loadConfigFile, UsageError, type ServiceConfig } from './config.ts';
import { createJournal } from './journal.ts';
import { startService } from './service.ts';
import { printStatus } from './terminal.ts';

const usage = `Usage: bond-status.js <serve|status> [options]
  serve    run the HTTP status service (the systemd unit does this)
  status   print the bonds' status in the terminal (the default)
Options:
  --config FILE   JSON configuration (listen, port, bonds); e.g. /etc/pibond/bond-status.json
  --root DIR      read /proc and /sys under DIR instead of / (tests, recorded trees)
  --listen ADDR   address to listen on (serve)
  --port N        port to listen on, 0 for any free one (serve)
`;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      config: { type: 'string' },
      root: { type: 'string', default: '/' },
      listen: { type: 'string' },
      port: { type: 'string' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(usage);
    return 0;
  }
  const [command = 'status', ...extra] = positionals;
  if (extra.length > 0) throw new UsageError(`unexpected argument ${extra[0]}\n${usage}`);

  const file: ServiceConfig = values.config === undefined ? defaultConfig : loadConfigFile(values.config);
  const config: ServiceConfig = {
    ...file,
    listen: values.listen === undefined ? file.listen : checkListen(values.listen, '--listen'),
    port: values.port === undefined ? file.port : checkPort(values.port, '--port'),
  };
  const root = values.root ?? '/';

  switch (command) {
    case 'serve':
      return serve(root, config);
    case 'status':
      return printStatus({ root, expectedBonds: config.bonds, serviceUrl: localUrl(config), write: (text) => process.stdout.write(text) });
    default:
      throw new UsageError(`unknown command ${command}\n${usage}`);
  }
}

async function serve(root: string, config: ServiceConfig): Promise<number> {
  const journal = createJournal(process.stdout);
  const service = await startService({ root, listen: config.listen, port: config.port, expectedBonds: config.bonds, journal });
  // systemd stops us with SIGTERM: close the streams and sockets so the stop is quick and clean.
  await new Promise<void>((resolve) => {
    process.once('SIGTERM', resolve);
    process.once('SIGINT', resolve);
  });
  journal.info('stopping');
  await service.close();
  return 0;
}

/** Where the terminal command finds the local service: a wildcard address is reached via loopback. */
function localUrl(config: ServiceConfig): string {
  const host = config.listen === '0.0.0.0' ? '127.0.0.1' : config.listen === '::' ? '::1' : config.listen;
  return `http://${host.includes(':') ? `[${host}]` : host}:${config.port}`;
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    if (err instanceof UsageError || (err as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(`bond-status: ${(err as Error).message}\n`);
      process.exitCode = 2;
    } else if ((err as { code?: string }).code === 'EADDRINUSE' || (err as { code?: string }).code === 'EADDRNOTAVAIL') {
      process.stderr.write(`<3>bond-status: cannot listen: ${(err as Error).message}\n`);
      process.exitCode = 1;
    } else {
      process.stderr.write(`<3>bond-status: bug: ${(err as Error).stack ?? String(err)}\n`);
      process.exitCode = 1;
    }
  },
);
