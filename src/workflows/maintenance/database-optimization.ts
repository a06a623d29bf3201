/**
 * 数据库优化 — the guide's database-optimization.sql as a workflow: measure; CREATE INDEX CONCURRENTLY IF NOT
 * EXISTS for the guide's indexes (an invalid index of the same name, left by an interrupted earlier run, is
 * dropped and built again — IF NOT EXISTS alone would keep it forever); ANALYZE; VACUUM ANALYZE (never FULL);
 * measure again. The result is a before/after report of dead tuples, sizes and index usage. Like the weekly
 * maintenance it waits for, or skips beside, a backup, restore or deploy of the environment.
 */
import { patched, proxyActivities, upsertSearchAttributes } from '@temporalio/workflow';
import type { MaintenanceActivities } from '../../activities/maintenance/index.js';
import type { IndexCreation, InvalidIndex, TableStats } from '../../activities/maintenance/indexes.js';
import { EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../../common/search-attributes.js';
import { waitForExclusiveWindow, type ExclusionOutcome } from '../common/exclusion.js';
import { parseInput } from '../common/inputs.js';
import { databaseOptimizationInputSchema } from './shared.js';
import { LONG_DATABASE, QUICK } from '../common/activity-options.js';

export interface DatabaseOptimizationInput {
  environment: string;
  requestedBy?: string;
}

export interface TableChange {
  table: string;
  deadTuplesBefore: number;
  deadTuplesAfter: number;
  bytesBefore: number;
  bytesAfter: number;
}

export interface OptimizationReport {
  environment: string;
  outcome: 'success' | 'skipped';
  exclusion: ExclusionOutcome;
  /** Every invalid index found before the builds (the `_ccnew`/`_ccold` leftovers dropped, the others reported). */
  invalidIndexes?: InvalidIndex[];
  indexes?: IndexCreation[];
  analyzed?: string[];
  vacuumed?: string[];
  before?: TableStats[];
  after?: TableStats[];
  changes?: TableChange[];
}

const quick = proxyActivities<MaintenanceActivities>(QUICK);

const long = proxyActivities<MaintenanceActivities>(LONG_DATABASE);

export async function databaseOptimization(input: DatabaseOptimizationInput): Promise<OptimizationReport> {
  const { environment, requestedBy } = parseInput('databaseOptimization', databaseOptimizationInputSchema, input);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'databaseOptimization' },
    { key: RequestedByKey, value: requestedBy },
  ]);
  const plan = await quick.maintenancePlan(environment);
  const exclusion = await waitForExclusiveWindow(environment, plan.maxWaitMs);
  if (exclusion.decision === 'skipped') {
    upsertSearchAttributes([{ key: OutcomeKey, value: 'skipped' }]);
    return { environment, outcome: 'skipped', exclusion };
  }

  const before = await long.tableReport({ environment });
  // Runs recorded before this step existed replay without it.
  const leftovers = patched('optimization-drops-index-leftovers') ? await long.dropIndexLeftovers({ environment }) : undefined;
  const indexes = await long.createOptimizationIndexes({ environment });
  const tables = await quick.optimizationTables({ environment });
  const analyzed = await long.analyzeDatabase({ environment, tables });
  const vacuumed = await long.vacuumAnalyze({ environment });
  const after = await long.tableReport({ environment });

  const changes = before.map((b) => {
    const a = after.find((x) => x.table === b.table);
    return { table: b.table, deadTuplesBefore: b.deadTuples, deadTuplesAfter: a?.deadTuples ?? 0, bytesBefore: b.totalBytes, bytesAfter: a?.totalBytes ?? 0 };
  });
  upsertSearchAttributes([{ key: OutcomeKey, value: 'success' }]);
  // An invalid index of the optimization's own was built again above: the report says so.
  const invalidIndexes = leftovers?.invalid.map((i) => (i.action === 'reported' && indexes.some((x) => x.name === i.name && x.status === 'recreated-invalid') ? { ...i, why: `${i.why.split(':')[0]}: dropped and built again by this run` } : i));
  return { environment, outcome: 'success', exclusion, ...(invalidIndexes ? { invalidIndexes } : {}), indexes, analyzed: analyzed.tables === 'all' ? tables : analyzed.tables, vacuumed: vacuumed.tables, before, after, changes };
}
