/** The root filesystem's cache key and the plain-words explanation of mmdebstrap failures. */
import { describe, expect, it } from 'vitest';
import { explainBootstrapFailure, rootfsCacheKey } from '../../scripts/image/steps/30-rootfs.ts';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { CommandFailed } from '../../scripts/lib/docker.ts';
import { UserError } from '../../scripts/lib/errors.ts';

const def = (extra = '') => parseDefinition(`name: t\n${extra}`, 't.yaml');

describe('rootfsCacheKey', () => {
  it('is stable for the same inputs', async () => {
    expect(await rootfsCacheKey(def())).toBe(await rootfsCacheKey(def()));
  });

  it('ignores fields that do not reach mmdebstrap (host name, bond, status port)', async () => {
    const changed = def('hostname: other\nstatus_service: {port: 9000}\nbond: {miimon: 200}\n');
    expect(await rootfsCacheKey(changed)).toBe(await rootfsCacheKey(def()));
  });

  it('changes with the package list, the mirror and a locale that needs the locales package', async () => {
    const key = await rootfsCacheKey(def());
    expect(await rootfsCacheKey(def('packages: [curl]\n'))).not.toBe(key);
    expect(await rootfsCacheKey(def('mirror: http://ftp.de.debian.org/debian\n'))).not.toBe(key);
    expect(await rootfsCacheKey(def('locale: de_DE.UTF-8\n'))).not.toBe(key);
  });
});

describe('explainBootstrapFailure', () => {
  const failed = (...tail: string[]) => new CommandFailed(['bootstrap-rootfs'], 1, tail);

  it('names a package that is not in the mirror and the field to fix', () => {
    const err = explainBootstrapFailure(failed('E: Unable to locate package curlx'), { def: def() });
    expect(err).toBeInstanceOf(UserError);
    expect((err as Error).message).toBe(
      'package "curlx" is not in http://deb.debian.org/debian for bookworm/arm64 (components main, non-free-firmware). Check the spelling in the definition\'s "packages" field.',
    );
  });

  it('names an unreachable mirror', () => {
    const err = explainBootstrapFailure(failed('W: Failed to fetch http://nowhere.invalid/debian/dists/bookworm/InRelease  Could not resolve \'nowhere.invalid\''), {
      def: def('mirror: http://nowhere.invalid/debian\n'),
    });
    expect((err as Error).message).toMatch(/^the Debian mirror http:\/\/nowhere\.invalid\/debian could not be reached/);
  });

  it('says the disk is full', () => {
    const err = explainBootstrapFailure(failed('dpkg: error: No space left on device'), { def: def() });
    expect((err as Error).message).toMatch(/^the disk is full/);
  });

  it('passes anything else through untouched, as a bug', () => {
    const original = failed('something odd');
    expect(explainBootstrapFailure(original, { def: def() })).toBe(original);
    const other = new TypeError('x');
    expect(explainBootstrapFailure(other, { def: def() })).toBe(other);
  });
});
