/**
 * Fuzzes the validator: hundreds of malformed definitions, each of which must come back either as a
 * typed Definition or as problems naming the file, never as an exception that the CLI would print
 * as "internal error (a bug)". Seeded, so a failure is the same failure on every run.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { stringify } from 'yaml';
import { DefinitionError, definitionSchema, formatProblem, loadDefinition } from '../../scripts/lib/definition.ts';
import { isUserError } from '../../scripts/lib/errors.ts';

const root = join(import.meta.dirname, '../..');
const seed = 20_261_125;

let scratch: string;
let defaultYaml: string;
let defaultObject: Record<string, unknown>;
let written = 0;

beforeAll(async () => {
  scratch = await mkdtemp(join(tmpdir(), 'pibond-fuzz-'));
  defaultYaml = await readFile(join(root, 'images/default.yaml'), 'utf8');
  defaultObject = { ...(await loadDefinition(join(root, 'images/default.yaml'))) };
});
afterAll(async () => {
  await rm(scratch, { recursive: true, force: true });
});

/**
 * Validates `content` the way `pibond validate` does, through a real file, and fails the property
 * on anything a user would see as a bug: an escaped exception, a problem without the file's name,
 * a warning printed behind the validator's back, or an "ok" for something the schema rejects.
 */
async function validatesCleanly(content: string | Uint8Array): Promise<void> {
  const file = join(scratch, `case-${written++}.yaml`);
  await writeFile(file, content);
  const warn = vi.spyOn(process, 'emitWarning').mockImplementation(() => undefined);
  try {
    const def = await loadDefinition(file);
    expect(definitionSchema.safeParse(def).success).toBe(true);
  } catch (err) {
    if (!isUserError(err)) throw err;
    const lines = err instanceof DefinitionError ? err.problems.map(formatProblem) : [err.message];
    expect(lines.length).toBeGreaterThan(0);
    for (const line of lines) {
      expect(line.startsWith(`${file}: `)).toBe(true);
      expect(line).not.toMatch(/internal error|\n\s+at /);
    }
  } finally {
    const warnings = warn.mock.calls.map(([warning]) => String(warning));
    warn.mockRestore();
    await rm(file, { force: true });
    expect(warnings).toEqual([]);
  }
}

/** A "billion laughs": each anchor aliases the previous one `width` times, `depth` levels deep. */
const aliasBomb = fc.record({ depth: fc.integer({ min: 3, max: 9 }), width: fc.integer({ min: 3, max: 9 }) }).map(({ depth, width }) => {
  const lines = [`  l0: &l0 [${Array(width).fill('"lol"').join(', ')}]`];
  for (let level = 1; level < depth; level++) {
    lines.push(`  l${level}: &l${level} [${Array(width).fill(`*l${level - 1}`).join(', ')}]`);
  }
  return lines.join('\n');
});

/** Inputs that once made a YAML parser or a JSON printer throw, or slip through unnoticed. */
const hostileSnippet = fc.oneof(
  aliasBomb.map((bomb) => `bond:\n${bomb}`),
  fc.constantFrom(
    'name: *nowhere',
    'bond: &loop {slaves: [*loop]}',
    'extra: &self\n  again: *self',
    'name: !!binary aGVsbG8=',
    'packages: !!set {vim, tcpdump}',
    'packages: !!omap [a: 1, a: 2]',
    'name: !!timestamp 2001-12-14',
    'name: !python/object:os.system x',
    'name: !<tag:example.com:x> x',
    '%YAML 1.1\n---\nname: x\n<<: {hostname: y}',
    '? [a, b]\n: 1',
    '{a: 1}: 2',
    '*nowhere : 1',
    '__proto__: {polluted: true}',
    'constructor: {prototype: {polluted: true}}',
    'status_service: {port: 1e400}',
    'status_service: {port: -.inf}',
    'status_service: {port: .nan}',
    'disk: {size: 99999999999999999999999999999999999}',
    '---\nname: second',
    '...\n---',
    'name: "a\\0b"',
    `bond: ${'['.repeat(5000)}${']'.repeat(5000)}`,
    `bond: ${'{a: '.repeat(3000)}1${'}'.repeat(3000)}`,
    `bond:\n${Array.from({ length: 400 }, (_, i) => `${' '.repeat(2 * i + 2)}k${i}:`).join('\n')} 1`,
  ),
);

