/** Section `maintenance`: the weekly database maintenance (purge, reindex) and the optimization (ANALYZE, indexes). */
import { z } from 'zod';

import { days, durationIn, durationMs } from './duration.js';
import { identifier } from './fields.js';

const indexSpec = z.strictObject({ name: identifier, table: identifier, columns: z.array(identifier).min(1).max(8) });
/** The guide's 数据库优化 indexes. */
const GUIDE_INDEXES = [
  { name: 'idx_messages_session_created', table: 'messages', columns: ['session_id', 'created_at'] },
  { name: 'idx_sessions_user_updated', table: 'chat_sessions', columns: ['user_id', 'updated_at'] },
  { name: 'idx_agents_provider_active', table: 'agents', columns: ['provider', 'is_active'] },
];

export const maintenanceSchema = z.strictObject({
  /** Sessions whose updated_at is older than this are purged (the guide: 30 days). */
  sessionIdleDays: days(30),
  /** Messages older than this whose session no longer exists are purged (the guide: 90 days). */
  orphanMessageDays: days(90),
  /** Target duration of one purge transaction, in ms or as a duration like "40ms"; the batch size adapts to it (the issue: ≤ 100 ms). */
  batchTargetMs: durationIn('ms', z.int().min(5).max(1000)).default(40),
  /** Rows examined by the first batch (then adapted between 100 and 100 000). */
  initialBatchRows: z.int().min(100).max(100_000).default(2000),
  /** Indexes rebuilt with REINDEX INDEX CONCURRENTLY (the guide's two). */
  reindex: z.array(identifier).default(['idx_messages_created_at', 'idx_sessions_user_id']),
  /** How long maintenance/optimization waits for a running backup, restore or deploy of the environment before it skips ("2h"). */
  maxWait: durationMs('2h'),
  /**
   * lock_timeout of REINDEX / CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, ANALYZE and VACUUM ("1s", or
   * "300ms"; 10ms … 10m): one that cannot get its lock in this time steps out of the lock queue (where the app's
   * statements would wait behind it) and is tried again later.
   */
  lockTimeout: durationMs('1s', { min: '10ms', max: '10m' }),
  /** How long a maintenance statement keeps retrying after lock timeouts before its step fails ("30m"). */
  lockRetryFor: durationMs('30m'),
  /** Tables of the optimization's ANALYZE / VACUUM ANALYZE (the guide's three). */
  optimizeTables: z.array(identifier).default(['messages', 'chat_sessions', 'agents']),
  /** Indexes the optimization creates concurrently if missing (the guide's three). */
  optimizeIndexes: z.array(indexSpec).default(GUIDE_INDEXES),
});
export type MaintenanceSettings = z.infer<typeof maintenanceSchema>;
