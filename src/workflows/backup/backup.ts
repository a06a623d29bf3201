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
  patched,
  upsertSearchAttributes,
  uuid4,
  workflowInfo,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { BackupActivities } from '../../activities/backup/index.js';
import type { CommonActivities } from '../../activities/common/index.js';
import { makeBackupId } from '../../activities/backup/ids.js';
import type { Artifact, BackupManifest, Verification } from '../../activities/backup/manifest.js';
import type { RetentionPlan } from '../../activities/backup/retention.js';
import { BackupIdKey, EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey, VerificationKey } from '../../common/search-attributes.js';
import { backupInputSchema, scheduledBackupInputSchema, verifyBackupInputSchema, type BackupInput, type VerifyBackupInput } from './shared.js';
import { parseInput } from '../common/inputs.js';

export type { BackupInput } from './shared.js';
import { longDataActivities } from './data-activities.js';
import { dataHostAware } from '../common/data-host-aware.js';
import { QUICK_DATA } from '../common/activity-options.js';
import { notifyAlerts, type AlertDelivery } from '../common/notify-alerts.js';

/**
 * Runs `tasks` side by side; when one fails, the others are cancelled and awaited (their activities kill their
 * processes and remove their partial files) before the first failure is thrown — so nothing still writes into the
 * backup directory while the failed backup is being cleaned up.
 */
async function allOrNothing<T>(tasks: (() => Promise<T>)[]): Promise<T[]> {
  const scope = new CancellationScope();
  const settled = await scope.run(() =>
    Promise.allSettled(
      tasks.map((task) =>
        task().catch((err: unknown) => {
          scope.cancel();
          throw err;
        }),
      ),
    ),
  );
  const failures = settled.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason as unknown);
  if (failures.length) throw failures.find((e) => !isCancellation(e)) ?? failures[0];
  return settled.map((r) => (r as PromiseFulfilledResult<T>).value);
}

/** The innermost failure type of a child workflow or activity failure (e.g. DataLocked). */
function innermostMessage(err: unknown): string {
  let e = err as { message?: string; cause?: unknown } | undefined;
  let message = String(err);
  while (e) {
    if (typeof e.message === 'string') message = e.message;
    e = e.cause as typeof e;
  }
  return message;
}

function innermostType(err: unknown): string | undefined {
  let e = err as { type?: string; cause?: unknown } | undefined;
  let type: string | undefined;
  while (e) {
    if (typeof e.type === 'string') type = e.type;
    e = e.cause as typeof e;
  }
  return type;
}

export interface BackupResult {
  backupId: string;
  manifest: BackupManifest;
}

const quick = dataHostAware<BackupActivities & CommonActivities>(QUICK_DATA);

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

  // The steps that write the backup's record run to their end even when the backup is cancelled meanwhile: a quick
  // step is cancelled without waiting for it, so a cancel landing while `beginBackup` ran let it write an in-progress
  // record after the workflow had ended, which no one closed (seen under load in approval-attack's cancelled safety
  // backup); one landing during `sealBackup` raced the failure record below. The cancel then takes effect at the next
  // step, inside the try, which records the backup as failed.
  const recordSteps = patched('backup-record-steps-not-cancellable') ? <T>(step: () => Promise<T>) => CancellationScope.nonCancellable(step) : <T>(step: () => Promise<T>) => step();
  await recordSteps(() => quick.beginBackup({ environment, backupId, kinds, requestedBy, reason, workflowId, runId, ...(safetyFor ? { safetyFor } : {}) }));
  let manifest: BackupManifest;
  try {
    const artifacts: Artifact[] = await allOrNothing(
      kinds.map((kind) => () => (kind === 'database' ? long.dumpDatabase({ environment, backupId }) : long.archiveFiles({ environment, backupId, kind }))),
    );
    manifest = await recordSteps(() => quick.sealBackup({ environment, backupId, artifacts }));
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
  /** Why the nightly backup did not run (a restore held the data lock); an alert was sent. */
  skipped?: string;
  alerts?: AlertDelivery[];
  retention?: RetentionPlan;
}

/**
 * The nightly schedule's workflow: runs `backup` as a child, then applies retention. A restore replacing the
 * environment's data at that moment holds the data lock: the backup is then skipped — outcome `skipped` in the
 * schedule's runs, and a warning alert — rather than failing silently or saving half-restored data.
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
    // Its own child id, not the environment's data workflow id: a restore waiting for approval (which holds no
    // data lock) must not suppress the nightly backup. Exclusion is the data lock's job: a restore that is
    // actually replacing data makes the dump fail with DataLocked, reported below as skipped, with an alert.
    result = await executeChild(backup, {
      workflowId: `${workflowInfo().workflowId}-backup`,
      args: [{ environment, reason: 'nightly backup', requestedBy: 'schedule' }],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError || innermostType(err) === 'DataLocked') {
      const why = err instanceof WorkflowExecutionAlreadyStartedError ? 'this run\'s backup was already started' : innermostMessage(err);
      const skipped = `nightly backup of ${environment} skipped: ${why}`;
      upsertSearchAttributes([{ key: OutcomeKey, value: 'skipped' }]);
      const summary = await quick.describeEnvironment(environment);
      const alerts = await notifyAlerts(workflowInfo().workflowId, summary, [
        { severity: 'warning', type: 'backup_skipped', title: 'Nightly backup skipped', message: skipped, environment },
      ]);
      return { environment, skipped, alerts };
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
