/**
 * The service's configuration: /etc/pibond/bond-status.json (written at build time from the image
 * definition by render.ts), then command-line options over it. Checked here, once, by hand: the
 * bundle must run on the device's bare nodejs without npm packages, and five keys need no schema library.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export class UsageError extends Error {
  override name = 'UsageError';
}

export interface ServiceConfig {
  /** Address the HTTP API listens on. */
  listen: string;
  /** 0 picks a free port (tests). */
  port: number;
  /** Bonds the image was built with; reported as missing when absent. */
  bonds: string[];
}

export const defaultConfig: ServiceConfig = { listen: '0.0.0.0', port: 8080, bonds: [] };

/** The config file's shape, as render.ts writes it. */
export interface ConfigFile {
  listen?: string;
  port?: number;
  bonds?: string[];
}

export function loadConfigFile(path: string): ServiceConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new UsageError(`${path}: cannot read the configuration: ${(err as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new UsageError(`${path}: not JSON: ${(err as Error).message}`);
  }
  return checkConfig(raw, path);
}

export function checkConfig(raw: unknown, source: string): ServiceConfig {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new UsageError(`${source}: must be a JSON object`);
  const file = raw as Record<string, unknown>;
  const unknown = Object.keys(file).filter((key) => !['listen', 'port', 'bonds'].includes(key));
  if (unknown.length > 0) throw new UsageError(`${source}: unknown key${unknown.length > 1 ? 's' : ''} ${unknown.join(', ')}`);
  return {
    listen: file.listen === undefined ? defaultConfig.listen : checkListen(file.listen, source),
    port: file.port === undefined ? defaultConfig.port : checkPort(file.port, source),
    bonds: file.bonds === undefined ? defaultConfig.bonds : checkBonds(file.bonds, source),
  };
}

export function checkListen(value: unknown, source: string): string {
  if (typeof value !== 'string' || isIP(value) === 0) throw new UsageError(`${source}: listen must be an IP address, got ${JSON.stringify(value)}`);
  return value;
}

export function checkPort(value: unknown, source: string): number {
  const port = typeof value === 'string' && /^\d+$/.test(value) ? Number(value) : value;
  if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new UsageError(`${source}: port must be a number from 0 to 65535, got ${JSON.stringify(value)}`);
  }
  return port;
}

function checkBonds(value: unknown, source: string): string[] {
  if (!Array.isArray(value) || !value.every((name) => typeof name === 'string' && /^[^\s/:]{1,15}$/.test(name))) {
    throw new UsageError(`${source}: bonds must be a list of interface names, got ${JSON.stringify(value)}`);
  }
  return value as string[];
}
