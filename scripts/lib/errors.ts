import { inspect } from 'node:util';

/**
 * An expected failure: bad input, a missing tool, an unreachable daemon or mirror.
 * The CLI prints its message alone, without a stack; anything else is a bug and is printed whole.
 */
export class UserError extends Error {
  override name = 'UserError';
}

export function isUserError(err: unknown): err is UserError {
  return err instanceof UserError;
}

/** What went wrong, in one string, whatever was thrown (an Error, a string, an engine's object). */
export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return typeof err === 'string' ? err : inspect(err, { breakLength: Infinity });
}
