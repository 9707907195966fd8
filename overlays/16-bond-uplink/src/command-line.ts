/**
 * What a test boot may say on the kernel command line (pibond boot puts it there; the image never
 * does): `pibond.uplink.targets=A,B` points the probes at the test bed's internet instead of the
 * definition's targets, so no test boot asks a real address.
 */
import { isIPv4 } from 'node:net';

/** `pibond.uplink.targets=192.0.2.1,192.0.2.2` on the kernel command line; null when absent or not IPv4 addresses. */
export function targetsFromCommandLine(cmdline: string): string[] | null {
  const value = /(?:^|\s)pibond\.uplink\.targets=(\S+)/.exec(cmdline)?.[1];
  if (value === undefined) return null;
  const targets = value.split(',').filter((t) => t !== '');
  return targets.length > 0 && targets.every((t) => isIPv4(t)) ? targets : null;
}

