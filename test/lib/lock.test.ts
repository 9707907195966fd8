/** The package lock: reading (lock files and manifests), rendering, the apt pins, the mismatch report, snapshot mirrors. */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseDefinition } from '../../scripts/lib/definition.ts';
import { UserError } from '../../scripts/lib/errors.ts';
import {
  type PackageLock,
  aptPreferences,
  checkLockCovers,
  checkLockFits,
  defaultLockFile,
  lockHash,
  lockMismatchError,
  lockMismatches,
  parseLock,
  readLock,
  renderLock,
  snapshotMirror,
} from '../../scripts/lib/lock.ts';

const lock: PackageLock = {
  lockVersion: 1,
  created: '2025-03-01T12:34:56Z',
  suite: 'bookworm',
  architecture: 'arm64',
  mirror: 'http://deb.debian.org/debian',
  packages: [
    { name: 'sudo', version: '1.9.13p3-1+deb12u1', architecture: 'arm64' },
    { name: 'bash', version: '5.2.15-2+b7', architecture: 'arm64' },
    { name: 'adduser', version: '3.134', architecture: 'all' },
  ],
};

const manifest = {
  name: 'pibond-bookworm-arm64',
  definition: { file: 'images/default.yaml', sha256: 'x', value: {} },
  base: { distribution: 'debian', suite: 'bookworm', architecture: 'arm64' },
  mirror: 'http://deb.debian.org/debian',
  packages: lock.packages,
  steps: [],
};

/** The message of what `run` throws, which must be a UserError (printed without a stack). */
function userMessage(run: () => unknown): string {
  try {
    run();
  } catch (err) {
    expect(err).toBeInstanceOf(UserError);
    return (err as Error).message;
  }
  throw new Error('expected a UserError');
}

describe('parseLock', () => {
  it('reads a lock file as written', () => {
    expect(parseLock(renderLock(lock), 'images/x.lock.json', '2030-01-01T00:00:00Z').lock).toEqual({ ...lock, packages: [...lock.packages].sort((a, b) => a.name.localeCompare(b.name)) });
  });

  it('turns a build manifest into a lock dated by the file, and says which definition it was built from', () => {
    const { lock: fromManifest, definitionFile } = parseLock(JSON.stringify(manifest), 'out/x.manifest.json', '2025-04-01T00:00:00Z');
    expect(definitionFile).toBe('images/default.yaml');
    expect(fromManifest).toMatchObject({ lockVersion: 1, created: '2025-04-01T00:00:00Z', suite: 'bookworm', architecture: 'arm64', mirror: 'http://deb.debian.org/debian' });
    expect(fromManifest.packages.map((p) => p.name)).toEqual(['adduser', 'bash', 'sudo']);
  });

  it('names the file, the field, the bad value and what is allowed', () => {
    const bad = { ...lock, packages: [{ name: 'bash', version: 'latest!', architecture: 'arm64' }, { name: 'Bash', version: '1', architecture: 'arm64', extra: 1 }] };
    const message = userMessage(() => parseLock(JSON.stringify(bad), 'images/x.lock.json', lock.created));
    expect(message).toContain('images/x.lock.json: packages[0].version: must be a Debian version like 5.2.15-2+b2 or 1:9.2p1-2 (got "latest!")');
    expect(message).toContain('images/x.lock.json: packages[1].name: must be a Debian package name like bash (got "Bash")');
    expect(message).toContain('packages[1].extra: unknown key; allowed keys: name, version, architecture');
  });

  it('refuses another lock version, a bad time and missing fields', () => {
    const message = userMessage(() => parseLock(JSON.stringify({ lockVersion: 2, created: 'yesterday', packages: [] }), 'x.lock.json', lock.created));
    expect(message).toContain('x.lock.json: lockVersion: must be 1');
    expect(message).toContain('x.lock.json: created: must be a UTC time like 2025-03-01T12:00:00Z (got "yesterday")');
    expect(message).toContain('x.lock.json: suite: must be a Debian suite like bookworm (missing)');
  });

  it('refuses a manifest without packages, and a file that is not JSON', () => {
    const { packages: _, ...withoutPackages } = manifest;
    expect(userMessage(() => parseLock(JSON.stringify(withoutPackages), 'out/x.manifest.json', lock.created))).toContain('out/x.manifest.json: packages: must be a list of packages');
    expect(userMessage(() => parseLock('{"lockVersion": 1,', 'x.lock.json', lock.created))).toMatch(/^x\.lock\.json: not JSON .*a lock file \(pibond lock\) or a build manifest/);
  });
});

