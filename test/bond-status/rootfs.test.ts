/**
 * The static files of the overlay agree with what render() generates and with the demands
 * on the unit: a path or flag that drifts would only show on a booted device.
 */
import { lstatSync, readFileSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { bundlePath, configPath, privilegedPortDropIn, render } from '../../overlays/20-bond-status/render.ts';
import { definitionSchema } from '../../scripts/lib/definition.ts';

const rootfs = join(import.meta.dirname, '../../overlays/20-bond-status/rootfs');
const unit = readFileSync(join(rootfs, 'usr/lib/systemd/system/bond-status.service'), 'utf8');
const directives = unit.split('\n').filter((line) => /^[A-Za-z]+=/.test(line));

describe('bond-status.service', () => {
  it('starts the rendered bundle with the rendered configuration', () => {
    expect(directives).toContain(`ExecStart=/usr/lib/pibond/node /${bundlePath} serve --config /${configPath}`);
  });

  it.each([
    'Wants=network-online.target',
    'After=network-online.target',
    'Restart=on-failure',
    'DynamicUser=yes',
    'CapabilityBoundingSet=',
    'AmbientCapabilities=',
    'NoNewPrivileges=yes',
    'ProtectSystem=strict',
    'ProtectHome=yes',
    'PrivateTmp=yes',
    'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX AF_NETLINK',
    'SystemCallFilter=@system-service',
    'WantedBy=multi-user.target',
  ])('has %s', (directive) => {
    expect(directives).toContain(directive);
  });

  it('has a memory ceiling and never hides /proc/net from itself', () => {
    expect(directives.some((d) => /^MemoryMax=\d+M$/.test(d))).toBe(true);
    expect(directives).not.toContain('ProcSubset=pid');
  });

  it('is enabled by a link into multi-user.target.wants', () => {
    const link = join(rootfs, 'etc/systemd/system/multi-user.target.wants/bond-status.service');
    expect(lstatSync(link).isSymbolicLink()).toBe(true);
    expect(readlinkSync(link)).toBe('/usr/lib/systemd/system/bond-status.service');
  });
});

describe('/usr/bin/bond-status', () => {
  it('is executable and runs the status command of the same bundle and configuration', () => {
    const file = join(rootfs, 'usr/bin/bond-status');
    expect(lstatSync(file).mode & 0o111).toBe(0o111);
    const script = readFileSync(file, 'utf8');
    expect(script.startsWith('#!/bin/sh\n')).toBe(true);
    expect(script).toContain(`exec /usr/lib/pibond/node /${bundlePath} status --config /${configPath} "$@"`);
  });
});

describe('render() and privileged ports', () => {
  it('grants no capability for the default port', async () => {
    const files = await render(definitionSchema.parse({ name: 'x', base: {} }));
    expect(files.map((f) => f.path)).not.toContain(privilegedPortDropIn);
  });

  it('grants CAP_NET_BIND_SERVICE, and only that, for a port below 1024', async () => {
    const files = await render(definitionSchema.parse({ name: 'x', base: {}, status_service: { port: 80 } }));
    const dropIn = files.find((f) => f.path === privilegedPortDropIn);
    expect(String(dropIn?.content)).toContain('[Service]\nCapabilityBoundingSet=CAP_NET_BIND_SERVICE\nAmbientCapabilities=CAP_NET_BIND_SERVICE\n');
  });
});
