/**
 * 恢复 — the guide's restore.sh as a workflow, with the checks it lacked: the backup must exist, hold the kind
 * and match its checksums before anything is touched; restoring over live data waits for an operator's
 * approval and first takes a safety backup; a database restore is judged by row counts against the manifest.
 */
import {
  ApplicationFailure,
  condition,
  defineQuery,
  defineSignal,
  executeChild,
  log,
  proxyActivities,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
} from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { RestorePlan, RestoreResult } from '../activities/backup.js';
import { parseBackupId, parseKind, parseTarget, type BackupKind } from '../backup/ids.js';
import type { CatalogueEntry } from '../backup/manifest.js';
import { BackupIdKey, EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../search-attributes.js';
import { backup, type BackupResult } from './backup.js';
import { requireEnvironmentName, requireObject, requireRequestedBy, validated } from './inputs.js';
import { longDataActivities } from './data-activities.js';

export interface RestoreInput {
  environment: string;
  backupId: string;
  kind: BackupKind;
  /** A new database name (database) or directory name under the temp dir (files); default: over live data. */
  target?: string;
  requestedBy?: string;
}

export interface ApprovalDecision {
  by: string;
  comment?: string;
}

export const approveRestoreSignal = defineSignal<[ApprovalDecision]>('approveRestore');
export const rejectRestoreSignal = defineSignal<[ApprovalDecision]>('rejectRestore');
export type RestoreState = 'checking' | 'awaiting-approval' | 'safety-backup' | 'restoring' | 'completed' | 'failed';
export interface RestoreStatus {
  state: RestoreState;
  plan?: RestorePlan;
  approvedBy?: string;
  safetyBackupId?: string;
}
export const restoreStatusQuery = defineQuery<RestoreStatus>('restoreStatus');

export interface RestoreOutcome extends RestoreResult {
  approvedBy?: string;
  safetyBackupId?: string;
  requestedBy: string;
}

const quick = proxyActivities<Activities>({
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
});

const long = longDataActivities;

/** A decision names who made it; a malformed one is logged and ignored rather than failing the restore. */
function decision(value: unknown): ApprovalDecision | undefined {
  try {
    const v = requireObject(value, 'approveRestore/rejectRestore');
    const by = requireRequestedBy(v.by, '');
    if (!by) return undefined;
    const comment = typeof v.comment === 'string' ? v.comment.slice(0, 500) : undefined;
    return { by, ...(comment ? { comment } : {}) };
  } catch {
    return undefined;
  }
}

export async function restore(input: RestoreInput): Promise<RestoreOutcome> {
  const args = requireObject(input, 'restore');
  const environment = requireEnvironmentName(args.environment);
  const requestedBy = requireRequestedBy(args.requestedBy, 'unknown');
  const { id: backupId } = validated(() => parseBackupId(args.backupId, environment));
  const kind = validated(() => parseKind(args.kind));
  const target = validated(() => parseTarget(kind, args.target));

  const status: RestoreStatus = { state: 'checking' };
  let approval: ApprovalDecision | undefined;
  let rejection: ApprovalDecision | undefined;
  setHandler(restoreStatusQuery, () => status);
  setHandler(approveRestoreSignal, (d) => {
    const ok = decision(d);
    if (!ok) log.warn('approveRestore ignored: it must name who approves, e.g. {"by":"alice"}', { received: d });
    else if (status.state === 'awaiting-approval' && !rejection) approval ??= ok;
  });
  setHandler(rejectRestoreSignal, (d) => {
    const ok = decision(d);
    if (!ok) log.warn('rejectRestore ignored: it must name who rejects, e.g. {"by":"alice"}', { received: d });
    else if (status.state === 'awaiting-approval' && !approval) rejection ??= ok;
  });
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'restore' },
    { key: RequestedByKey, value: requestedBy },
    { key: BackupIdKey, value: backupId },
  ]);

  const fail = (err: unknown): never => {
    status.state = 'failed';
    upsertSearchAttributes([{ key: OutcomeKey, value: 'failed' }]);
    throw err;
  };

  try {
    const plan = await quick.planRestore({ environment, backupId, kind, ...(target ? { target } : {}) });
    status.plan = plan;
    let safety: BackupResult | undefined;
    if (plan.live) {
      status.state = 'awaiting-approval';
      upsertSearchAttributes([{ key: OutcomeKey, value: 'awaiting-approval' }]);
      const decided = await condition(() => approval !== undefined || rejection !== undefined, plan.approvalTimeoutMs);
      if (!decided) throw ApplicationFailure.nonRetryable(`No approveRestore within ${plan.approvalTimeoutMs / 60_000} minutes; nothing was changed`, 'ApprovalTimeout');
      if (rejection) {
        throw ApplicationFailure.nonRetryable(`Restore rejected by ${rejection.by}${rejection.comment ? `: ${rejection.comment}` : ''}; nothing was changed`, 'RestoreRejected');
      }
      status.approvedBy = approval?.by;
      status.state = 'safety-backup';
      const { workflowId } = workflowInfo();
      safety = await executeChild(backup, {
        workflowId: `${workflowId}-safety`,
        args: [{ environment, kinds: [kind], reason: `safety backup before restoring ${backupId}`, requestedBy, verify: 'checksums', safetyFor: workflowId }],
      });
      status.safetyBackupId = safety.backupId;
    }
    status.state = 'restoring';
    const runToken = `${workflowInfo().workflowId}/${workflowInfo().runId}`;
    const result =
      kind === 'database'
        ? await long.restoreDatabase({ environment, backupId, runToken, ...(target ? { target } : {}) })
        : await long.restoreFiles({ environment, backupId, kind, runToken, ...(target ? { target } : {}) });
    status.state = 'completed';
    upsertSearchAttributes([{ key: OutcomeKey, value: 'success' }]);
    return { ...result, requestedBy, ...(status.approvedBy ? { approvedBy: status.approvedBy } : {}), ...(safety ? { safetyBackupId: safety.backupId } : {}) };
  } catch (err) {
    return fail(err);
  }
}

const catalogue = proxyLocalActivities<Activities>({ startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3 } });

/** The backup catalogue of an environment, newest first (what `llmchat-ops backups list` shows). */
export async function listBackups(input: { environment: string }): Promise<CatalogueEntry[]> {
  const environment = requireEnvironmentName(requireObject(input, 'listBackups').environment);
  return catalogue.listBackups({ environment });
}
