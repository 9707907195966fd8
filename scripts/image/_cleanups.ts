/**
 * The build's cleanups, stacked as its steps start and unwound once, newest first. Whichever asks
 * first unwinds it (an abort, to end the running step at once, or the build's end); later asks
 * get the same unwinding, so no cleanup runs twice or alongside another.
 */
export class CleanupStack {
  private readonly stack: { name: string; cleanup: () => Promise<void> }[] = [];
  private unwinding: Promise<CleanupFailure[]> | undefined;

  push(name: string, cleanup: () => Promise<void>): void {
    if (this.unwinding) throw new Error(`cleanup "${name}" pushed after the cleanups ran`);
    this.stack.push({ name, cleanup });
  }

  /** Runs every cleanup once, in reverse order; one that fails does not stop the others. */
  unwind(): Promise<CleanupFailure[]> {
    this.unwinding ??= (async () => {
      const failures: CleanupFailure[] = [];
      for (let entry = this.stack.pop(); entry; entry = this.stack.pop()) {
        try {
          await entry.cleanup();
        } catch (error) {
          failures.push({ name: entry.name, error });
        }
      }
      return failures;
    })();
    return this.unwinding;
  }
}

export interface CleanupFailure {
  name: string;
  error: unknown;
}
