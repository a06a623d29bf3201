/**
 * 恢复 — the guide's restore.sh as a workflow, with the checks it lacked: the backup must exist, hold the kind
 * and match its checksums before anything is touched; restoring over live data waits for an operator's
 * approval and first takes a safety backup; a database restore is judged by row counts against the manifest.
 */
import {
  allHandlersFinished,
  ApplicationFailure,
  CancellationScope,
  condition,
  executeChild,
  isCancellation,
  log,
  patched,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { BackupActivities } from '../../activities/backup/index.js';
import type { CommonActivities } from '../../activities/common/index.js';
import { DATA_HOST_QUEUE_PATCH, dataHostAware } from '../common/data-host-aware.js';
import type { RestoreResult } from '../../activities/backup/backup.js';
import type { BackupKind } from '../../activities/backup/ids.js';
import type { CatalogueEntry } from '../../activities/backup/manifest.js';
import { releaseWorkflowId } from '../../common/names.js';
import { BackupIdKey, EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../../common/search-attributes.js';
import { describeWritesLost, installApprovalGate, type ApprovalStatus, type GateDetails } from '../common/approval.js';
import { backup } from './backup.js';
import { listBackupsInputSchema, RESTORE_GATE, restoreInputSchema, restoreStatusQuery, type ApprovedIn, type RestoreInput, type RestoreState, type RestoreStatus } from './shared.js';
import { parseInput } from '../common/inputs.js';
import { longDataActivities } from './data-activities.js';
import { RESTORE_STEPS } from '../common/activity-options.js';
import { notifyAlerts } from '../common/notify-alerts.js';
import { DATA_CATALOGUE, LOCAL_CATALOGUE } from '../common/activity-options.js';

export type { RestoreInput } from './shared.js';

/** `requestedBy` when the input names nobody. */
const UNNAMED = 'unknown';



export interface RestoreOutcome extends RestoreResult {
  approvedBy?: string;
  approvedIn?: ApprovedIn;
  safetyBackupId?: string;
  requestedBy: string;
}

const quick = dataHostAware<BackupActivities & CommonActivities>(RESTORE_STEPS);

const long = longDataActivities;

/** Once the gate is open: a warning alert with its id, what it would approve, and the command that approves it. */
async function announceGate(environment: string, gate: ApprovalStatus): Promise<void> {
  await condition(() => gate.state !== 'not-open');
  if (gate.state !== 'open' || !gate.gateId) return;
  const env = await quick.describeEnvironment(environment);
  const approve = `LLMCHAT_OPS_OPERATOR=<another person> npx llmchat-ops approve ${environment} --gate ${gate.gateId}`;
  await notifyAlerts(`${workflowInfo().workflowId}/${workflowInfo().runId}/restore-gate`, env, [
    {
      severity: 'warning',
      type: 'restore_waiting',
      title: `Restore over live data in ${environment} waits for approval (gate ${gate.gateId})`,
      message: `${gate.subject ?? 'restore'}. Requested by ${gate.requestedBy}; until ${gate.deadline ?? 'the approval timeout'}. Approve: ${approve} (or reject); the approval must name gate ${gate.gateId}`,
      environment,
    },
  ]);
}

export async function restore(input: RestoreInput): Promise<RestoreOutcome> {
  const { environment, requestedBy, backupId, kind, target, releaseApproval } = parseInput('restore', restoreInputSchema, input);
  // An approval given at a deploy's approveDatabaseRollback gate, trusted only from the parent link (set by
  // Temporal from who started this run, not by the caller): the environment's release workflow, restoring the
  // database over live data. From anyone else (a client, the CLI, another workflow) the restore is refused.
  let approvedIn: ApprovedIn | undefined;
  if (releaseApproval) {
    const parent = workflowInfo().parent;
    if (!parent || parent.workflowId !== releaseWorkflowId(environment) || kind !== 'database' || target !== undefined) {
      throw ApplicationFailure.nonRetryable(
        `\`releaseApproval\` is accepted only from ${releaseWorkflowId(environment)} restoring its own pre-deploy database backup over live data; this run was started ${parent ? `by workflow ${parent.workflowId}` : 'directly, not by a workflow'}${kind !== 'database' || target !== undefined ? ` for ${kind}${target ? ` into ${target}` : ''}` : ''}. A restore over live data needs approveRestore from another person; nothing was changed`,
        'BadInput',
      );
    }
    approvedIn = { workflowId: parent.workflowId, runId: parent.runId, gate: 'approveDatabaseRollback', ...(releaseApproval.comment ? { comment: releaseApproval.comment } : {}) };
  }

  // Installed before anything awaits, so an approval sent the moment the restore starts is never lost.
  // A rejection forwarded by the deploy that approved this restore at its own gate may come before this run's
  // gate opens (pre-approved): it is held for it, so it still stops the restore.
  const gate = installApprovalGate(RESTORE_GATE, requestedBy, { holdEarlyRejections: releaseApproval !== undefined });
  const status: RestoreStatus = { state: 'checking', approval: gate.status };
  setHandler(restoreStatusQuery, () => status);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'restore' },
    { key: RequestedByKey, value: requestedBy },
    { key: BackupIdKey, value: backupId },
  ]);

  try {
    // The parent's id is not enough: any client can run a workflow of its own under the release id. The server
    // must say the parent is our running deploy, on our task queue (src/activities/common/temporal.ts).
    if (approvedIn) await quick.checkReleaseParent({ environment, parent: { workflowId: approvedIn.workflowId, runId: approvedIn.runId } });
    const plan = await quick.planRestore({ environment, backupId, kind, ...(target ? { target } : {}) });
    status.plan = plan;
    if (!plan.live) {
      gate.close(`this restore goes into the new target ${plan.target} and needs no approval`);
      status.state = 'restoring';
      const result = await restoreStep(environment, backupId, kind, target);
      return finish({ ...result, requestedBy });
    }

    if (requestedBy === UNNAMED && !plan.allowSelfApproval) {
      // Four eyes need two names: with nobody named as requester, the requester could approve their own restore.
      throw ApplicationFailure.nonRetryable(
        'A restore over live data must name who requests it (`requestedBy`), so that another person can approve it (four eyes); nothing was changed',
        'BadInput',
      );
    }
    // What the approval would give away, shown at the gate before anyone decides: the backup, when it was taken,
    // and (database) the rows written or deleted since — live row counts against the manifest's.
    let details: GateDetails | undefined;
    let loss = '';
    if (gate.consent) {
      const preview = await quick.previewRestore({ environment, backupId, kind });
      details = { backup: { id: backupId, kind, takenAt: preview.takenAt, target: plan.target, ...(preview.writesLost ? { writesLost: preview.writesLost } : {}) } };
      loss = ` (backup taken ${preview.takenAt}): ${kind === 'database' ? describeWritesLost(preview.writesLost) : `every change made to ${plan.target} since the backup is LOST`}`;
    }
    if (approvedIn && releaseApproval) {
      // Approved (four eyes) at the release's gate; this run's own gate has nothing left to decide.
      status.approvedBy = releaseApproval.by;
      status.approvedIn = approvedIn;
      log.info(`restore of ${backupId} over ${plan.target} approved by ${releaseApproval.by} at approveDatabaseRollback of ${approvedIn.workflowId} (run ${approvedIn.runId})`);
      // Approved there, but not past the point of no return: a rejectRestore here (the deploy forwards its own
      // rejectDatabaseRollback) still stops the restore until the data is swapped in.
      gate.preApproved({ subject: `restore ${kind} of backup ${backupId} over ${plan.target} (approved by ${releaseApproval.by} at approveDatabaseRollback of the deploy ${approvedIn.workflowId} that started this restore)${loss}`, ...(details ? { details } : {}), by: releaseApproval.by });
    } else {
      status.state = 'awaiting-approval';
      upsertSearchAttributes([{ key: OutcomeKey, value: 'awaiting-approval' }]);
      // The approver learns of the gate from an alert that names it and says what it would approve (as the
      // database-rollback gate's escalation does); a failed delivery is logged, it never holds the gate.
      if (patched('restore-gate-alert')) void announceGate(environment, gate.status).catch((err) => log.warn('restore gate alert not delivered', { error: String(err) }));
      const verdict = await gate.decide({
        subject: `restore ${kind} of backup ${backupId} over ${plan.target}${loss}`,
        ...(details ? { details } : {}),
        allowSelfApproval: plan.allowSelfApproval === true, // absent in plans recorded before it existed
        timeoutMs: plan.approvalTimeoutMs,
      });
      if (verdict === 'timed-out') {
        throw ApplicationFailure.nonRetryable(`No approveRestore within ${Math.round(plan.approvalTimeoutMs / 1000)} s; nothing was changed`, 'ApprovalTimeout');
      }
      if (verdict === 'rejected') throw rejected(gate.status);
      status.approvedBy = gate.status.approvedBy;
    }

    // Approved. Until the restore has swapped the data in, a rejection still stops it: the work runs in a scope
    // that the rejection cancels (the safety backup child is cancelled, pg_restore killed, staging removed).
    const work = new CancellationScope();
    void gate.rejection().then(() => work.cancel());
    let result: RestoreResult;
    try {
      result = await work.run(async () => {
        status.state = 'safety-backup';
        const safety = await executeChild(backup, {
          workflowId: `${workflowInfo().workflowId}-safety`,
          args: [{ environment, kinds: [kind], reason: `safety backup before restoring ${backupId}`, requestedBy, verify: 'checksums' }],
          // No safetyFor here: the backup workflow derives it from its parent, so no caller can set it.
        });
        status.safetyBackupId = safety.backupId;
        status.state = 'restoring';
        return restoreStep(environment, backupId, kind, undefined);
      });
    } catch (err) {
      // Stopped by a late rejection (accepted now), or by a cancel of the whole workflow (rethrown as it is). A
      // rejected safety backup may also end in another error than a cancellation (its worker died and the dump
      // timed out while being cancelled): still before anything live was touched, so the rejection stands.
      if ((isCancellation(err) || (status.state as RestoreState) === 'safety-backup') && gate.stopped()) throw rejected(gate.status);
      throw err;
    }
    gate.commit(); // the data is swapped in: a rejection now is answered "too late"
    return finish({ ...result, requestedBy, ...(status.approvedBy ? { approvedBy: status.approvedBy } : {}), ...(approvedIn ? { approvedIn } : {}), ...(status.safetyBackupId ? { safetyBackupId: status.safetyBackupId } : {}) });
  } catch (err) {
    status.state = 'failed';
    const cancelled = isCancellation(err) && gate.status.state !== 'rejected';
    upsertSearchAttributes([{ key: OutcomeKey, value: gate.status.state === 'rejected' ? 'rejected' : cancelled ? 'cancelled' : 'failed' }]);
    gate.close(cancelled ? 'the restore was cancelled' : `the restore failed: ${err instanceof Error ? err.message : String(err)}`);
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
    throw err;
  }

  async function finish(outcome: RestoreOutcome): Promise<RestoreOutcome> {
    status.state = 'completed';
    upsertSearchAttributes([{ key: OutcomeKey, value: 'success' }]);
    gate.close('the restore has completed');
    // Not cancellable: a cancel that arrives once the data is in place must not turn a done restore into a
    // "cancelled" one whose result is lost.
    await CancellationScope.nonCancellable(() => condition(allHandlersFinished));
    return outcome;
  }
}

