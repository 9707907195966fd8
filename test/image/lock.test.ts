/** A locked build's pieces in the image pipeline: snapshot mirrors, the check's report, the cache key, the step's verify. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { BuildContext } from '../../scripts/image/context.ts';
import { mirrorArgument, packageList } from '../../scripts/image/packages.ts';
import { parseLockCheck, rootfs, rootfsCacheKey } from '../../scripts/image/steps/30-rootfs.ts';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { UserError } from '../../scripts/lib/errors.ts';
import { type PackageLock, renderLock } from '../../scripts/lib/lock.ts';

const def = (extra = '') => parseDefinition(`name: t\n${extra}`, 'images/t.yaml');

const lock: PackageLock = {
  lockVersion: 1,
  created: '2025-03-01T12:34:56Z',
  suite: 'bookworm',
  architecture: 'arm64',
  mirror: 'http://deb.debian.org/debian',
  packages: [{ name: 'bash', version: '5.2.15-2+b7', architecture: 'arm64' }],
};

describe('a snapshot mirror', () => {
  it('is accepted pinned to a time, and goes to mmdebstrap as a sources line that allows expired Release files', () => {
    const snapshot = def('mirror: http://snapshot.debian.org/archive/debian/20250301T123456Z/\n');
    expect(mirrorArgument(snapshot)).toBe('deb [check-valid-until=no] http://snapshot.debian.org/archive/debian/20250301T123456Z/ bookworm main non-free-firmware');
  });

  it('leaves any other mirror a plain URL', () => {
    expect(mirrorArgument(def())).toBe('http://deb.debian.org/debian');
    expect(mirrorArgument(def('mirror: https://ftp.de.debian.org/debian\n'))).toBe('https://ftp.de.debian.org/debian');
  });

  it.each(['http://snapshot.debian.org/archive/debian/', 'http://snapshot.debian.org/archive/debian/2025-03-01/', 'https://snapshot.debian.org/debian/20250301T123456Z/', 'http://snapshot.debian.org/archive/debian/20250301/'])(
    'is refused without a time, naming the file, the field and the form: %s',
    (mirror) => {
      expect(() => def(`mirror: ${mirror}\n`)).toThrow(
        `images/t.yaml: mirror: must be a snapshot pinned to a time, like http://snapshot.debian.org/archive/debian/20250301T000000Z/ (archive/<archive>/<YYYYMMDDTHHMMSSZ>/) (got "${mirror}")`,
      );
    },
  );
});

describe('parseLockCheck', () => {
  it('reads bootstrap-rootfs --check-locked lines, "-" meaning none', () => {
    expect(parseLockCheck(['sudo 1.9 -', 'bash 9.9-1 5.2.15-2+b7', 'garbage'])).toEqual([
      { name: 'bash', locked: '9.9-1', installed: '5.2.15-2+b7' },
      { name: 'sudo', locked: '1.9', installed: undefined },
    ]);
  });
});

describe('rootfsCacheKey of a locked build', () => {
  it('changes with the locked versions and SOURCE_DATE_EPOCH, not with when the lock was made', async () => {
    const key = await rootfsCacheKey(def(), { sourceDateEpoch: 1704067200, lock });
    expect(await rootfsCacheKey(def(), { sourceDateEpoch: 1704067200 })).not.toBe(key);
    expect(await rootfsCacheKey(def(), { sourceDateEpoch: 1704067201, lock })).not.toBe(key);
    expect(await rootfsCacheKey(def(), { sourceDateEpoch: 1704067200, lock: { ...lock, packages: [{ name: 'bash', version: '9.9-1', architecture: 'arm64' }] } })).not.toBe(key);
    expect(await rootfsCacheKey(def(), { sourceDateEpoch: 1704067200, lock: { ...lock, created: '2030-01-01T00:00:00Z' } })).toBe(key);
  });
});

describe('the rootfs step verify with a lock', () => {
  async function verifyWith(file: string, text: string, extra = ''): Promise<BuildContext> {
    await writeFile(file, text);
    const ctx = { def: def(extra), options: { lock: { file, from: 'option' } } } as unknown as BuildContext;
    await rootfs.verify?.(ctx);
    return ctx;
  }
  const everything = (names: string[]): PackageLock => ({ ...lock, packages: names.map((name) => ({ name, version: '1.0-1', architecture: 'arm64' })) });

  it('reads the lock before anything runs, and refuses one for another architecture or without a definition package', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pibond-lock-'));
    try {
      const file = join(dir, 't.lock.json');
      const defaults = packageList(def());
      const ctx = await verifyWith(file, renderLock(everything(defaults)));
      expect(ctx.lock?.lock.packages).toHaveLength(defaults.length);
      await expect(verifyWith(file, renderLock({ ...everything(defaults), architecture: 'armhf' }))).rejects.toThrow(`${file}: architecture: the lock is for armhf`);
      await expect(verifyWith(file, renderLock(everything(defaults)), 'packages: [curl]\n')).rejects.toThrow(UserError);
      await expect(verifyWith(file, renderLock(everything(defaults)), 'packages: [curl]\n')).rejects.toThrow('the definition installs curl, which the lock does not hold');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
