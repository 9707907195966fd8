/**
 * The one place where a definition file becomes a typed `Definition`. Each stage either hands the
 * next a cleaner value or stops with problems naming the file: bytes (a file of at most 1 MiB),
 * UTF-8 text, one YAML document of plain data, a value the schema accepts. Whatever a file holds,
 * the outcome is a Definition or a UserError, never an exception the CLI would call a bug.
 */
import { Buffer } from 'node:buffer';
import { open, type FileHandle } from 'node:fs/promises';
import { parseDocument } from 'yaml';
import type { z } from 'zod';
import { UserError, isUserError } from '../errors.ts';
import { DefinitionError, SourceText, aliasBombProblem, checkDocument, schemaProblems, tooDeep, tooManyAliases, yamlProblems } from './problems.ts';
import { definitionSchema, type Definition } from './schema.ts';

/** Far past any definition (a few dozen lines), and small enough to read and report on in one go. */
export const maxDefinitionBytes = 1024 * 1024;

/** The yaml package's default, made explicit because our message quotes it. */
const maxAliasCount = 100;

/** Parses and validates one definition; throws a DefinitionError listing every problem at once. */
export async function loadDefinition(file: string): Promise<Definition> {
  return definitionFromBytes(await readDefinitionFile(file), file);
}

/** A definition from a file's bytes, as `loadDefinition` reads them. */
export function definitionFromBytes(bytes: Uint8Array, file: string): Definition {
  return parseDefinition(decodeUtf8(bytes, file), file);
}

export function parseDefinition(source: string, file: string): Definition {
  const text = new SourceText(file, source);
  // YAML forbids NUL, yet the parser keeps it inside a value; it means UTF-16 or a binary file.
  const nul = source.indexOf('\0');
  if (nul !== -1) throw new DefinitionError([text.problemAt(nul, 'a NUL character; a definition is plain UTF-8 text (is this file UTF-16, or binary?)')]);
  const raw = plainData(text);
  if (raw === null || raw === undefined) {
    throw new DefinitionError([{ file, path: '', value: undefined, message: 'the file is empty; a definition needs at least a name' }]);
  }
  const result = definitionSchema.safeParse(raw);
  if (result.success) return result.data;
  throw new DefinitionError(schemaProblems(result.error.issues, raw, file));
}

/**
 * Another small YAML file of pibond's (a card's settings): the same stages as a definition, judged
 * by `schema`, with problems that name the file and the field. `what` names the file's kind in messages.
 */
export async function loadYamlWith<Schema extends z.ZodType>(file: string, schema: Schema, what: string): Promise<z.output<Schema>> {
  return parseYamlWith(decodeUtf8(await readDefinitionFile(file), file), file, schema, what);
}

export function parseYamlWith<Schema extends z.ZodType>(source: string, file: string, schema: Schema, what: string): z.output<Schema> {
  const text = new SourceText(file, source);
  const nul = source.indexOf('\0');
  if (nul !== -1) throw new DefinitionError([text.problemAt(nul, `a NUL character; ${what} is plain UTF-8 text`)]);
  const raw = plainData(text);
  if (raw === null || raw === undefined) throw new DefinitionError([{ file, path: '', value: undefined, message: `the file is empty; ${what} needs at least one setting` }]);
  const result = schema.safeParse(raw);
  if (result.success) return result.data;
  throw new DefinitionError(schemaProblems(result.error.issues, raw, file, schema));
}

/** The YAML document as plain data (text, numbers, booleans, lists, mappings) for the schema to judge. */
function plainData(text: SourceText): unknown {
  try {
    // resolveKnownTags off: `!!binary` or `!!set` stays a tag for checkDocument to report, not a Buffer or a Set.
    const doc = parseDocument(text.source, { uniqueKeys: true, prettyErrors: false, resolveKnownTags: false });
    const syntax = yamlProblems(doc, text);
    if (syntax.length > 0) throw new DefinitionError(syntax);
    const checked = checkDocument(doc, text);
    if (checked.problems.length > 0) throw new DefinitionError(checked.problems);
    const manyAliases = tooManyAliases(checked, text, maxAliasCount);
    if (manyAliases) throw new DefinitionError([manyAliases]);
    try {
      return doc.toJS({ maxAliasCount });
    } catch (err) {
      if (err instanceof ReferenceError && err.message.startsWith('Excessive alias count')) {
        throw new DefinitionError([aliasBombProblem(checked, text, maxAliasCount)]);
      }
      throw err;
    }
  } catch (err) {
    // Nesting deep enough to exhaust the stack (in the parser, or in toJS) is bad input, not a bug here.
    if (err instanceof RangeError && /call stack/i.test(err.message)) throw new UserError(`${text.file}: ${tooDeep}`);
    throw err;
  }
}

async function readDefinitionFile(file: string): Promise<Uint8Array> {
  let handle: FileHandle;
  try {
    handle = await open(file, 'r');
  } catch (err) {
    throw cannotRead(file, err);
  }
  try {
    if ((await handle.stat()).isDirectory()) throw new UserError(`${file}: is a directory; name a definition file, like images/default.yaml`);
    // One byte past the limit tells "at the limit" from "over it", also for a pipe, whose size stat does not know.
    const bytes = Buffer.alloc(maxDefinitionBytes + 1);
    let length = 0;
    while (length < bytes.length) {
      const { bytesRead } = await handle.read(bytes, length, bytes.length - length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    if (length > maxDefinitionBytes) throw new UserError(`${file}: is larger than 1 MiB; a definition is a few dozen lines of YAML`);
    return bytes.subarray(0, length);
  } catch (err) {
    throw isUserError(err) ? err : cannotRead(file, err);
  } finally {
    await handle.close();
  }
}

function cannotRead(file: string, err: unknown): UserError {
  return new UserError(`${file}: cannot read the definition: ${(err as Error).message}`);
}

function decodeUtf8(bytes: Uint8Array, file: string): string {
  try {
    // Also drops a byte order mark, which some Windows editors write.
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const lossy = new TextDecoder('utf-8').decode(bytes);
    const problem = new SourceText(file, lossy).problemAt(Math.max(0, lossy.indexOf('\uFFFD')), 'not UTF-8 text; save the definition as UTF-8 (was it written as Latin-1 or UTF-16?)');
    throw new DefinitionError([problem]);
  }
}
