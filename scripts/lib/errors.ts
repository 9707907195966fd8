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
