/**
 * What the backup workflows (backup, scheduledBackup, verifyBackup, restore, listBackups, importBackup) share with
 * their clients (the CLI, schedules, the release workflows): input schemas, the restore's approval gate and its
 * status query. Loaded in the workflow sandbox: no Node
 * modules. The field validators are the backup's own (activities/backup/ids.ts), whose messages say what was wrong.
 */
import { defineQuery } from '@temporalio/workflow';
import { z } from 'zod';
import type { RestorePlan } from '../../activities/backup/backup.js';
import { parseBackupId, parseKind, parseKinds, parseReason, parseTarget, type BackupKind } from '../../activities/backup/ids.js';
import { decisionDefinitions, type ApprovalStatus } from '../common/approval.js';
import { booleanField, checked, environmentField, requestedByField, show } from '../common/inputs.js';

/** The data workflow id of an environment (backups and restores never overlap). */
export { dataWorkflowId } from '../../common/names.js';

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

export const listBackupsInputSchema = z.strictObject({ environment: environmentField, requestedBy: requestedByField('unknown') });

/** The restore's decision names: signals and updates `approveRestore` / `rejectRestore`, query `restoreApproval`. */
export const RESTORE_GATE = { approve: 'approveRestore', reject: 'rejectRestore', query: 'restoreApproval', idPrefix: 'restore' } as const;
export const restoreDecisions = decisionDefinitions(RESTORE_GATE);

export type RestoreState = 'checking' | 'awaiting-approval' | 'safety-backup' | 'restoring' | 'completed' | 'failed';
export interface RestoreStatus {
  state: RestoreState;
  plan?: RestorePlan;
  approvedBy?: string;
  /** Set when the approval was given at a failed deploy's approveDatabaseRollback gate (the parent release run). */
  approvedIn?: ApprovedIn;
  safetyBackupId?: string;
  approval: ApprovalStatus;
}
export const restoreStatusQuery = defineQuery<RestoreStatus>('restoreStatus');

/** Where an approval given outside this restore was given: the release run and its gate. */
export interface ApprovedIn {
  workflowId: string;
  runId: string;
  gate: 'approveDatabaseRollback';
  comment?: string;
}
