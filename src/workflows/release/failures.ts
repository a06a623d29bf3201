/** Failures of a release's steps, reduced to what an operator reads: the innermost message and its type. */

/** The innermost message of a failure (activity → application failure → cause). */
export function message(err: unknown): string {
  let e = err as (Error & { cause?: unknown }) | undefined;
  while (e?.cause instanceof Error) e = e.cause as Error & { cause?: unknown };
  return e instanceof Error ? e.message : String(err);
}

/** The type of the innermost application failure in a failure chain (child workflow → application failure). */
export function failureType(err: unknown): string | undefined {
  let type: string | undefined;
  for (let e = err as (Error & { cause?: unknown; type?: unknown }) | undefined; e instanceof Error; e = e.cause as typeof e) {
    if (typeof e.type === 'string') type = e.type;
  }
  return type;
}
