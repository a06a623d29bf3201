/**
 * Maintenance that never queues behind the app (issue 15, point 7), on the real dev server and PostgreSQL:
 * - every invalid index an interrupted CREATE INDEX CONCURRENTLY or REINDEX CONCURRENTLY left behind is reported,
 *   and the `_ccnew`/`_ccold` leftovers are dropped — of any index, not only the configured ones;
 * - a REINDEX CONCURRENTLY that times out waiting for an open app transaction cleans up its own leftover and
 *   retries until it gets through;
 * - with a real transaction holding SHARE on `messages` (what a migration's CREATE INDEX holds), the
 *   optimization's CREATE INDEX CONCURRENTLY / ANALYZE / VACUUM (SHARE UPDATE EXCLUSIVE) give up after
 *   `maintenance.lockTimeout` and retry later, so an app statement arriving meanwhile is never queued behind them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { OpsConfig } from '../src/common/config/index.js';
import { LockNotAcquiredError, retryOnLockTimeout, setLockTimeout } from '../src/activities/maintenance/lock-retry.js';
import { createWorker } from '../src/worker.js';
import type { OptimizationReport } from '../src/workflows/maintenance/database-optimization.js';
import type { MaintenanceReport } from '../src/workflows/maintenance/weekly-database-maintenance.js';
import { seedPurgeDatabase, withDb } from './support/maintenance-fixture.js';
import { PG, scratchDatabase, tempDir, waitFor } from './support/services.js';
import { startDevServer, testConfig, workflowBundle } from './support/temporal.js';

const TIMEOUT = { timeout: 240_000 };
const LOCK_TIMEOUT_MS = 300;

/** Starts `sql` (a concurrent index build), waits until it waits for the open `holder`'s transaction, cancels it. */
async function interrupt(database: string, sql: string): Promise<void> {
  await withDb(database, async (holder) => {
    await holder.query('BEGIN');
    await holder.query('UPDATE chat_sessions SET title = title WHERE false');
    await holder.query('UPDATE messages SET content = content WHERE false');
    await withDb(database, async (builder) => {
      const pid = (await builder.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
      const run = builder.query(sql).then(() => 'finished', (err: Error & { code?: string }) => err.code);
      await waitFor(`${sql} waiting`, () => withDb(database, async (c) => (await c.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0]?.wait_event_type === 'Lock'));
      await withDb(database, (c) => c.query('SELECT pg_cancel_backend($1)', [pid]));
      assert.equal(await run, '57014', `${sql} was cancelled`);
    });
    await holder.query('ROLLBACK');
  });
}

const invalidIndexes = (database: string) =>
  withDb(database, async (c) => (await c.query(`SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid ORDER BY 1`)).rows.map((r) => r.relname as string));

/** Waits until a maintenance connection has been seen waiting for a lock. */
const maintenanceWaiting = (database: string) =>
  waitFor('maintenance waiting for a lock', () =>
    withDb(database, async (c) => (await c.query(`SELECT 1 FROM pg_stat_activity WHERE datname = $1 AND application_name = 'llmchat-ops-maintenance' AND wait_event_type = 'Lock'`, [database])).rowCount! > 0),
  );

describe('maintenance never queues behind the app (real dev server, PostgreSQL)', () => {
  let env: TestWorkflowEnvironment;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let cfg: OpsConfig;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-maint-locks-${randomUUID()}`;
  const run = async <T,>(type: string) =>
    (await env.client.workflow.start<(i: unknown) => Promise<T>>(type, { taskQueue, workflowId: `${type}-${randomUUID()}`, args: [{ environment: 'production', requestedBy: 'test' }] })).result();

  before(async () => {
    process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
    env = await startDevServer();
    db = await scratchDatabase('llmchat_lk');
    await seedPurgeDatabase(db.name, 3_000, 10_000);
    cfg = testConfig({
      address: env.address,
      taskQueue,
      environments: { production: { url: 'http://127.0.0.1:1', logs: tempDir('maint-locks'), database: db.name } },
      extra: { maintenance: { lockTimeout: `${LOCK_TIMEOUT_MS}ms`, lockRetryFor: '2m', maxWait: '4s' } },
    });
    worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await db?.drop();
    await env?.teardown();
  });

  it('reports every invalid index, drops every _ccnew leftover; a reindex that times out behind an open transaction cleans up and retries', TIMEOUT, async () => {
    // Leftovers of indexes nobody configured: an interrupted REINDEX CONCURRENTLY of idx_messages_role (→ its
    // invalid _ccnew) and an interrupted CREATE INDEX CONCURRENTLY of idx_messages_content (→ invalid itself).
    await withDb(db.name, (c) => c.query('CREATE INDEX idx_messages_role ON messages (role)'));
    await interrupt(db.name, 'REINDEX INDEX CONCURRENTLY idx_messages_role');
    await interrupt(db.name, 'CREATE INDEX CONCURRENTLY idx_messages_content ON messages (content)');
    assert.deepEqual(await invalidIndexes(db.name), ['idx_messages_content', 'idx_messages_role_ccnew']);

    // An app transaction stays open on chat_sessions while the maintenance runs: REINDEX CONCURRENTLY of
    // idx_sessions_user_id builds its _ccnew, then waits for it, times out, drops its own leftover, and retries.
    const holder = await withHeldTransaction(db.name, 'UPDATE chat_sessions SET title = title WHERE false');
    const t0 = Date.now();
    const report = run<MaintenanceReport>('weeklyDatabaseMaintenance');
    try {
      await maintenanceWaiting(db.name);
      await new Promise((r) => setTimeout(r, 4 * LOCK_TIMEOUT_MS));
    } finally {
      await holder.release();
    }
    const r = await report;
    console.log(`weekly maintenance with an open app transaction: ${Date.now() - t0} ms; reindex ${JSON.stringify(r.reindex)}`);
    assert.equal(r.outcome, 'success');
    assert.deepEqual(r.reindex?.removedLeftovers, ['idx_messages_role_ccnew']);
    const found = r.reindex?.invalidIndexes?.map((i) => [i.name, i.table, i.action]);
    assert.deepEqual(found, [
      ['idx_messages_content', 'messages', 'reported'],
      ['idx_messages_role_ccnew', 'messages', 'dropped'],
    ]);
    assert.match(r.reindex!.invalidIndexes!.find((i) => i.name === 'idx_messages_content')!.why, /CREATE INDEX CONCURRENTLY/);
    assert.deepEqual(r.reindex?.indexes.map((i) => [i.name, i.status]), [['idx_messages_created_at', 'rebuilt'], ['idx_sessions_user_id', 'rebuilt']]);
    const sessionsIdx = r.reindex!.indexes.find((i) => i.name === 'idx_sessions_user_id')!;
    assert.ok((sessionsIdx.lockRetries ?? 0) >= 1, `the reindex behind the open transaction was retried (${sessionsIdx.lockRetries})`);
    assert.deepEqual(await invalidIndexes(db.name), ['idx_messages_content'], 'its own leftovers dropped; the unknown invalid index reported, not dropped');
    await withDb(db.name, (c) => c.query('DROP INDEX idx_messages_content'));
  });

  it('a SHARE lock held by a migration: CREATE INDEX CONCURRENTLY, ANALYZE and VACUUM retry instead of queueing the app behind them', TIMEOUT, async () => {
    await withDb(db.name, (c) => c.query('DROP INDEX IF EXISTS idx_sessions_user_updated'));
    // A migration's CREATE INDEX in an open transaction: it holds SHARE on messages.
    const migration = await withHeldTransaction(db.name, 'LOCK TABLE messages IN SHARE MODE');
    const report = run<OptimizationReport>('databaseOptimization');
    const waits: number[] = [];
    try {
      await maintenanceWaiting(db.name);
      // The app's statements that take SHARE (compatible with the migration's, not with maintenance's SHARE UPDATE
      // EXCLUSIVE): queued behind a waiting maintenance statement they would wait as long as the migration lasts.
      for (let i = 0; i < 8; i++) {
        waits.push(
          await withDb(db.name, async (c) => {
            await c.query(`SET statement_timeout = '5s'`);
            await c.query('BEGIN');
            const t = performance.now();
            // Queued behind a waiting maintenance statement, it would wait until the statement timeout.
            const ok = await c.query('LOCK TABLE messages IN SHARE MODE').then(() => true, (err: { code?: string }) => { if (err.code !== '57014') throw err; return false; });
            const ms = performance.now() - t;
            await c.query(ok ? 'COMMIT' : 'ROLLBACK');
            return ms;
          }),
        );
        await new Promise((r) => setTimeout(r, 250));
      }
    } finally {
      await migration.release();
    }
    const r = await report;
    console.log(`app statements behind the migration while maintenance retried: waits ${waits.map((w) => w.toFixed(0)).join(', ')} ms`);
    assert.ok(Math.max(...waits) < LOCK_TIMEOUT_MS + 400, `no app statement waited behind maintenance (longest ${Math.max(...waits).toFixed(0)} ms, lock timeout ${LOCK_TIMEOUT_MS} ms)`);
    assert.equal(r.outcome, 'success');
    const onMessages = r.indexes!.find((i) => i.name === 'idx_messages_session_created')!;
    assert.ok((onMessages.lockRetries ?? 0) >= 1, `CREATE INDEX CONCURRENTLY on messages retried (${onMessages.lockRetries})`);
    assert.deepEqual(r.vacuumed, ['messages', 'chat_sessions', 'agents']);
    assert.deepEqual(r.invalidIndexes, [], 'no invalid index left from earlier runs');
    assert.deepEqual(await invalidIndexes(db.name), []);
  });

  it('gives up after maintenance.lockRetryFor, naming the transaction that held it up', TIMEOUT, async () => {
    const holder = await withHeldTransaction(db.name, 'LOCK TABLE agents IN SHARE MODE');
    try {
      await withDb(db.name, async (c) => {
        await setLockTimeout(c, 100);
        const t0 = Date.now();
        await assert.rejects(retryOnLockTimeout(c, 'VACUUM agents', { lockTimeoutMs: 100, retryForMs: 1500 }, () => c.query('VACUUM agents')), (err: Error) => {
          assert.ok(err instanceof LockNotAcquiredError);
          assert.match(err.message, /^VACUUM agents: could not get its lock within 100 ms in \d+ tries .*Longest open transactions: pid \d+ \(idle in transaction, transaction open \d+ s: LOCK TABLE agents IN SHARE MODE\)/);
          return true;
        });
        assert.ok(Date.now() - t0 < 3000, 'within lockRetryFor');
      });
    } finally {
      await holder.release();
    }
  });
});

/** A transaction that ran `sql` and stays open until released. */
async function withHeldTransaction(database: string, sql: string): Promise<{ release: () => Promise<void> }> {
  const pg = (await import('pg')).default;
  const c = new pg.Client({ ...PG, database });
  c.on('error', () => {});
  await c.connect();
  await c.query('BEGIN');
  await c.query(sql);
  return {
    release: async () => {
      await c.query('ROLLBACK').catch(() => {});
      await c.end();
    },
  };
}
