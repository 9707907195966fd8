/**
 * Problems in a definition file, each with everything a user needs to fix it: the file, the field
 * (or, before there are fields, the line and column), the bad value as written, and what is allowed.
 * zod's issues and the yaml package's errors are turned into these here, and nowhere else.
 */
import type { Alias, Document, Node, YAMLError } from 'yaml';
import { isAlias, isCollection, isPair, isScalar, visit } from 'yaml';
import { z } from 'zod';
import { UserError } from '../errors.ts';
import { definitionSchema, isMapping } from './schema.ts';

/** One problem in one definition file, with everything a user needs to fix it. */
export interface DefinitionProblem {
  file: string;
  /** The field, like `bond.slaves[0].mac`; for YAML syntax errors, the line and column. */
  path: string;
  /** The bad value as written; for YAML syntax errors, the offending line; undefined when missing. */
  value: unknown;
  /** What is wrong and what is allowed. */
  message: string;
}

export class DefinitionError extends UserError {
  constructor(readonly problems: DefinitionProblem[]) {
    super(problems.map(formatProblem).join('\n'));
  }
}

/** A bad value longer than this is cut: the line is there to recognise it, not to print a file back. */
const shownValueLength = 200;

export function formatProblem(p: DefinitionProblem): string {
  return `${p.file}: ${p.path || '(top level)'}: ${p.message} (${p.value === undefined ? 'missing' : `got ${shown(p.value)}`})`;
}

function shown(value: unknown): string {
  // JSON has no Infinity or NaN and would print "null": the opposite of what the user wrote.
  const json = typeof value === 'number' && !Number.isFinite(value) ? String(value) : (JSON.stringify(value) ?? String(value));
  return json.length > shownValueLength ? `${json.slice(0, shownValueLength)}…` : json;
}

/**
 * Points problems in the YAML text at a line and column, showing the line: before the YAML is
 * understood there are no fields to name.
 */
export class SourceText {
  readonly #lines: string[];
  readonly #lineStarts: number[] = [0];

  constructor(
    readonly file: string,
    readonly source: string,
  ) {
    this.#lines = source.split(/\r?\n/);
    for (let i = source.indexOf('\n'); i !== -1; i = source.indexOf('\n', i + 1)) this.#lineStarts.push(i + 1);
  }

