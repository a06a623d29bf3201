/**
 * databaseOptimization on the real dev server and PostgreSQL: the guide's indexes are created concurrently, an
 * invalid one left by an interrupted CREATE INDEX CONCURRENTLY is rebuilt (IF NOT EXISTS alone would keep it),
 * VACUUM ANALYZE clears the dead tuples, and the report shows before and after.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createWorker } from '../src/worker.js';
import type { OptimizationReport } from '../src/workflows/maintenance/database-optimization.js';
import { seedPurgeDatabase, withDb } from './support/maintenance-fixture.js';
import { PG, scratchDatabase, tempDir, waitFor } from './support/services.js';
import { startDevServer, testConfig, workflowBundle } from './support/temporal.js';

describe('databaseOptimization (real dev server, PostgreSQL)', () => {
  let env: TestWorkflowEnvironment;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-optimize-${randomUUID()}`;

  before(async () => {
    process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
    env = await startDevServer();
    db = await scratchDatabase('llmchat_opt');
    await seedPurgeDatabase(db.name, 5_000, 20_000);
    const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs: tempDir('optimize'), database: db.name } } });
    worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await db?.drop();
    await env?.teardown();
  });

  it('creates the guide\'s indexes, rebuilds an invalid leftover, vacuums the dead tuples away', { timeout: 300_000 }, async () => {
    // An interrupted CREATE INDEX CONCURRENTLY: it waits for an open writer, and is cancelled while waiting.
    await withDb(db.name, async (holder) => {
      await holder.query('BEGIN');
      await holder.query('UPDATE chat_sessions SET title = title WHERE false');
      await withDb(db.name, async (creator) => {
        const pid = (await creator.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
        const create = creator.query('CREATE INDEX CONCURRENTLY idx_sessions_user_updated ON chat_sessions (user_id, updated_at)').then(
          () => 'finished',
          (err: Error & { code?: string }) => err.code,
        );
        await waitFor('CREATE INDEX waiting', () => withDb(db.name, async (c) => (await c.query('SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0]?.wait_event_type === 'Lock'));
        await withDb(db.name, (c) => c.query('SELECT pg_cancel_backend($1)', [pid]));
        assert.equal(await create, '57014');
      });
      await holder.query('ROLLBACK');
    });
    // Dead tuples: rewrite a third of the messages. Autovacuum is off on this scratch table so it cannot clear
    // them between the count below and the workflow's own (CI once saw "dead before 0" when it did); the
    // workflow's VACUUM is a manual one and ignores the setting.
    await withDb(db.name, (c) => c.query('ALTER TABLE messages SET (autovacuum_enabled = false)'));
    await withDb(db.name, (c) => c.query(`UPDATE messages SET content = content || '!' WHERE id % 3 = 0`));
    await waitFor('dead tuples counted', () => withDb(db.name, async (c) => Number((await c.query(`SELECT n_dead_tup FROM pg_stat_user_tables WHERE relname = 'messages'`)).rows[0].n_dead_tup) > 5000));

    const report = await (await env.client.workflow.start<(i: unknown) => Promise<OptimizationReport>>('databaseOptimization', {
      taskQueue,
      workflowId: `optimize-${randomUUID()}`,
      args: [{ environment: 'production', requestedBy: 'test' }],
    })).result();

    assert.equal(report.outcome, 'success');
    assert.deepEqual(report.indexes!.map((i) => [i.name, i.status]), [
      ['idx_messages_session_created', 'exists'],
      ['idx_sessions_user_updated', 'recreated-invalid'],
      ['idx_agents_provider_active', 'created'],
    ]);
    assert.deepEqual(report.vacuumed, ['messages', 'chat_sessions', 'agents']);
    const msgs = report.changes!.find((c) => c.table === 'messages')!;
    assert.ok(msgs.deadTuplesBefore > 5000, `dead before ${msgs.deadTuplesBefore}`);
    assert.equal(msgs.deadTuplesAfter, 0);
    const invalid = await withDb(db.name, async (c) => (await c.query('SELECT count(*) AS n FROM pg_index WHERE NOT indisvalid')).rows[0].n);
    assert.equal(Number(invalid), 0);
    const after = report.after!.find((t) => t.table === 'agents')!;
    assert.ok(after.indexes.some((i) => i.name === 'idx_agents_provider_active' && i.valid));
  });
});
