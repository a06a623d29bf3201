/**
 * Workflow inputs: one schema per workflow, shared by the workflow (which parses its input first, before any
 * activity: bad input fails fast and permanently) and the CLI (which parses what it is about to send, so a
 * mistake is reported before anything starts). A value is parsed once at each edge and flows on typed.
 * zod runs inside the workflow sandbox; the field validators are the project's own (src/backup/ids.ts), whose
 * messages say exactly what was wrong.
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { z } from 'zod';
import { parseBackupId, parseKind, parseKinds, parseReason, parseTarget, type BackupKind } from '../../activities/backup/ids.js';
import { parseVersion } from '../../activities/release/version.js';
import { ENVIRONMENT_NAME } from '../../common/names.js';

export function badInput(message: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, 'BadInput');
}

/** A value quoted in a message: JSON, bounded, with invisible and bidirectional characters shown as escapes. */
export function show(value: unknown, max = 80): string {
  return (JSON.stringify(value) ?? String(value)).slice(0, max).replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

/** A field checked by a validator that throws an Error whose message says what was wrong. */
function checked<T>(validate: (value: unknown) => T) {
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

const booleanField = (name: string, fallback: boolean) =>
  checked((value) => {
    if (value === undefined) return fallback;
    if (typeof value !== 'boolean') throw new Error(`Expected \`${name}\` to be true or false, got ${show(value)}`);
    return value;
  });

export const dailyHealthCheckInputSchema = z.strictObject({
  environment: environmentField,
  /** Who asked for this run (the CLI fills in the operator); default `schedule`. */
  requestedBy: requestedByField('schedule'),
});
export interface DailyHealthCheckInput {
  environment: string;
  /** Who asked for this run (the CLI fills in the operator); default `schedule`. */
  requestedBy?: string;
}

export const backupInputSchema = z.strictObject({
  environment: environmentField,
  /** Default: all of database, application, config, uploads. */
  kinds: checked(parseKinds),
  reason: checked((v) => parseReason(v, 'manual backup')),
  requestedBy: requestedByField('schedule'),
  /** full (default): checksums, archive listing and a restore test; checksums: only re-read the checksums. */
  verify: checked((value) => {
    if (value === undefined) return 'full' as const;
    if (value !== 'full' && value !== 'checksums') throw new Error(`Expected \`verify\` to be "full" or "checksums", got ${show(value)}`);
    return value;
  }),
});
export interface BackupInput {
  environment: string;
  /** Default: all of database, application, config, uploads. */
  kinds?: BackupKind[];
  /** Why (kept in the manifest); default `manual backup`. */
  reason?: string;
  requestedBy?: string;
  /** full (default): checksums, archive listing and a restore test; checksums: only re-read the checksums. */
  verify?: 'full' | 'checksums';
}

/** The nightly schedule's input (schedules also say who they are in `requestedBy`). */
export const scheduledBackupInputSchema = z.strictObject({ environment: environmentField, requestedBy: requestedByField('schedule') });

/** An environment's backup id, checked against that environment. */
function withBackupId<T extends { environment: string; backupId?: unknown }>(o: T, ctx: z.RefinementCtx): Omit<T, "backupId"> & { backupId: string } {
  try {
    return { ...o, backupId: parseBackupId(o.backupId, o.environment).id };
  } catch (err) {
    ctx.addIssue({ code: 'custom', path: ['backupId'], message: (err as Error).message });
    return z.NEVER;
  }
}

export const verifyBackupInputSchema = z
  .strictObject({ environment: environmentField, backupId: z.unknown().optional(), restoreTest: booleanField('restoreTest', true), requestedBy: requestedByField('unknown') })
  .transform(withBackupId);
export interface VerifyBackupInput {
  environment: string;
  backupId: string;
  /** Restore into a scratch database and compare row counts (default true). */
  restoreTest?: boolean;
  requestedBy?: string;
}

export const restoreInputSchema = z
  .strictObject({
    environment: environmentField,
    backupId: z.unknown().optional(),
    kind: checked(parseKind),
    /** A new database name (database) or directory name under the temp dir (files); default: over live data. */
    target: z.unknown().optional(),
    requestedBy: requestedByField('unknown'),
    /**
     * Only for the child a failed deploy starts (deploy.databaseRollback: restore-backup): the approval its
     * approveDatabaseRollback gate already gave. The restore trusts it only when its parent (set by Temporal, not
     * by the caller) is the environment's release workflow; from anyone else the restore is refused.
     */
    releaseApproval: checked(parseReleaseApproval),
  })
  .transform((o, ctx) => {
    const withId = withBackupId(o, ctx);
    try {
      return { ...withId, target: parseTarget(o.kind, o.target) };
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['target'], message: (err as Error).message });
      return z.NEVER;
    }
  });
