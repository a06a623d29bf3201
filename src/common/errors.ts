/**
 * The one list of errors that will fail the same way again, so retrying them only delays the operator's answer.
 * Activities throw errors of these types (ApplicationFailure types, or Error subclasses whose `name` is one of
 * them); the activity retry policies of the data workflows name the same list in `nonRetryableErrorTypes`, and the
 * activity wrappers turn a thrown error of a listed name into a non-retryable failure. No imports: the workflow
 * bundle uses this file.
 */

/** Permanent by construction: bad input, unknown names, missing secrets, refused or impossible operations. */
export const PERMANENT_ERROR_TYPES = [
  'BadInput',
  'UnknownEnvironmentError',
  'MissingSecretError',
  'ConfigError',
  'BackupNotFound',
  'BackupExists',
  'BackupIncomplete',
  'KindNotInBackup',
  'ChecksumMismatch',
  'SourceMissing',
  'ManifestInvalid',
  'ManifestSignatureInvalid',
  'SigningKeyInvalid',
  'ArtifactInvalid',
  'UnsafeArchive',
  'CorruptArchive',
  'ImportChanged',
  'RestoreTestRoleUnsafe',
  'TargetExists',
  'RestoreMismatch',
  'DataLocked',
  'VerificationFailed',
  'ApprovalTimeout',
  'RestoreRejected',
  // deploy and rollback (src/activities/release/docker.ts, release.ts, release-checks.ts, commands.ts)
  'TestsFailed',
  'BuildFailed',
  'ImageUnavailable',
  'MigrationFailed',
  'DataOperationRunning',
  'ReleaseRunning',
  'NotAdopted',
  'NothingToRollBackTo',
  'MetricsMissing',
  // an activity scheduled by a workflow on another task queue (src/activities/common/caller-guard.ts)
  'ForeignWorkflow',
] as const;

/**
 * Errors from data read back from disk (a malformed manifest or archive): a retry reads the same bytes. Only for
 * activities that parse such data — a network error surfaces as a TypeError from fetch(), which must stay retryable.
 */
export const BAD_DATA_ERROR_TYPES = ['TypeError', 'SyntaxError', 'RangeError', 'ZodError'] as const;

/** What the data activities (backup, verification, restore) never retry. */
export const NON_RETRYABLE_ERROR_TYPES: string[] = [...PERMANENT_ERROR_TYPES, ...BAD_DATA_ERROR_TYPES];

export type PermanentErrorType = (typeof PERMANENT_ERROR_TYPES)[number];

export function isPermanentErrorType(type: string | undefined, list: readonly string[] = PERMANENT_ERROR_TYPES): boolean {
  return type !== undefined && list.includes(type);
}