const scalar = fc.oneof(
  fc.string(),
  fc.string({ unit: 'binary' }),
  fc.integer(),
  fc.double(),
  fc.constantFrom('null', '~', 'true', 'no', '[]', '{}', '""', "'", '"', '*x', '&x', '!', '|', '>', '-', '? ', ': ', '#', '%', '@', '`'),
);

type LineEdit =
  | { kind: 'delete' | 'duplicate'; at: number }
  | { kind: 'swap'; at: number; with: number }
  | { kind: 'value'; at: number; value: string | number }
  | { kind: 'insert'; at: number; line: string };

/** Edits of images/default.yaml, line by line: what a hurried edit or a bad merge does to a file. */
const lineEdit: fc.Arbitrary<LineEdit> = fc.oneof(
  fc.record({ kind: fc.constant('delete' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat(), with: fc.nat() }),
  fc.record({ kind: fc.constant('value' as const), at: fc.nat(), value: scalar }),
  fc.record({ kind: fc.constant('insert' as const), at: fc.nat(), line: fc.oneof(fc.string(), hostileSnippet) }),
);

function applyEdits(source: string, edits: LineEdit[]): string {
  const lines = source.split('\n');
  for (const edit of edits) {
    const at = edit.at % lines.length;
    if (edit.kind === 'delete') lines.splice(at, 1);
    else if (edit.kind === 'duplicate') lines.splice(at, 0, lines[at] ?? '');
    else if (edit.kind === 'swap') {
      const other = edit.with % lines.length;
      [lines[at], lines[other]] = [lines[other] ?? '', lines[at] ?? ''];
    } else if (edit.kind === 'value') lines[at] = (lines[at] ?? '').replace(/:.*$/, `: ${String(edit.value)}`);
    else if (edit.kind === 'insert') lines.splice(at, 0, edit.line);
    if (lines.length === 0) lines.push('');
  }
  return lines.join('\n');
}

/** Paths into the default definition, to put a value of the wrong type (or shape) at one of them. */
function paths(value: unknown, prefix: (string | number)[] = []): (string | number)[][] {
  if (value === null || typeof value !== 'object') return [prefix];
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return [prefix, ...keys.flatMap((key) => paths((value as Record<string | number, unknown>)[key], [...prefix, key]))];
}

function withValueAt(root: unknown, path: (string | number)[], value: unknown): unknown {
  const [key, ...rest] = path;
  if (key === undefined) return value;
  const copy = (Array.isArray(root) ? [...(root as unknown[])] : { ...(root as object) }) as Record<string | number, unknown>;
  copy[key] = withValueAt(copy[key], rest, value);
  return copy;
}

describe('the validator on malformed definitions', () => {
  const runs = { seed, numRuns: 150 };

  it('edited copies of images/default.yaml', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(lineEdit, { minLength: 1, maxLength: 6 }), async (edits) => validatesCleanly(applyEdits(defaultYaml, edits))),
      runs,
    );
  });

  it('images/default.yaml with one hostile YAML construct appended', async () => {
    await fc.assert(
      fc.asyncProperty(hostileSnippet, async (snippet) => validatesCleanly(`${defaultYaml}\n${snippet}\n`)),
      { seed, numRuns: 100 },
    );
  });

  it('a value of the wrong type at any field, written as YAML or JSON', async () => {
    const wrong = fc.oneof(fc.anything({ withNullPrototype: true, withObjectString: true }), scalar, fc.constant(null));
    await fc.assert(
      fc.asyncProperty(fc.nat(), wrong, fc.boolean(), async (pick, value, asJson) => {
        const all = paths(defaultObject);
        const broken = withValueAt(defaultObject, all[pick % all.length] ?? [], value);
        let text: string;
        try {
          text = asJson ? JSON.stringify(broken) ?? 'null' : stringify(broken);
        } catch {
          return; // A value neither printer can write (a BigInt, say) is no file a user can have.
        }
        await validatesCleanly(text);
      }),
      runs,
    );
  });

  it('random bytes, alone or after a valid definition', async () => {
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 300 }), fc.boolean(), async (bytes, afterValid) =>
        validatesCleanly(afterValid ? Buffer.concat([Buffer.from(defaultYaml), bytes]) : bytes),
      ),
      runs,
    );
  });

  it('an alias bomb under any field', async () => {
    await fc.assert(
      fc.asyncProperty(aliasBomb, fc.constantFrom('bond', 'network', 'extra', 'packages'), async (bomb, key) =>
        validatesCleanly(`name: bomb\n${key}:\n${bomb}\n`),
      ),
      { seed, numRuns: 50 },
    );
  });
});
