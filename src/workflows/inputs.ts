/** Validation of workflow inputs, run inside workflows before any activity: bad input fails fast and permanently. */
import { ApplicationFailure } from '@temporalio/workflow';
import { ENVIRONMENT_NAME } from '../names.js';

export function badInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'BadInput');
}

/** An environment name is config-defined, lowercase and shell-safe; the activity then checks it exists. */
export function requireEnvironmentName(value: unknown): string {
  if (typeof value !== 'string' || !ENVIRONMENT_NAME.test(value)) {
    throw badInput(`Expected \`environment\` to be an environment name (lowercase letters, digits, -), got ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  return value;
}

/** Who asked: free text for the audit trail, but bounded and printable. */
export function requireRequestedBy(value: unknown, fallback: string): string {
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value !== 'string' || value.length > 128 || !/^[\p{L}\p{N} ._@:/+-]+$/u.test(value)) {
    throw badInput(`Expected \`requestedBy\` to be a name of at most 128 printable characters, got ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  return value;
}

/** The first argument of a workflow, required to be a plain object. */
export function requireObject(value: unknown, workflow: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badInput(`${workflow} expects one JSON object as input, e.g. {"environment":"production"}; got ${JSON.stringify(value)?.slice(0, 80)}`);
  }
  return value as Record<string, unknown>;
}

/** Runs a validator from src/backup/ids.ts (which throws plain errors) and turns its error into BadInput. */
export function validated<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw badInput((err as Error).message);
  }
}