export interface RestoreInput {
  environment: string;
  backupId: string;
  kind: BackupKind;
  /** A new database name (database) or directory name under the temp dir (files); default: over live data. */
  target?: string;
  requestedBy?: string;
  /** Set only by the release workflow (a failed deploy restoring its own pre-deploy backup); refused from anyone else. */
  releaseApproval?: ReleaseApproval;
}

/** Who approved a deploy's database rollback at its approveDatabaseRollback gate. */
export interface ReleaseApproval {
  by: string;
  comment?: string;
}

function parseReleaseApproval(value: unknown): ReleaseApproval | undefined {
  if (value === undefined) return undefined;
  const o = value as Record<string, unknown>;
  const ok =
    typeof value === 'object' && value !== null && !Array.isArray(value) &&
    Object.keys(o).every((k) => k === 'by' || k === 'comment') &&
    typeof o.by === 'string' && o.by.length <= 128 && /^[\p{L}\p{N}._@:/+-](?:[\p{L}\p{N} ._@:/+-]*[\p{L}\p{N}._@:/+-])?$/u.test(o.by) &&
    (o.comment === undefined || (typeof o.comment === 'string' && o.comment.length <= 500 && !/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u.test(o.comment)));
  if (!ok) throw new Error(`Expected \`releaseApproval\` to be {"by": name, "comment"?: text}, got ${show(value)}`);
  return { by: o.by as string, ...(o.comment !== undefined ? { comment: o.comment as string } : {}) };
}

export const importBackupInputSchema = z
  .strictObject({
    environment: environmentField,
    backupId: z.unknown().optional(),
    requestedBy: requestedByField('unknown'),
    /** sha256 of manifest.json as shown by a run without it; required to re-sign. */
    confirm: checked((value) => {
      if (value === undefined) return undefined;
      if (typeof value !== 'string' || !/^[0-9a-f]{64}$/.test(value)) throw new Error(`Expected \`confirm\` to be the manifest's sha256 (64 hex digits) shown by the inspection, got ${show(value)}`);
      return value;
    }),
  })
  .transform(withBackupId);
export interface ImportBackupInput {
  environment: string;
  backupId: string;
  requestedBy?: string;
  /** sha256 of manifest.json as shown by a run without it; required to re-sign. */
  confirm?: string;
}


/** A whole number of seconds in [0, max], or absent. */
const secondsField = (name: string, max: number) =>
  checked((value) => {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
      throw new Error(`Expected \`${name}\` to be a whole number of seconds from 0 to ${max}, got ${show(value)}`);
    }
    return value;
  });
const optionalBooleanField = (name: string) =>
  checked((value) => {
    if (value === undefined) return undefined;
    if (typeof value !== 'boolean') throw new Error(`Expected \`${name}\` to be true or false, got ${show(value)}`);
    return value;
  });

/**
 * Who asks for a release: required, because a deploy's database rollback follows the four-eyes rule, which needs
 * to know who must not approve it.
 */
const releaseRequestedByField = checked((value) => {
  if (value === undefined || value === null || value === '') {
    throw new Error('Expected `requestedBy` to name who asks for this release (the four-eyes rule of a database rollback needs it), e.g. "alice"');
  }
  if (typeof value !== 'string' || value.length > 128 || !/^[\p{L}\p{N} ._@:/+-]+$/u.test(value)) {
    throw new Error(`Expected \`requestedBy\` to be a name of at most 128 printable characters, got ${show(value)}`);
  }
  return value;
});

export const deployInputSchema = z.strictObject({
  environment: environmentField,
  /** The release to deploy: an image tag, git tag or commit id (src/deploy/version.ts). */
  version: checked((v) => parseVersion(v)),
  requestedBy: releaseRequestedByField,
  /** Skip the configured test command (default false). */
  skipTests: optionalBooleanField('skipTests'),
  /** Skip the pre-deploy database backup (default: the environment's deploy.backupBeforeDeploy). */
  skipBackup: optionalBooleanField('skipBackup'),
  /** Bake period in seconds, overriding deploy.bake.duration (0 skips the bake). */
  bakeSeconds: secondsField('bakeSeconds', 86_400),
});
export interface DeployInput {
  environment: string;
  version: string;
  requestedBy: string;
  skipTests?: boolean;
  skipBackup?: boolean;
  bakeSeconds?: number;
}

export const rollbackInputSchema = z.strictObject({
  environment: environmentField,
  /** The version to go back to; default: the previous successful release. */
  version: checked((v) => (v === undefined ? undefined : parseVersion(v))),
  requestedBy: releaseRequestedByField,
  /** Also migrate the database down to the target's recorded level, after approval (default false). */
  database: optionalBooleanField('database'),
});
export interface RollbackInput {
  environment: string;
  version?: string;
  requestedBy: string;
  database?: boolean;
}

/** `listReleases`: the release records of one environment. */
export const listReleasesInputSchema = z.strictObject({ environment: environmentField });

export const listBackupsInputSchema = z.strictObject({ environment: environmentField, requestedBy: requestedByField('unknown') });

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
