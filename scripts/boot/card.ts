/**
 * A test boot's card: the per-card settings `pibond boot` was given (the same options as `pibond
 * flash`), and for an interactive boot an SSH key made for that boot alone. They are written into
 * the boot's copy-on-write overlay, at the image's card slot, never into the image file; the image's
 * pibond-card.service applies them at first boot, as on a flashed card.
 */
import { isIP } from 'node:net';
// ssh2 is CommonJS: Node's ESM loader sees only its default export.
import ssh2 from 'ssh2';
import { type CardSettings, cardPatch, mergeSettings } from '../lib/card.ts';
import { UserError } from '../lib/errors.ts';
import { readManifest } from '../lib/manifest.ts';
import type { BootImage } from './image.ts';
import type { Routers } from './session.ts';

/** QEMU's user-mode network: the guest's subnet, its gateway and its name server. */
export const userNetwork = { prefix: '10.0.2.', gateway: '10.0.2.2', dns: '10.0.2.3', dhcpAddress: '10.0.2.15' } as const;

/** An SSH key pair for one boot, in OpenSSH's formats. */
export interface AccessKey {
  publicKey: string;
  privateKey: string;
}

export interface BootCard {
  settings: CardSettings;
  /** The bytes for the card slot, and where they go in the disk. */
  patch: { offset: number; data: Buffer };
  /** The guest's static address, when the card sets one: the user-mode forwards go there. */
  guestAddress?: string;
  accessKey?: AccessKey;
}

/** A fresh Ed25519 key pair, made in this process (no ssh-keygen on the host needed). */
export function makeAccessKey(comment: string): AccessKey {
  const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment });
  return { publicKey: pair.public, privateKey: pair.private };
}

/** The boot's card, or undefined when there are no settings and no key to give it. */
export async function bootCard(image: BootImage, settings: CardSettings | undefined, opts: { accessKey: boolean; routers: Routers }): Promise<BootCard | undefined> {
  const accessKey = opts.accessKey ? makeAccessKey(`pibond boot of ${image.name}, for this boot only`) : undefined;
  const withKey = accessKey ? mergeSettings(settings ?? {}, { admin: { authorized_keys: [accessKey.publicKey.trim()] } }) : settings;
  if (withKey === undefined) return undefined;
  const manifest = await readManifest(image.manifestPath);
  const guestAddress = staticAddressFor(withKey, opts.routers);
  return { settings: withKey, patch: cardPatch(manifest, withKey, image.path, 'written by pibond boot, for this boot only'), guestAddress, accessKey };
}

/**
 * A static address must be one the boot's routers reach: on QEMU's user-mode network, an address in
 * 10.0.2.0/24 (the forwards are pointed at it). The test bed's routers forward to the address they
 * lease, so there a card keeps DHCP.
 */
function staticAddressFor(settings: CardSettings, routers: Routers): string | undefined {
  const addressing = settings.network?.addressing;
  if (addressing?.method !== 'static') return undefined;
  const ip = addressing.address.split('/')[0] ?? '';
  if (routers.kind === 'testbed') {
    throw new UserError('--address with --routers testbed:LAYOUT: the test bed\'s routers forward to the address they lease; leave --address out (or give dhcp)');
  }
  const prefix = Number(addressing.address.split('/')[1]);
  if (isIP(ip) !== 4 || !ip.startsWith(userNetwork.prefix) || prefix < 24 || ip === userNetwork.gateway || ip === userNetwork.dns) {
    throw new UserError(
      `--address ${addressing.address}: QEMU's user-mode network is 10.0.2.0/24 (gateway ${userNetwork.gateway}, name server ${userNetwork.dns}); ` +
        `give an address there, like 10.0.2.50/24 with --gateway ${userNetwork.gateway}`,
    );
  }
  return ip;
}
