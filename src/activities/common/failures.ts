/**
 * Maps the project's permanent errors (bad input, unknown names, missing secrets…) to non-retryable
 * ApplicationFailures, so Temporal stops retrying and the message reaches the operator unchanged. Which errors are
 * permanent is decided by name, by the one list in src/common/errors.ts.
 */
import { ApplicationFailure } from '@temporalio/common';
import { PERMANENT_ERROR_TYPES } from '../../common/errors.js';

/**
 * `err` as a non-retryable failure when its name is in `permanent` (default: the project's permanent types);
 * anything else unchanged (retryable).
 */
export function asFailure(err: unknown, permanent: readonly string[] = PERMANENT_ERROR_TYPES): unknown {
  if (err instanceof ApplicationFailure) {
    if (!err.nonRetryable && err.type && permanent.includes(err.type)) {
      return ApplicationFailure.create({ message: err.message, type: err.type, nonRetryable: true, details: err.details as unknown[] | undefined, cause: err.cause });
    }
    return err;
  }
  if (err instanceof Error && permanent.includes(err.name)) return ApplicationFailure.nonRetryable(err.message, err.name);
  return err;
}

/** Runs `fn`, rethrowing permanent errors as non-retryable failures. */
export async function permanentOnKnownErrors<T>(fn: () => Promise<T> | T): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw asFailure(err);
  }
}
