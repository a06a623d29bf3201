/**
 * Maps the project's permanent errors (bad input, unknown names, missing secrets) to non-retryable
 * ApplicationFailures, so Temporal stops retrying and the message reaches the operator unchanged.
 */
import { ApplicationFailure } from '@temporalio/common';
import { ConfigError, MissingSecretError, UnknownEnvironmentError } from '../config.js';

const PERMANENT = [UnknownEnvironmentError, MissingSecretError, ConfigError] as const;

export function asFailure(err: unknown): unknown {
  for (const kind of PERMANENT) {
    if (err instanceof kind) return ApplicationFailure.nonRetryable(err.message, err.name);
  }
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
