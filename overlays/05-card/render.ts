/**
 * Per-card settings on the device: pibond-card.service (rootfs/) runs the bundled program at
 * first boot, before the network. It needs the image's definition, to check a card's settings
 * against it and render the files they touch: /etc/pibond/definition.json.
 * The host side (options, the reserved file's bytes) is scripts/lib/card.ts.
 */
import { bundleDeviceProgram } from '../../scripts/lib/bundle.ts';
import type { Definition } from '../../scripts/lib/definition.ts';
import type { OverlayFile } from '../../scripts/lib/overlay.ts';

export const bundlePath = 'usr/lib/pibond/pibond-card.js';
export const definitionPath = 'etc/pibond/definition.json';

export async function render(def: Definition): Promise<OverlayFile[]> {
  return [
    { path: bundlePath, content: await bundle(), mode: 0o644 },
    { path: definitionPath, content: `${JSON.stringify(def, null, 2)}\n`, mode: 0o644 },
  ];
}

/** The program, bundled for the device (scripts/lib/bundle.ts). */
export function bundle(): Promise<Buffer> {
  return bundleDeviceProgram(import.meta.dirname, 'pibond-card');
}
