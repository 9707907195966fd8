/**
 * A backup router's lease taken ahead of the first switch to it (pibond-dhcp-prelease, ifupdown):
 * dhclient's lease file, read by the healer as the lease it would have learnt at a switch.
 *
 * The format (ISC dhclient's lease database, newest lease last; times are UTC):
 *   default-duid "\000\001...";
 *   lease {
 *     interface "eth1";
 *     fixed-address 192.168.8.100;
 *     option subnet-mask 255.255.255.0;
 *     option routers 192.168.8.1;
 *     option broadcast-address 192.168.8.255;
 *     expire 6 2026/12/05 14:24:47;
 *   }
 */
import { isIP } from 'node:net';

export interface Prelease {
  address: string;
  prefix: number;
  broadcast: string | null;
  /** The first of the lease's routers. */
  gateway: string;
  /** When the lease expires, ms since the epoch. */
  expires: number;
}

/** The newest complete lease in `text`; null when there is none (no lease was given). */
export function parseLeaseFile(text: string): Prelease | null {
  const blocks = [...text.matchAll(/lease\s*\{([^}]*)\}/g)].map((m) => m[1] ?? '');
  for (const block of blocks.reverse()) {
    const field = (pattern: RegExp) => pattern.exec(block)?.[1];
    const address = field(/\bfixed-address\s+([\d.]+);/);
    const mask = field(/\boption\s+subnet-mask\s+([\d.]+);/);
    const gateway = field(/\boption\s+routers\s+([\d.]+)/);
    const expire = /\bexpire\s+\d\s+(\d{4})\/(\d\d)\/(\d\d)\s+(\d\d):(\d\d):(\d\d);/.exec(block);
    if (address === undefined || mask === undefined || gateway === undefined || expire === null) continue;
    if (isIP(address) !== 4 || isIP(gateway) !== 4) continue;
    const prefix = prefixOf(mask);
    if (prefix === null) continue;
    const [year, month, day, hour, minute, second] = expire.slice(1).map(Number) as [number, number, number, number, number, number];
    const broadcast = field(/\boption\s+broadcast-address\s+([\d.]+);/) ?? null;
    return { address, prefix, broadcast, gateway, expires: Date.UTC(year, month - 1, day, hour, minute, second) };
  }
  return null;
}

/** 255.255.255.0 -> 24; null for a mask that is not one. */
function prefixOf(mask: string): number | null {
  const bits = mask.split('.').map((part) => Number(part).toString(2).padStart(8, '0')).join('');
  const ones = bits.includes('0') ? bits.indexOf('0') : bits.length;
  return bits === '1'.repeat(ones).padEnd(32, '0') ? ones : null;
}
