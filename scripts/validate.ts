/**
 * `pibond validate FILE...`: checks every definition and reports every problem of every file in
 * one run, so a user fixes them all at once instead of one per attempt.
 */
import { parseArgs } from 'node:util';
import { DefinitionError, formatProblem, loadDefinition } from './lib/definition.ts';
import { isUserError } from './lib/errors.ts';

const usage = `Usage: pibond validate FILE...

Checks image definitions (images/*.yaml). Prints "FILE: ok" for each good file and one line per
problem otherwise. Exits 1 if any file has a problem, 2 on a usage error.
`;

export async function main(args: string[]): Promise<number> {
  let files: string[];
  try {
    const parsed = parseArgs({ args, allowPositionals: true, options: { help: { type: 'boolean', short: 'h' } } });
    if (parsed.values.help) {
      process.stdout.write(usage);
      return 0;
    }
    files = parsed.positionals;
  } catch (err) {
    process.stderr.write(`pibond validate: ${(err as Error).message}\n\n${usage}`);
    return 2;
  }
  if (files.length === 0) {
    process.stderr.write(`pibond validate: name at least one definition file\n\n${usage}`);
    return 2;
  }

  let bad = 0;
  for (const file of files) {
    const lines = await check(file);
    if (lines.length > 0) bad++;
    process.stdout.write(`${lines.length > 0 ? lines.join('\n') : `${file}: ok`}\n`);
  }
  return bad > 0 ? 1 : 0;
}

/** The problem lines of one file; none when it is good. */
async function check(file: string): Promise<string[]> {
  try {
    await loadDefinition(file);
    return [];
  } catch (err) {
    if (err instanceof DefinitionError) return err.problems.map(formatProblem);
    // An unreadable file is one more bad file, not a reason to skip the rest.
    if (isUserError(err)) return [err.message];
    throw err;
  }
}
