/**
 * PostgreSQL activities of the weekly maintenance and the database optimization: ANALYZE, the batched purge,
 * REINDEX / CREATE INDEX CONCURRENTLY with removal of invalid leftovers, VACUUM ANALYZE, and table reports.
 * Each activity uses one connection with an error handler (a dropped connection fails the activity, never the
 * worker), heartbeats while it works and closes the connection when Temporal cancels it.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import pg from 'pg';
import { getEnvironment, resolveSecret, type EnvironmentConfig, type OpsConfig } from '../../common/config/index.js';
import { purgeExpired, pruneProgress, type PhaseProgress, type PurgeResult } from './purge.js';
import { dropInvalidLeftovers, reindexConcurrently, type LeftoverCleanup, type LockRunner, type ReindexOutcome } from './indexes.js';
import { createIndexes, tableStats, type IndexCreation, type TableStats } from './indexes.js';
import { LockNotAcquiredError, retryOnLockTimeout, setLockTimeout } from './lock-retry.js';
import type { DatabasePerformance } from '../report/analysis.js';
import { asFailure } from '../common/failures.js';
import { withDataLock } from '../../common/postgres/data-lock.js';

const HEARTBEAT_MS = 1000;

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

async function connect(env: EnvironmentConfig): Promise<pg.Client> {
  const client = new pg.Client({
    host: env.database.host,
    port: env.database.port,
    user: env.database.user,
    password: resolveSecret(env.database.passwordEnv),
    database: env.database.name,
    connectionTimeoutMillis: 10_000,
    application_name: 'llmchat-ops-maintenance',
  });
  // An idle connection that drops emits 'error'; queries in flight reject on their own. Never crash the worker.
  client.on('error', () => {});
  await client.connect();
  return client;
}

/**
 * Runs `fn` on a fresh connection under the environment's data lock (shared), heartbeating `details()` every second. On cancellation the connection is
 * closed, which makes the server abort the running statement; the activity then reports the cancellation.
 */
async function onConnection<T>(env: EnvironmentConfig, details: () => unknown, fn: (c: pg.Client, signal?: AbortSignal) => Promise<T>): Promise<T> {
  const ctx = activityContext();
  // Work that changes the data (deletes, index builds, vacuum) holds the environment's data lock shared: backups
  // (shared too) run beside it, a restore replacing the data (exclusive) does not — whichever comes second is
  // refused, and here that refusal is retried with backoff by Temporal.
  const holder = `${ctx?.info.activityType ?? 'maintenance'} ${ctx?.info.workflowExecution?.workflowId ?? ''}`.trim();
  return withDataLock(env, { mode: 'shared', holder }, () => onOwnConnection(env, details, fn));
}

async function onOwnConnection<T>(env: EnvironmentConfig, details: () => unknown, fn: (c: pg.Client, signal?: AbortSignal) => Promise<T>): Promise<T> {
  const ctx = activityContext();
  const client = await connect(env);
  const beat = ctx && !ctx.info.isLocal ? setInterval(() => ctx.heartbeat(details()), HEARTBEAT_MS) : undefined;
  const onCancel = () => void client.end().catch(() => {});
  ctx?.cancellationSignal.addEventListener('abort', onCancel);
  try {
    // A cancellation that landed while we connected has fired already: the listener above will never run.
    ctx?.cancellationSignal.throwIfAborted();
    return await fn(client, ctx?.cancellationSignal);
  } catch (err) {
    if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    throw err;
  } finally {
    if (beat) clearInterval(beat);
    ctx?.cancellationSignal.removeEventListener('abort', onCancel);
    await client.end().catch(() => {});
  }
}

