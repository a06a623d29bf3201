/**
 * 应用程序清理 — the guide's weekly-cleanup.sh as a workflow: logs older than 7 days, temp files `llmchat-*`
 * older than a day, uploads older than 30 days (never following a symlink, never leaving a configured root,
 * never deleting a file still open for writing); the weekly database backup (the `backup` workflow as a child,
 * under the environment's data id); backup retention (src/activities/backup/retention.ts); OS package upgrades only when
 * enabled. A dry run deletes nothing, takes no backup and upgrades nothing: it lists what would go.
 */
import { ChildWorkflowFailure, executeChild, proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { MaintenanceActivities } from '../../activities/maintenance/index.js';
import { dataHostAware } from '../common/data-host-aware.js';
import type { BackupActivities } from '../../activities/backup/index.js';
import type { OsUpgradeResult } from '../../activities/maintenance/host-cleanup.js';
import type { RetentionPlan } from '../../activities/backup/retention.js';
import type { CleanupResult } from '../../activities/maintenance/cleanup.js';
import { dataWorkflowId } from '../../common/names.js';
import { BackupIdKey, EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../../common/search-attributes.js';
import { backup } from '../backup/backup.js';
import { parseInput } from '../common/inputs.js';
import { weeklyCleanupInputSchema } from './shared.js';
import { CLEANUP_FILES, OS_UPGRADES, QUICK } from '../common/activity-options.js';

export interface WeeklyCleanupInput {
  environment: string;
  /** List what would be deleted; delete nothing, back up nothing, upgrade nothing. Default false. */
  dryRun?: boolean;
  requestedBy?: string;
}

export interface CleanupReport {
  environment: string;
  dryRun: boolean;
  files: CleanupResult[];
  /** Files deleted (or that would be) and their bytes, over all categories. */
  totals: { files: number; bytes: number };
  backup: { status: 'created' | 'skipped' | 'failed' | 'disabled' | 'dry-run'; backupId?: string; detail?: string };
  retention: RetentionPlan;
  os: OsUpgradeResult;
}

const quick = dataHostAware<MaintenanceActivities & BackupActivities>(QUICK);

const files = dataHostAware<MaintenanceActivities & BackupActivities>(CLEANUP_FILES);

const os = proxyActivities<MaintenanceActivities & BackupActivities>(OS_UPGRADES);

export async function weeklyCleanup(input: WeeklyCleanupInput): Promise<CleanupReport> {
  const { environment, requestedBy, dryRun } = parseInput('weeklyCleanup', weeklyCleanupInputSchema, input);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'weeklyCleanup' },
    { key: RequestedByKey, value: requestedBy },
  ]);
  const plan = await quick.cleanupPlan(environment);

  // Steps 1–3. One after another: an unsafe root fails the run before the next category is touched.
  const results: CleanupResult[] = [];
  for (const category of ['logs', 'temp', 'uploads'] as const) results.push(await files.cleanupFiles({ environment, category, dryRun }));

  // Step 4: the weekly database backup, as the backup workflow itself (verified like any other backup).
  let backupOutcome: CleanupReport['backup'];
  if (dryRun) backupOutcome = { status: 'dry-run' };
  else if (!plan.backup) backupOutcome = { status: 'disabled', detail: 'cleanup.backup is off' };
  else {
    try {
      const r = await executeChild(backup, {
        workflowId: dataWorkflowId(environment),
        args: [{ environment, kinds: ['database'], reason: 'weekly cleanup backup', requestedBy }],
      });
      backupOutcome = { status: 'created', backupId: r.backupId };
      upsertSearchAttributes([{ key: BackupIdKey, value: r.backupId }]);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) {
        backupOutcome = { status: 'skipped', detail: `a backup or restore of ${environment} is already running (${dataWorkflowId(environment)})` };
      } else if (err instanceof ChildWorkflowFailure) {
        // A failed weekly backup is reported (and the run's outcome says so); retention still runs: it never removes
        // the newest verified backup, so a failed one cannot cost the last good one.
        backupOutcome = { status: 'failed', detail: err.cause?.message ?? err.message };
      } else throw err;
    }
  }

  // Step 5: retention by the backup module's rules (never the newest verified backup, never foreign dirs).
  const retention: RetentionPlan = dryRun ? await quick.planBackupRetention({ environment }) : await quick.pruneBackups({ environment, activeIds: [] });

  // Step 6: OS packages.
  const osResult = await os.osPackageUpgrades({ dryRun });

  const totals = { files: results.reduce((n, r) => n + r.count, 0), bytes: results.reduce((n, r) => n + r.bytes, 0) };
  upsertSearchAttributes([{ key: OutcomeKey, value: dryRun ? 'dry-run' : backupOutcome.status === 'failed' ? 'failed' : 'success' }]);
  return { environment, dryRun, files: results, totals, backup: backupOutcome, retention, os: osResult };
}