describe('readLock', () => {
  it('hashes the bytes, and names a file it cannot read', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'pibond-lock-'));
    try {
      const file = join(dir, 'x.lock.json');
      await writeFile(file, renderLock(lock));
      const loaded = await readLock(file);
      expect(loaded.sha256).toMatch(/^[0-9a-f]{64}$/);
      expect(loaded.lock.created).toBe(lock.created);
      await expect(readLock(join(dir, 'missing.lock.json'))).rejects.toThrow(/^cannot read the lock .*missing\.lock\.json/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});

describe('renderLock', () => {
  it('is sorted, one package a line, and the same for the same set in any order', () => {
    const text = renderLock(lock);
    expect(text).toBe(renderLock({ ...lock, packages: [...lock.packages].reverse() }));
    expect(text.split('\n').filter((line) => line.includes('"name"'))).toEqual([
      '    {"name":"adduser","version":"3.134","architecture":"all"},',
      '    {"name":"bash","version":"5.2.15-2+b7","architecture":"arm64"},',
      '    {"name":"sudo","version":"1.9.13p3-1+deb12u1","architecture":"arm64"}',
    ]);
    expect(JSON.parse(text)).toMatchObject({ lockVersion: 1, created: lock.created });
  });
});

describe('the lock and the definition', () => {
  const def = (extra = '') => parseDefinition(`name: t\n${extra}`, 't.yaml');

  it('lives beside the definition', () => {
    expect(defaultLockFile('images/default.yaml')).toBe('images/default.lock.json');
    expect(defaultLockFile('/srv/kitchen.yml')).toBe('/srv/kitchen.lock.json');
  });

  it('must be of the definition suite and architecture', () => {
    checkLockFits({ file: 'x.lock.json', lock }, def());
    expect(userMessage(() => checkLockFits({ file: 'x.lock.json', lock: { ...lock, suite: 'trixie' } }, def()))).toMatch(
      /^x\.lock\.json: suite: the lock is for trixie, the definition's base\.suite is bookworm/,
    );
    expect(userMessage(() => checkLockFits({ file: 'x.lock.json', lock: { ...lock, architecture: 'armhf' } }, def()))).toContain('x.lock.json: architecture: the lock is for armhf');
  });

  it('must hold every package the definition installs', () => {
    checkLockCovers({ file: 'x.lock.json', lock }, ['bash', 'sudo'], { name: 't' });
    expect(userMessage(() => checkLockCovers({ file: 'x.lock.json', lock }, ['bash', 'curl', 'vim'], { name: 't' }))).toContain(
      'x.lock.json: packages: the definition installs curl, vim, which the lock does not hold; build once with --no-lock, then pibond lock out/t.manifest.json',
    );
  });

  it('has a hash of its package list only', () => {
    expect(lockHash({ ...lock, created: '2030-01-01T00:00:00Z', mirror: 'http://elsewhere/debian' })).toBe(lockHash(lock));
    expect(lockHash({ ...lock, packages: [{ name: 'bash', version: '5.2.15-2+b8', architecture: 'arm64' }] })).not.toBe(lockHash(lock));
  });
});

describe('aptPreferences', () => {
  it('pins every package to its version above any other', () => {
    expect(aptPreferences(lock)).toBe(
      'Package: adduser\nPin: version 3.134\nPin-Priority: 1001\n\n' +
        'Package: bash\nPin: version 5.2.15-2+b7\nPin-Priority: 1001\n\n' +
        'Package: sudo\nPin: version 1.9.13p3-1+deb12u1\nPin-Priority: 1001\n',
    );
  });
});

describe('lockMismatches and the report', () => {
  it('finds other versions, missing packages and packages outside the lock', () => {
    const installed = new Map([
      ['adduser', '3.134'],
      ['bash', '5.2.15-2+b8'],
      ['curl', '7.88.1-10'],
    ]);
    expect(lockMismatches(lock, installed)).toEqual([
      { name: 'bash', locked: '5.2.15-2+b7', installed: '5.2.15-2+b8' },
      { name: 'curl', installed: '7.88.1-10' },
      { name: 'sudo', locked: '1.9.13p3-1+deb12u1', installed: undefined },
    ]);
    expect(lockMismatches(lock, new Map(lock.packages.map((p) => [p.name, p.version])))).toEqual([]);
  });

  it('lists every package and points at the snapshot of the day the lock was made', () => {
    const err = lockMismatchError(
      { file: 'images/x.lock.json', lock },
      [
        { name: 'bash', locked: '9.9-1', installed: '5.2.15-2+b7' },
        { name: 'sudo', locked: '1.9.13p3-1+deb12u1' },
      ],
      'installed',
    );
    expect(err).toBeInstanceOf(UserError);
    expect(err.message).toBe(
      'the mirror did not install the package set locked in images/x.lock.json:\n' +
        '  bash: locked 9.9-1, installed 5.2.15-2+b7\n' +
        '  sudo: locked 1.9.13p3-1+deb12u1, not installed\n' +
        'The mirror no longer serves these versions. Build from the Debian snapshot of the day the lock was made (2025-03-01T12:34:56Z): set the definition\'s\n' +
        '  mirror: http://snapshot.debian.org/archive/debian/20250301T123456Z/',
    );
  });

  it('says what the mirror has when found before installing, and asks for a new lock when the set changed', () => {
    const message = lockMismatchError({ file: 'x.lock.json', lock }, [{ name: 'bash', locked: '9.9-1', installed: '5.2.15-2+b7' }, { name: 'vim', locked: '2:9.0' }, { name: 'curl', installed: '7.88.1-10' }], 'mirror').message;
    expect(message).toContain('the mirror cannot give the package set locked in x.lock.json:');
    expect(message).toContain('  bash: locked 9.9-1, the mirror has 5.2.15-2+b7\n');
    expect(message).toContain('  vim: locked 2:9.0, not in the mirror\n');
    expect(message).toContain('  curl: not locked, installed 7.88.1-10\n');
    expect(message).toContain('build with --no-lock and make a new lock (pibond lock)');
  });

  it('makes snapshot URLs from the lock time', () => {
    expect(snapshotMirror('2025-03-01T12:34:56Z')).toBe('http://snapshot.debian.org/archive/debian/20250301T123456Z/');
  });
});