  problemAt(offset: number, message: string): DefinitionProblem {
    // The last line starting at or before `offset`, by binary search: a broken file can have many problems.
    let low = 0;
    let high = this.#lineStarts.length - 1;
    while (low < high) {
      const middle = Math.ceil((low + high) / 2);
      if ((this.#lineStarts[middle] ?? 0) <= offset) low = middle;
      else high = middle - 1;
    }
    const column = offset - (this.#lineStarts[low] ?? 0) + 1;
    return { file: this.file, path: `line ${low + 1}, column ${column}`, value: this.#lines[low], message };
  }
}

/** The yaml package's own errors and warnings, in our words where its words are about its API. */
export function yamlProblems(doc: Document, text: SourceText): DefinitionProblem[] {
  const found = [...doc.errors, ...doc.warnings.filter((warning) => warning.code !== 'TAG_RESOLVE_FAILED')];
  // The parser catches its own stack overflow and reports it once per level it unwinds: once says it.
  const overflow = found.find((error) => error.message.includes('call stack'));
  if (overflow) return [text.problemAt(overflow.pos[0], tooDeep)];
  return found.map((error) => text.problemAt(error.pos[0], yamlMessage(error)));
}

function yamlMessage(error: YAMLError): string {
  if (error.code === 'MULTIPLE_DOCS') return 'a second YAML document; a definition is one document, so this file needs no "---" line';
  return `YAML syntax: ${error.message}`;
}

export const tooDeep = 'the YAML nests too deeply to read; a definition nests a few levels at most';

/** Tags that only restate what plain YAML means: `!!str 8080` is still a definition's kind of value. */
const plainTags = new Set(['!', ...['str', 'int', 'float', 'bool', 'null', 'map', 'seq'].map((name) => `tag:yaml.org,2002:${name}`)]);

/** What `checkDocument` found, and the alias resolution the alias limits are measured on. */
export interface CheckedDocument {
  problems: DefinitionProblem[];
  /** What each alias stands for, resolved the way the yaml package does: the last anchor before it. */
  aliasTargets: Map<Alias, Node>;
}

/**
 * What the yaml package would accept but turn into something other than plain data, or into an
 * exception: another YAML version's meanings, tags (binary data, sets, timestamps, a program's
 * objects), keys that are lists or mappings, aliases to no anchor or to themselves.
 */
export function checkDocument(doc: Document, text: SourceText): CheckedDocument {
  const problems: DefinitionProblem[] = [];
  const aliasTargets = new Map<Alias, Node>();
  const anchors = new Map<string, Node>();
  const at = (node: Node, message: string) => problems.push(text.problemAt(node.range?.[0] ?? 0, message));

  if (doc.directives?.yaml.explicit && doc.directives.yaml.version !== '1.2') {
    const directive = /^%YAML/m.exec(text.source)?.index ?? 0;
    problems.push(text.problemAt(directive, `YAML ${doc.directives.yaml.version}: a definition is YAML 1.2 (where yes and no are text, not true and false), so remove this line`));
  }
  visit(doc, {
    Pair(_key, pair) {
      if (pair.key !== null && !isScalar(pair.key)) at(pair.key as Node, 'a key must be a plain name, not a list, a mapping or an alias');
    },
    Node(_key, node, path) {
      if (isAlias(node)) {
        const target = anchors.get(node.source);
        if (target === undefined) at(node, `the alias *${node.source} has no anchor &${node.source} before it`);
        else if (path.includes(target)) at(node, `the alias *${node.source} is inside its own anchor &${node.source}, so its value would never end`);
        else aliasTargets.set(node, target);
        return;
      }
      if (node.anchor) anchors.set(node.anchor, node);
      if (node.tag !== undefined && !plainTags.has(node.tag)) {
        at(node, `the YAML tag ${tagAsWritten(node.tag)} is not allowed; a definition holds plain text, numbers, true or false, lists and mappings`);
      }
    },
  });
  return { problems, aliasTargets };
}

function tagAsWritten(tag: string): string {
  if (tag.startsWith('tag:yaml.org,2002:')) return `!!${tag.slice('tag:yaml.org,2002:'.length)}`;
  return tag.startsWith('!') ? tag : `!<${tag}>`;
}

const aliasAdvice = 'definitions do not need aliases this large';

/**
 * More alias uses than yaml would expand. Checked before yaml expands them: it re-reads the whole
 * document for each alias inside an aliased list or mapping, so a file of many takes minutes.
 */
export function tooManyAliases(checked: CheckedDocument, text: SourceText, maxAliasCount: number): DefinitionProblem | undefined {
  const over = [...checked.aliasTargets.keys()][maxAliasCount];
  if (over === undefined) return undefined;
  return text.problemAt(over.range?.[0] ?? 0, `too many YAML aliases: ${checked.aliasTargets.size}, past yaml's limit of ${maxAliasCount} alias uses; ${aliasAdvice}`);
}

/**
 * yaml stops at `maxAliasCount` with "resource exhaustion attack" and no position. We point at the
 * alias that stands for the most values: the one a user would shrink.
 */
export function aliasBombProblem(checked: CheckedDocument, text: SourceText, maxAliasCount: number): DefinitionProblem {
  const sizes = new Map<unknown, number>();
  const size = (node: unknown): number => {
    let known = sizes.get(node);
    if (known !== undefined) return known;
    if (isAlias(node)) known = size(checked.aliasTargets.get(node));
    else if (isCollection(node)) known = node.items.reduce<number>((sum, item) => sum + (isPair(item) ? size(item.key) + size(item.value) : size(item)), 1);
    else known = node === null || node === undefined ? 0 : 1;
    sizes.set(node, known);
    return known;
  };
  let worst: Alias | undefined;
  for (const alias of checked.aliasTargets.keys()) if (worst === undefined || size(alias) > size(worst)) worst = alias;
  const what = worst ? `*${worst.source} alone stands for ${size(worst)} values` : 'they stand for too many values';
  return text.problemAt(worst?.range?.[0] ?? 0, `too many YAML aliases: ${what}, past yaml's limit of ${maxAliasCount} alias uses; ${aliasAdvice}`);
}

/** The schema's issues as problems: one per issue, and one per unknown key. */
export function schemaProblems(issues: readonly z.core.$ZodIssue[], raw: unknown, file: string, schema: z.ZodType = definitionSchema): DefinitionProblem[] {
  // A number past 2^53 fails both "whole number" and "at most" with the same message: one line says it.
  const byLine = new Map<string, DefinitionProblem>();
  for (const problem of issues.flatMap((issue) => problemsOf(issue, raw, file, schema))) {
    const line = `${problem.path}\n${problem.message}`;
    if (!byLine.has(line)) byLine.set(line, problem);
  }
  return [...byLine.values()];
}

function problemsOf(issue: z.core.$ZodIssue, raw: unknown, file: string, schema: z.ZodType): DefinitionProblem[] {
  if (issue.code === 'unrecognized_keys') {
    // One line per unknown key, naming the key itself: that is what the user mistyped.
    const allowed = allowedKeysAt(schema, raw, issue.path);
    return issue.keys.map((key) => ({
      file,
      path: formatPath([...issue.path, key]),
      value: valueAt(raw, [...issue.path, key]),
      message: `unknown key${suggestion(key, allowed)}; allowed keys: ${allowed.join(', ')}`,
    }));
  }
  return [{ file, path: formatPath(issue.path), value: valueAt(raw, issue.path), message: issue.message }];
}

/** The keys the schema allows for the mapping at `path` of the raw value. */
function allowedKeysAt(schema: z.ZodType, raw: unknown, path: readonly PropertyKey[]): string[] {
  let node: z.ZodType | undefined = schema;
  let value = raw;
  let depth = 0;
  while (node !== undefined) {
    if (node instanceof z.ZodDefault || node instanceof z.ZodOptional) {
      node = node.unwrap() as z.ZodType;
    } else if (node instanceof z.ZodPipe) {
      node = node.in as z.ZodType;
    } else if (node instanceof z.ZodDiscriminatedUnion) {
      // The branch the user chose, by its discriminator (for addressing: method).
      const discriminator: string = node.def.discriminator;
      const chosen: unknown = isMapping(value) ? value[discriminator] : undefined;
      node = (node.options as z.ZodType[]).find(
        (option) => option instanceof z.ZodObject && (option.shape[discriminator] as z.ZodLiteral).values.has(chosen as string),
      );
    } else if (depth === path.length) {
      return node instanceof z.ZodObject ? Object.keys(node.shape) : [];
    } else {
      const key = path[depth++] as PropertyKey;
      if (node instanceof z.ZodObject) node = node.shape[key as string] as z.ZodType | undefined;
      else if (node instanceof z.ZodArray) node = node.element as z.ZodType;
      else return [];
      value = isMapping(value) || Array.isArray(value) ? (value as Record<PropertyKey, unknown>)[key] : undefined;
    }
  }
  return [];
}

/** "; did you mean primary?" for a key one or two typos away from an allowed one. */
function suggestion(key: string, allowed: string[]): string {
  const near = allowed.find((candidate) => editDistance(key.toLowerCase(), candidate) <= 2);
  return near === undefined ? '' : ` (did you mean ${near}?)`;
}

function editDistance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      const substitution = (previous[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1);
      current[j] = Math.min((previous[j] ?? 0) + 1, (current[j - 1] ?? 0) + 1, substitution);
    }
    previous = current;
  }
  return previous[b.length] ?? 0;
}

/** `bond.slaves[0].mac`: the way the user would point at it. */
function formatPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>((out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)), '');
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let node = root;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}
