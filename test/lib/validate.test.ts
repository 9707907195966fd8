import { execFile } from 'node:child_process';
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';

const root = join(import.meta.dirname, '../..');

/** Runs the real CLI, the way a user does, from the repository root. */
async function pibond(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await promisify(execFile)('node', ['scripts/pibond.mjs', ...args], { cwd: root });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const failed = err as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

describe('pibond validate', () => {
  it('accepts every shipped definition in images/', async () => {
    const images = (await readdir(join(root, 'images'))).sort().map((name) => `images/${name}`);
    expect(images.length).toBeGreaterThan(0);
    const result = await pibond('validate', ...images);
    expect(result).toEqual({ code: 0, stdout: images.map((file) => `${file}: ok\n`).join(''), stderr: '' });
  });

  it('checks every file, prints every problem and exits 1 when any file is bad', async () => {
    const good = 'test/fixtures/definitions/static.yaml';
    const port = 'test/fixtures/definitions/broken-port.yaml';
    const slave = 'test/fixtures/definitions/broken-one-slave.yaml';
    const result = await pibond('validate', port, good, slave, 'test/fixtures/definitions/no-such.yaml');
    expect(result.code).toBe(1);
    expect(result.stdout.split('\n')).toEqual([
      `${port}: status_service.port: must be a port from 1 to 65535 (got 80800)`,
      `${good}: ok`,
      `${slave}: bond.slaves: active-backup needs at least two slaves: a primary and a backup (got [{"name":"eth0"}])`,
      "test/fixtures/definitions/no-such.yaml: cannot read the definition: ENOENT: no such file or directory, open 'test/fixtures/definitions/no-such.yaml'",
      '',
    ]);
  });

  it('reports an alias bomb as one line naming the file, not as a crash', async () => {
    const bomb = 'test/fixtures/definitions/broken-alias-bomb.yaml';
    const result = await pibond('validate', bomb);
    expect(result).toEqual({
      code: 1,
      stdout:
        `${bomb}: line 12, column 16: too many YAML aliases: *lol7 alone stands for 48427561 values, past yaml's limit of 100 alias uses; ` +
        'definitions do not need aliases this large (got "  lol8: &lol8 [*lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7]")\n',
      stderr: '',
    });
  });

  it('reports files that are no YAML definition at all one line each, and goes on to the next', async () => {
    const fixtures = 'test/fixtures/definitions';
    const result = await pibond('validate', `${fixtures}/broken-alias-loop.yaml`, `${fixtures}/broken-latin1.yaml`, `${fixtures}/broken-tag.yaml`, fixtures, 'images/default.yaml');
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('');
    expect(result.stdout.split('\n')).toEqual([
      `${fixtures}/broken-alias-loop.yaml: line 4, column 12: the alias *bond is inside its own anchor &bond, so its value would never end (got "  slaves: [*bond]")`,
      `${fixtures}/broken-latin1.yaml: line 2, column 10: not UTF-8 text; save the definition as UTF-8 (was it written as Latin-1 or UTF-16?) (got "name: caf\uFFFD")`,
      `${fixtures}/broken-tag.yaml: line 2, column 16: the YAML tag !!binary is not allowed; a definition holds plain text, numbers, true or false, lists and mappings (got "name: !!binary cGlib25k")`,
      `${fixtures}: is a directory; name a definition file, like images/default.yaml`,
      'images/default.yaml: ok',
      '',
    ]);
  });

  it('exits 2 with the usage when no file is named', async () => {
    const result = await pibond('validate');
    expect(result.code).toBe(2);
    expect(result.stdout).toBe('');
    expect(result.stderr).toContain('Usage: pibond validate FILE...');
  });
});