function guarded<T>(fn: () => Promise<T>): Promise<T> {
  return fn().catch((err: unknown) => {
    // Retrying the whole step would only queue up again for another lockRetryFor: the step fails, saying why.
    if (err instanceof LockNotAcquiredError) throw ApplicationFailure.nonRetryable(err.message, 'LockNotAcquired');
    throw asFailure(err);
  });
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/;

export interface PurgeInput {
  environment: string;
  /** Identifies the run's progress rows: the workflow id and run id. */
  runKey: string;
  sessionCutoff: string;
  messageCutoff: string;
}

export interface MaintenancePlan {
  sessionIdleDays: number;
  orphanMessageDays: number;
  maxWaitMs: number;
  reindex: string[];
}

export function createPostgresMaintenanceActivities(cfg: OpsConfig) {
  const env = (name: string) => getEnvironment(cfg, name);
  const m = cfg.maintenance;
  /**
   * Sets the connection's lock_timeout (maintenance.lockTimeout) and returns the runner that retries a statement
   * after each lock timeout for up to maintenance.lockRetryFor (src/activities/maintenance/lock-retry.ts): maintenance never
   * waits in the lock queue in front of the app's statements.
   */
  const lockRunner = async (c: pg.Client, signal?: AbortSignal, onRetry?: (what: string, n: number) => void): Promise<LockRunner> => {
    await setLockTimeout(c, m.lockTimeout);
    const policy = { lockTimeoutMs: m.lockTimeout, retryForMs: m.lockRetryFor, ...(signal ? { signal } : {}), ...(onRetry ? { onRetry } : {}) };
    return (what, attempt, cleanUp) => retryOnLockTimeout(c, what, policy, attempt, cleanUp);
  };
  return {
    /** The maintenance settings a workflow needs (windows, wait limit); validates the environment name. */
    async maintenancePlan(environment: string): Promise<MaintenancePlan> {
      return guarded(async () => {
        env(environment);
        return { sessionIdleDays: m.sessionIdleDays, orphanMessageDays: m.orphanMessageDays, maxWaitMs: m.maxWait, reindex: m.reindex };
      });
    },

    /** The guide's step 1 (or 3 of the optimization): ANALYZE of the whole database, or of the given tables. */
    async analyzeDatabase(input: { environment: string; tables?: string[] }): Promise<{ durationMs: number; tables: string[] | 'all' }> {
      return guarded(() =>
        onConnection(env(input.environment), () => ({ step: 'analyze' }), async (c, signal) => {
          const t0 = Date.now();
          const run = await lockRunner(c, signal);
          if (!input.tables) await run('ANALYZE', () => c.query('ANALYZE'));
          else for (const t of input.tables) await run(`ANALYZE ${t}`, () => c.query(`ANALYZE ${pg.escapeIdentifier(t)}`));
          return { durationMs: Date.now() - t0, tables: input.tables ?? 'all' };
        }),
      );
    },

    /** Steps 2 and 3 in short, resumable transactions (src/activities/maintenance/purge.ts). */
    async purgeExpiredRows(input: PurgeInput): Promise<PurgeResult> {
      return guarded(async () => {
        if (!ISO.test(input.sessionCutoff) || !ISO.test(input.messageCutoff)) {
          throw ApplicationFailure.nonRetryable(`Expected cut-offs as ISO 8601 UTC instants, got ${JSON.stringify([input.sessionCutoff, input.messageCutoff])}`, 'BadInput');
        }
        if (!/^[\w.:/@-]{1,300}$/.test(input.runKey)) throw ApplicationFailure.nonRetryable(`Bad purge run key ${JSON.stringify(input.runKey)}`, 'BadInput');
        let latest: PhaseProgress | undefined;
        return onConnection(env(input.environment), () => ({ step: 'purge', progress: latest }), async (c, signal) => {
          await pruneProgress(c);
          return purgeExpired(c, input.runKey, { sessionCutoff: input.sessionCutoff, messageCutoff: input.messageCutoff }, {
            targetMs: m.batchTargetMs,
            initialRows: m.initialBatchRows,
            vacuumLockTimeoutMs: m.lockTimeout,
            onBatch: (p) => (latest = p),
            ...(signal ? { signal } : {}),
          });
        });
      });
    },

    /**
     * Step 4: reports every invalid index and drops every `_ccnew`/`_ccold` leftover (of any index), then REINDEX
     * INDEX CONCURRENTLY each configured index — all with the lock timeout and retry.
     */
    async reindexIndexes(input: { environment: string }): Promise<ReindexOutcome> {
      return guarded(() => {
        let step = 'leftovers';
        let lockRetries = 0;
        return onConnection(env(input.environment), () => ({ step, lockRetries }), async (c, signal) => {
          const run = await lockRunner(c, signal, () => lockRetries++);
          const leftovers = await dropInvalidLeftovers(c, async (q, name) => void (await run(`DROP INDEX CONCURRENTLY ${name}`, () => c.query(`DROP INDEX CONCURRENTLY IF EXISTS ${q}`))));
          step = 'reindex';
          const indexes = await reindexConcurrently(c, m.reindex, (name) => (step = `reindex ${name}`), run);
          return { removedLeftovers: leftovers.removed, invalidIndexes: leftovers.invalid, indexes };
        });
      });
    },

    /** The optimization's first step: every invalid index reported, every `_ccnew`/`_ccold` leftover dropped. */
    async dropIndexLeftovers(input: { environment: string }): Promise<LeftoverCleanup> {
      return guarded(() =>
        onConnection(env(input.environment), () => ({ step: 'leftovers' }), async (c, signal) => {
          const run = await lockRunner(c, signal);
          return dropInvalidLeftovers(c, async (q, name) => void (await run(`DROP INDEX CONCURRENTLY ${name}`, () => c.query(`DROP INDEX CONCURRENTLY IF EXISTS ${q}`))));
        }),
      );
    },

    /** Steps 5 and 6: size, live and dead tuples, index usage of every user table. */
    async tableReport(input: { environment: string }): Promise<TableStats[]> {
      return guarded(() => onOwnConnection(env(input.environment), () => ({ step: 'report' }), (c) => tableStats(c)));
    },

    /** The optimization's step 1: CREATE INDEX CONCURRENTLY IF NOT EXISTS, after dropping an invalid index of the same name. */
    async createOptimizationIndexes(input: { environment: string }): Promise<IndexCreation[]> {
      return guarded(() => onConnection(env(input.environment), () => ({ step: 'create indexes' }), async (c, signal) => createIndexes(c, m.optimizeIndexes, await lockRunner(c, signal))));
    },

    /** The optimization's step 5: VACUUM ANALYZE of the configured tables (never VACUUM FULL: that locks the table). */
    async vacuumAnalyze(input: { environment: string }): Promise<{ tables: string[]; durationMs: number; lockRetries?: number }> {
      return guarded(() =>
        onConnection(env(input.environment), () => ({ step: 'vacuum' }), async (c, signal) => {
          const t0 = Date.now();
          const present = await existingTables(c, m.optimizeTables);
          const run = await lockRunner(c, signal);
          let lockRetries = 0;
          for (const t of present) lockRetries += (await run(`VACUUM (ANALYZE) ${t}`, () => c.query(`VACUUM (ANALYZE) ${pg.escapeIdentifier(t)}`))).retries;
          return { tables: present, durationMs: Date.now() - t0, ...(lockRetries ? { lockRetries } : {}) };
        }),
      );
    },

    /** Query times from pg_stat_statements (when the extension is installed in the database) and open connections. */
    async databasePerformance(input: { environment: string }): Promise<DatabasePerformance> {
      return guarded(() =>
        onOwnConnection(env(input.environment), () => ({ step: 'database performance' }), async (c) => {
          const connections = Number((await c.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database()`)).rows[0].n);
          const ext = await c.query(`SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'`);
          if (ext.rowCount === 0) return { connections, statements: { enabled: false, reason: 'the pg_stat_statements extension is not installed in this database' } };
          const slowQueryMs = cfg.report.slowQueryMs;
          try {
            const avg = await c.query(`SELECT coalesce(sum(total_exec_time) / nullif(sum(calls), 0), 0) AS avg, count(*) FILTER (WHERE mean_exec_time > $1) AS slow FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, [slowQueryMs]);
            const top = await c.query(`SELECT query, calls, mean_exec_time, total_exec_time FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) ORDER BY mean_exec_time DESC LIMIT 5`);
            return {
              connections,
              statements: {
                enabled: true,
                slowQueryMs,
                averageMs: Number(avg.rows[0].avg),
                slowQueries: Number(avg.rows[0].slow),
                slowest: top.rows.map((r) => ({ query: String(r.query).slice(0, 500), calls: Number(r.calls), meanMs: Number(r.mean_exec_time), totalMs: Number(r.total_exec_time) })),
              },
            };
          } catch (err) {
            // Installed but not preloaded (shared_preload_libraries): the view errors out.
            return { connections, statements: { enabled: false, reason: `pg_stat_statements is installed but not readable: ${(err as Error).message}` } };
          }
        }),
      );
    },

    /** The optimization's ANALYZE of its tables (those that exist). */
    async optimizationTables(input: { environment: string }): Promise<string[]> {
      return guarded(() => onOwnConnection(env(input.environment), () => ({}), (c) => existingTables(c, m.optimizeTables)));
    },
  };
}

async function existingTables(c: pg.Client, names: string[]): Promise<string[]> {
  const { rows } = await c.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relname = ANY($1)`,
    [names],
  );
  const found = new Set(rows.map((r) => r.name));
  return names.filter((n) => found.has(n));
}
