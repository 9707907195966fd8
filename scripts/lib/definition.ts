/**
 * Image definitions: the schema, and the one place where a YAML file becomes a typed `Definition`.
 * Everything after `loadDefinition` works on the typed value only.
 *
 * This file is the public face; the parts live in definition/: schema.ts (what is allowed),
 * load.ts (file, text, YAML, typed value), problems.ts (what a user reads when something is wrong)
 * and hash.ts (the manifest's fingerprint).
 */
export { definitionSchema, type Definition } from './definition/schema.ts';
export { loadDefinition, parseDefinition } from './definition/load.ts';
export { DefinitionError, formatProblem, type DefinitionProblem } from './definition/problems.ts';
export { definitionHash, stableJson } from './definition/hash.ts';
