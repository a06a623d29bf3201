/**
 * Workflow inputs, the common part: the field validators and the parsing that every feature's input schemas (in
 * each feature's shared.ts) use. One schema per workflow, shared by the workflow (which parses its input first, before any
 * activity: bad input fails fast and permanently) and the CLI (which parses what it is about to send, so a
 * mistake is reported before anything starts). A value is parsed once at each edge and flows on typed.
 * zod runs inside the workflow sandbox; the field validators are the project's own (src/activities/backup/ids.ts), whose
 * messages say exactly what was wrong.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { z } from 'zod';
import { ENVIRONMENT_NAME } from '../../common/names.js';

export function badInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'BadInput');
}

/** A value quoted in a message: JSON, bounded, with invisible and bidirectional characters shown as escapes. */
export function show(value: unknown, max = 80): string {
  return (JSON.stringify(value) ?? String(value)).slice(0, max).replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

/** A field checked by a validator that throws an Error whose message says what was wrong. */
export function checked<T>(validate: (value: unknown) => T) {
  return z.unknown().optional().transform((value, ctx): T => {
    try {
      return validate(value);
    } catch (err) {
      ctx.addIssue({ code: 'custom', message: (err as Error).message });
      return z.NEVER;
    }
  });
}

/** An environment name is config-defined, lowercase and shell-safe; the first activity then checks it exists. */
export const environmentField = checked((value) => {
  if (typeof value !== 'string' || !ENVIRONMENT_NAME.test(value)) {
    throw new Error(`Expected \`environment\` to be an environment name (lowercase letters, digits, -), got ${show(value)}`);
  }
  return value;
});

/** Who asked: free text for the audit trail, but bounded and printable; `fallback` when absent. */
export const requestedByField = (fallback: string) =>
  checked((value) => {
    if (value === undefined || value === null || value === '') return fallback;
    if (typeof value !== 'string' || value.length > 128 || !/^[\p{L}\p{N}._@:/+-](?:[\p{L}\p{N} ._@:/+-]*[\p{L}\p{N}._@:/+-])?$/u.test(value)) {
      throw new Error(`Expected \`requestedBy\` to be a name of at most 128 printable characters (letters, digits, ._@:/+- and inner spaces), got ${show(value)}`);
    }
    return value;
  });

export const booleanField = (name: string, fallback: boolean) =>
  checked((value) => {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw new Error(`Expected \`${name}\` to be true or false, got ${show(value)}`);
    return value;
  });
export const optionalBooleanField = (name: string) =>
  checked((value) => {
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') throw new Error(`Expected \`${name}\` to be true or false, got ${show(value)}`);
    return value;
  });

/**
 * Parses a workflow's input with its schema; anything wrong is one non-retryable BadInput failure listing every
 * problem with the key it concerns.
 */
export function parseInput<S extends z.ZodType>(workflow: string, schema: S, value: unknown): z.output<S> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badInput(`${workflow} expects one JSON object as input, e.g. {"environment":"production"}; got ${show(value)}`);
  }
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  // Messages quote what was sent (unknown keys in full): each and all bounded, so a hostile input cannot make
  // the failure, the history and the CLI's output as large as itself.
  const problems = result.error.issues.map((i) => {
    const where = i.path.length ? `\`${i.path.join('.').slice(0, 40)}\`` : '';
    return (i.message.startsWith('Expected') || !where ? i.message : `${where}: ${i.message}`).slice(0, 240);
  });
  throw badInput(`Bad ${workflow} input: ${problems.join('; ').slice(0, 1000)}`);
}

/** Turns a plain validation error from the CLI's side into the message it prints. */
export function checkInput<S extends z.ZodType>(workflow: string, schema: S, value: unknown): z.output<S> {
  try {
    return parseInput(workflow, schema, value);
  } catch (err) {
    throw new Error((err as Error).message);
  }
}

// Single-field checks for workflows whose input has one or two fields (kept small; prefer a schema above).

/** The environment name, or a BadInput failure. */
export function requireEnvironmentName(value: unknown): string {
  return validated(() => environmentField.parse(value));
}

/** Who asked (bounded, printable), `fallback` when absent; or a BadInput failure. */
export function requireRequestedBy(value: unknown, fallback: string): string {
  return validated(() => requestedByField(fallback).parse(value));
}

/** The first argument of a workflow, required to be a plain object. */
export function requireObject(value: unknown, workflow: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badInput(`${workflow} expects one JSON object as input, e.g. {"environment":"production"}; got ${show(value)}`);
  }
  return value as Record<string, unknown>;
}

/** Runs a validator that throws plain errors (a ZodError included) and turns its error into BadInput. */
export function validated<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    if (err instanceof z.ZodError) throw badInput(err.issues.map((i) => i.message).join('; '));
    throw badInput((err as Error).message);
  }
}
