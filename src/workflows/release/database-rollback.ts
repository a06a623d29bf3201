/**
 * The approval-gated database rollback of a release: after the app is back on the previous version, the
 * database goes back too — by `migrate down` or by restoring the pre-deploy backup (a child restore) — only when
 * someone other than the requester approves at the `approveDatabaseRollback` gate; unanswered, it escalates.
 */
import {
  condition,
  isCancellation,
  patched,
  sleep,
  startChild,
  upsertSearchAttributes,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { ReleasePlan } from '../../activities/release/release.js';
import { dataWorkflowId } from '../../common/names.js';
import { OutcomeKey } from '../../common/search-attributes.js';
import { describeWritesLost, type ApprovalGate, type GateDetails, type WritesLost } from '../common/approval.js';
import { busyRetryDelay } from '../common/waits.js';
import { DOCKER, WAITS } from '../common/activity-options.js';
import { restore } from '../backup/restore.js';
import { restoreDecisions } from '../backup/shared.js';

import { notify, run } from './release-steps.js';
import { failureType, message } from './failures.js';
import { Tracker } from './tracker.js';

export interface DatabaseRollbackResult {
  decision: 'approved' | 'rejected' | 'timed-out';
  by?: string;
  comment?: string;
  /** The migration level after the approved rollback (restore-backup: measured after the restore, also when it failed). */
  level?: number;
  /** restore-backup: the restore run (a child under the data id) and how it ended. */
  restore?: { workflowId: string; runId?: string; backupId: string; safetyBackupId?: string; error?: string };
  /** Approved, but the migrate-down failed or was refused (a reset run): why, with `level` as read afterwards. */
  error?: string;
}

/**
 * Waits for a person to approve the database rollback (four eyes unless configured otherwise), alerting once when
 * nobody answered after `escalateAfterMs`. On approval: migrates the database down to `toLevel` with `version`'s
 * runner; or, with `restoreBackup` (deploy.databaseRollback: restore-backup), restores that pre-deploy backup over
 * the live database through the `restore` workflow as a child, pre-approved by this gate's approver.
 */
export async function databaseRollback(opts: {
  plan: ReleasePlan;
  gate: ApprovalGate;
  tracker: Tracker;
  version: string;
  fromLevel: number;
  toLevel: number;
  requestedBy: string;
  why: string;
  /** Restore this backup (taken before the deploy) instead of migrating down. */
  restoreBackup?: string;
}): Promise<DatabaseRollbackResult> {
  const { plan, gate, tracker } = opts;
  // Consent follows the information: the gate shows what exactly would be approved — the failure, the levels, or
  // the backup and the rows written since it (read now, before the gate opens) — under an id the approval names.
  let details: GateDetails | undefined;
  let loss = 'every write made since the backup is LOST';
  if (gate.consent) {
    if (opts.restoreBackup) {
      const writesLost = await run(WAITS, 'previewRestore', `rows written since backup ${opts.restoreBackup}`, { environment: plan.environment, backupId: opts.restoreBackup, kind: 'database' }).then(
        (p) => p.writesLost,
        (err: unknown): WritesLost => {
          if (isCancellation(err)) throw err;
          return { tablesCompared: 0, changed: [], moreChanged: 0, rowsAdded: 0, rowsRemoved: 0, error: message(err).slice(0, 300) };
        },
      );
      details = { failure: opts.why, backup: { id: opts.restoreBackup, kind: 'database', target: `${plan.environment}'s live database`, ...(writesLost ? { writesLost } : {}) } };
      loss = describeWritesLost(writesLost);
    } else details = { failure: opts.why, migration: { from: opts.fromLevel, to: opts.toLevel } };
  }
  const subject = opts.restoreBackup
    ? `restore ${plan.environment}'s database from backup ${opts.restoreBackup}, taken before this deploy (${opts.why}): schema and data go back to that moment and ${loss} (a safety backup of the current database is taken first)`
    : `migrate ${plan.environment}'s database down from level ${opts.fromLevel} to ${opts.toLevel} (${opts.why})`;
  upsertSearchAttributes([{ key: OutcomeKey, value: 'awaiting-approval' }]);
  const decided = gate.decide({ subject, ...(details ? { details } : {}), allowSelfApproval: plan.allowSelfApproval, timeoutMs: plan.approvalTimeoutMs });
  const gateId = gate.status.gateId; // set as the gate opens (runs before consent-follows-information: none)
  tracker.waiting(`approveDatabaseRollback or rejectDatabaseRollback {"by","comment"${gateId ? `,"gate":"${gateId}"` : ''}} — ${subject}${plan.allowSelfApproval ? '' : `; not from ${opts.requestedBy} (four eyes)`}`);
  const escalation = (async () => {
    if (await condition(() => gate.status.state !== 'open' && gate.status.state !== 'not-open', plan.escalateAfterMs)) return;
    const approve = `llmchat-ops approve-db-rollback --env ${plan.environment}${gateId ? ` --gate ${gateId} -m "why"` : ''}`;
    await notify(plan, 'critical', 'db_rollback_waiting', `Database rollback of ${plan.environment} waits for approval${gateId ? ` (gate ${gateId})` : ''}`, `${subject}: nobody answered for ${Math.round(plan.escalateAfterMs / 60_000)} min. Approve: ${approve}${gateId ? ` (or reject-db-rollback); the approval must name gate ${gateId}` : ''}`, 'escalation');
  })();
  const verdict = await decided;
  await escalation;
  tracker.waiting(undefined);
  if (verdict !== 'approved') {
    gate.close(`the database rollback was ${verdict}`);
    return { decision: verdict, ...(gate.status.rejectedBy ? { by: gate.status.rejectedBy } : {}), ...(gate.status.rejectionComment ? { comment: gate.status.rejectionComment } : {}) };
  }
  const approvedBy = gate.status.approvedBy as string;
  if (opts.restoreBackup) {
    // Not committed yet: until the restore swaps the data in, a rejectDatabaseRollback still stops it.
    const r = await restoreBackup(plan, tracker, opts.version, opts.restoreBackup, opts.requestedBy, approvedBy, gate.status.decisions.find((d) => d.accepted && d.verdict === 'approve')?.comment, gate);
    if (gate.status.state === 'rejected') {
      return { decision: 'rejected', ...(gate.status.rejectedBy ? { by: gate.status.rejectedBy } : {}), ...(gate.status.rejectionComment ? { comment: gate.status.rejectionComment } : {}), ...r };
    }
    gate.close(r.restore?.error ? `the database restore failed: ${r.restore.error}` : 'the database restore ran');
    return { decision: 'approved', by: approvedBy, ...r };
  }
  gate.commit();
  let down: { before: number; after: number; reverted: string[] };
  try {
    down = await tracker.step('database-rollback', () =>
      run(DOCKER, 'migrateDown', `migrate down to ${opts.toLevel}`, { environment: plan.environment, version: opts.version, to: opts.toLevel }),
    (r) => `level ${r.before} → ${r.after}${r.reverted.length ? ` (reverted ${r.reverted.join(', ')})` : ''}, approved by ${gate.status.approvedBy}`);
  } catch (err) {
    if (isCancellation(err)) throw err;
    // Runs recorded before this change let the failure end the workflow there (no record, no notification); they
    // replay that way (a query of such a closed run, a reset of it).
    if (!patched('migrate-down-failure-recorded')) throw err;
    // The release still ends with its record and its notification, saying where the schema is now.
    gate.close(`the database rollback failed: ${message(err)}`);
    const level = await run(DOCKER, 'migrationLevel', 'migration level after the failed rollback', { environment: plan.environment, version: opts.version }).catch((e: unknown) => {
      if (isCancellation(e)) throw e; // cancelled while reading the level: the run ends cancelled, as before
      return undefined;
    });
    return { decision: 'approved', ...(gate.status.approvedBy ? { by: gate.status.approvedBy } : {}), error: message(err), ...(level !== undefined ? { level } : {}) };
  }
  gate.close('the database rollback ran');
  return { decision: 'approved', ...(gate.status.approvedBy ? { by: gate.status.approvedBy } : {}), level: down.after };
}

/**
 * Restores `backupId` (the deploy's pre-deploy backup) over the live database: the `restore` workflow as a child
 * under the data id — safety backup, staging database, row-count check, atomic swap — told that `approvedBy`
 * approved it at this release's gate (it trusts that only because its parent is the release workflow). Never
 * throws: a failed restore is returned with the run that failed and the live database's migration level after it.
 */
async function restoreBackup(plan: ReleasePlan, tracker: Tracker, version: string, backupId: string, requestedBy: string, approvedBy: string, comment: string | undefined, gate: ApprovalGate): Promise<Omit<DatabaseRollbackResult, 'decision' | 'by'>> {
  const env = plan.environment;
  const workflowId = dataWorkflowId(env);
  const info: NonNullable<DatabaseRollbackResult['restore']> = { workflowId, backupId };
  try {
    const done = await tracker.step('database-restore', async () => {
      // The data id may be held by a backup (the nightly one) or another restore: the approved restore waits for it
      // (as long as an approval may wait), and a rejection meanwhile still stops it.
      const start = () => startChild(restore, {
        workflowId,
        args: [{ environment: env, backupId, kind: 'database', requestedBy, releaseApproval: { by: approvedBy, ...(comment ? { comment } : {}) } }],
      });
      const waitUntil = Date.now() + plan.approvalTimeoutMs;
      let child: Awaited<ReturnType<typeof start>> | undefined;
      let attempt = 0;
      let backoff: boolean | undefined;
      while (!child) {
        try {
          child = await start();
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError) || Date.now() >= waitUntil) throw err;
          tracker.waiting(`the approved restore waits for ${workflowId} (a backup or restore of ${env}) to finish; rejectDatabaseRollback still stops it`);
          let rejected = false;
          backoff ??= patched('restore-wait-backoff');
          const delay = Math.min(busyRetryDelay(attempt++, backoff), backoff ? Math.max(1_000, waitUntil - Date.now()) : Infinity);
          await Promise.race([sleep(delay), gate.rejection().then(() => (rejected = true))]);
          tracker.waiting(undefined);
          if (rejected && gate.stopped()) return undefined; // rejected before it started: nothing restored
        }
      }
      info.runId = child.firstExecutionRunId;
      // A rejectDatabaseRollback after the approval goes on to the restore's own gate, which stops the restore if
      // it comes before the swap (the restore then fails RestoreRejected) and is too late after it.
      void gate.rejection().then((d) =>
        child.signal(restoreDecisions.rejectSignal, { by: d.by, ...(d.comment ? { comment: d.comment } : {}) }).catch(() => undefined),
      );
      return child.result();
    }, (r) => (r ? `restored from backup ${backupId} by ${workflowId} (run ${info.runId})${r.safetyBackupId ? `, safety backup ${r.safetyBackupId}` : ''}, approved by ${approvedBy}` : `not started: rejected by ${gate.status.rejectedBy} while it waited for ${workflowId}`));
    if (done) {
      gate.commit(); // swapped in: a rejection now is answered "too late"
      if (done.safetyBackupId) info.safetyBackupId = done.safetyBackupId;
    }
  } catch (err) {
    info.error = message(err);
    if (err instanceof WorkflowExecutionAlreadyStartedError) info.error = `a backup or restore of ${env} was still running under ${workflowId} after ${Math.round(plan.approvalTimeoutMs / 60_000)} min of waiting; the restore did not start`;
    if (failureType(err) === 'RestoreRejected' && gate.stopped()) delete info.error; // stopped by the rejection, nothing swapped in
  }
  let level: number | undefined;
  try {
    level = await run(DOCKER, 'migrationLevel', info.error ? 'migration level after the failed restore' : 'migration level after the restore', { environment: env, version });
  } catch (err) {
    tracker.skip('level-after-restore', `could not be read: ${message(err)}`);
  }
  return { restore: info, ...(level !== undefined ? { level } : {}) };
}