function rejected(approval: ApprovalStatus): ApplicationFailure {
  const why = approval.rejectionComment ? `: ${approval.rejectionComment}` : '';
  return ApplicationFailure.nonRetryable(`Restore rejected by ${approval.rejectedBy}${why}; nothing was changed`, 'RestoreRejected');
}

async function restoreStep(environment: string, backupId: string, kind: BackupKind, target: string | undefined): Promise<RestoreResult> {
  const runToken = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
  return kind === 'database'
    ? long.restoreDatabase({ environment, backupId, runToken, ...(target ? { target } : {}) })
    : long.restoreFiles({ environment, backupId, kind, runToken, ...(target ? { target } : {}) });
}

const catalogue = proxyLocalActivities<BackupActivities & CommonActivities>(LOCAL_CATALOGUE);
const dataCatalogue = dataHostAware<BackupActivities>(DATA_CATALOGUE);

/** The backup catalogue of an environment, newest first (what `llmchat-ops backups list` shows). */
export async function listBackups(input: { environment: string }): Promise<CatalogueEntry[]> {
  const { environment } = parseInput('listBackups', listBackupsInputSchema, input);
  // The catalogue is on the data host's disk: read there (a local activity ran on whichever worker took the task).
  if (patched(DATA_HOST_QUEUE_PATCH)) return dataCatalogue.listBackups({ environment });
  return catalogue.listBackups({ environment });
}
