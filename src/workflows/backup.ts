/**
 * 备份 — the guide's backup.sh as a workflow: database (pg_dump custom format, compressed), application files,
 * config and uploads, each written atomically with its sha256 in a manifest; then verified — checksums re-read,
 * the archive listed and restored into a scratch database whose row counts must match the dump's.
 */
import {
  ApplicationFailure,
  CancellationScope,
  executeChild,
  isCancellation,
  proxyActivities,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import { makeBackupId } from '../backup/ids.js';
import type { Artifact, BackupManifest, Verification } from '../backup/manifest.js';
import type { RetentionPlan } from '../backup/retention.js';
import { dataWorkflowId } from '../names.js';
import { BackupIdKey, EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey, VerificationKey } from '../search-attributes.js';
import { backupInputSchema, parseInput, scheduledBackupInputSchema, verifyBackupInputSchema, type BackupInput, type VerifyBackupInput } from './inputs.js';

export type { BackupInput } from './inputs.js';
import { longDataActivities, quickDataRetry } from './data-activities.js';

export interface BackupResult {
  backupId: string;
  manifest: BackupManifest;
}

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '1 minute',
  retry: quickDataRetry,
});

const long = longDataActivities;

/**
 * The restore this run is the safety backup of: only a child started by a restore under `<restore id>-safety`.
 * Taken from the workflow's own parent link (set by Temporal, not by whoever starts the workflow), so a caller of
 * `backup` cannot mark a backup as protecting a restore.
 */
function safetyBackupOf(): string | undefined {
  const { parent, workflowId } = workflowInfo();
  return parent && workflowId === `${parent.workflowId}-safety` ? parent.workflowId : undefined;
}

export async function backup(input: BackupInput): Promise<BackupResult> {
  // Strict schema: a caller passing `safetyFor` is refused (unknown key); only the parent link can set it.
  const { environment, requestedBy, kinds, reason, verify } = parseInput('backup', backupInputSchema, input);
  const safetyFor = safetyBackupOf();

  const { workflowId, runId } = workflowInfo();
  const backupId = makeBackupId(environment, new Date(), uuid4().replace(/-/g, '').slice(0, 6));
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'backup' },
    { key: RequestedByKey, value: requestedBy },
    { key: BackupIdKey, value: backupId },
  ]);

  await quick.beginBackup({ environment, backupId, kinds, requestedBy, reason, workflowId, runId, ...(safetyFor ? { safetyFor } : {}) });
  let manifest: BackupManifest;
  try {
    const artifacts: Artifact[] = await Promise.all(
      kinds.map((kind) => (kind === 'database' ? long.dumpDatabase({ environment, backupId }) : long.archiveFiles({ environment, backupId, kind }))),
    );
    manifest = await quick.sealBackup({ environment, backupId, artifacts });
  } catch (err) {
    // Cancelled or failed: record it (even while being cancelled) so the catalogue never shows a half backup as usable.
    const message = isCancellation(err) ? 'cancelled' : err instanceof Error ? (err.cause instanceof Error ? err.cause.message : err.message) : String(err);
    await CancellationScope.nonCancellable(() => quick.markBackupFailed({ environment, backupId, error: message }));
    upsertSearchAttributes([{ key: OutcomeKey, value: isCancellation(err) ? 'cancelled' : 'failed' }]);
    throw err;
  }

  const verification: Verification = await long.verifyBackup({ environment, backupId, restoreTest: verify === 'full' });
  manifest.verification = verification;
  upsertSearchAttributes([
    { key: VerificationKey, value: verification.status },
    { key: OutcomeKey, value: verification.status === 'verified' ? 'success' : 'failed' },
  ]);
  if (verification.status !== 'verified') {
    throw ApplicationFailure.nonRetryable(`Backup ${backupId} failed verification: ${verification.problems.join('; ')}`, 'VerificationFailed');
  }
  return { backupId, manifest };
}

export interface ScheduledBackupResult {
  environment: string;
  backup?: BackupResult;
  skipped?: string;
  retention?: RetentionPlan;
}

/**
 * The nightly schedule's workflow: runs `backup` as a child under the environment's data workflow id (so it
 * never overlaps a manual backup or a restore), then applies retention.
 */
export async function scheduledBackup(input: { environment: string; requestedBy?: string }): Promise<ScheduledBackupResult> {
  const { environment } = parseInput('scheduledBackup', scheduledBackupInputSchema, input);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'scheduledBackup' },
    { key: RequestedByKey, value: 'schedule' },
  ]);
  let result: BackupResult;
  try {
    result = await executeChild(backup, {
      workflowId: dataWorkflowId(environment),
      args: [{ environment, reason: 'nightly backup', requestedBy: 'schedule' }],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      upsertSearchAttributes([{ key: OutcomeKey, value: 'skipped' }]);
      return { environment, skipped: `a backup or restore of ${environment} is already running (${dataWorkflowId(environment)})` };
    }
    throw err;
  }
  const retention = await quick.pruneBackups({ environment, activeIds: [] });
  upsertSearchAttributes([{ key: OutcomeKey, value: 'success' }, { key: BackupIdKey, value: result.backupId }]);
  return { environment, backup: result, retention };
}

/** Re-verifies an existing backup (checksums, archive listing, and by default a restore test); fails if it does not verify. */
export async function verifyBackup(input: VerifyBackupInput): Promise<Verification> {
  const { environment, requestedBy, backupId, restoreTest } = parseInput('verifyBackup', verifyBackupInputSchema, input);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'verifyBackup' },
    { key: RequestedByKey, value: requestedBy },
    { key: BackupIdKey, value: backupId },
  ]);
  const verification = await long.verifyBackup({ environment, backupId, restoreTest });
  upsertSearchAttributes([
    { key: VerificationKey, value: verification.status },
    { key: OutcomeKey, value: verification.status === 'verified' ? 'success' : 'failed' },
  ]);
  if (verification.status !== 'verified') {
    throw ApplicationFailure.nonRetryable(`Backup ${backupId} failed verification: ${verification.problems.join('; ')}`, 'VerificationFailed');
  }
  return verification;
}
