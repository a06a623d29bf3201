/**
 * 数据库维护 — the guide's weekly-maintenance.sql as a workflow: ANALYZE; purge idle sessions and old orphan
 * messages in short resumable batches (never one long DELETE); remove the leftovers of an interrupted concurrent
 * reindex, then REINDEX INDEX CONCURRENTLY; report table sizes, live and dead tuples, and what was purged.
 * It never runs beside a backup, restore or deploy of the same environment: it waits for them up to
 * `maintenance.maxWait`, then skips, and says which in its result.
 */
import { proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { MaintenanceActivities } from '../../activities/maintenance/index.js';
import type { PurgeResult } from '../../activities/maintenance/purge.js';
import type { ReindexOutcome, TableStats } from '../../activities/maintenance/indexes.js';
import { EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../../common/search-attributes.js';
import { waitForExclusiveWindow, type ExclusionOutcome } from '../common/exclusion.js';
import { parseInput } from '../common/inputs.js';
import { weeklyDatabaseMaintenanceInputSchema } from './shared.js';
import { LONG_DATABASE, QUICK } from '../common/activity-options.js';

export interface WeeklyDatabaseMaintenanceInput {
  environment: string;
  requestedBy?: string;
}

export interface MaintenanceReport {
  environment: string;
  outcome: 'success' | 'skipped';
  exclusion: ExclusionOutcome;
  startedAt: string;
  analyze?: { durationMs: number };
  purge?: PurgeResult;
  reindex?: ReindexOutcome;
  tables?: TableStats[];
}

const DAY_MS = 86_400_000;

const quick = proxyActivities<MaintenanceActivities>(QUICK);

/**
 * Long database steps heartbeat every second; a dead worker is noticed within 10 s and the step restarts on
 * another worker — the purge from its committed cursor. On cancellation the workflow waits for the connection
 * to be closed (which aborts the running statement).
 */
const long = proxyActivities<MaintenanceActivities>(LONG_DATABASE);

export async function weeklyDatabaseMaintenance(input: WeeklyDatabaseMaintenanceInput): Promise<MaintenanceReport> {
  const { environment, requestedBy } = parseInput('weeklyDatabaseMaintenance', weeklyDatabaseMaintenanceInputSchema, input);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'weeklyDatabaseMaintenance' },
    { key: RequestedByKey, value: requestedBy },
  ]);
  const startedAt = new Date().toISOString();
  const plan = await quick.maintenancePlan(environment);

  const exclusion = await waitForExclusiveWindow(environment, plan.maxWaitMs);
  if (exclusion.decision === 'skipped') {
    upsertSearchAttributes([{ key: OutcomeKey, value: 'skipped' }]);
    return { environment, outcome: 'skipped', exclusion, startedAt };
  }

  const analyze = await long.analyzeDatabase({ environment });

  // The guide's NOW() - INTERVAL, fixed once for the whole run (and every retry of it).
  const now = Date.now();
  const { workflowId, runId } = workflowInfo();
  const purge = await long.purgeExpiredRows({
    environment,
    runKey: `${workflowId}/${runId}`,
    sessionCutoff: new Date(now - plan.sessionIdleDays * DAY_MS).toISOString(),
    messageCutoff: new Date(now - plan.orphanMessageDays * DAY_MS).toISOString(),
  });

  const reindex = await long.reindexIndexes({ environment });
  const tables = await long.tableReport({ environment });

  upsertSearchAttributes([{ key: OutcomeKey, value: 'success' }]);
  return { environment, outcome: 'success', exclusion, startedAt, analyze: { durationMs: analyze.durationMs }, purge, reindex, tables };
}
