/**
 * weeklyDatabaseMaintenance on the real dev server and PostgreSQL: the batched purge removes exactly what the
 * guide's two DELETEs remove (checked against an identical copy that ran them), while a concurrent writer never
 * waits a second; an interrupted REINDEX CONCURRENTLY's invalid leftover is removed and the index rebuilt; a
 * running backup makes it wait or skip; bad input is refused before anything runs.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { parseConfig, type OpsConfig } from '../src/common/config/index.js';
import { dataWorkflowId } from '../src/common/names.js';
import { createWorker } from '../src/worker.js';
import type { MaintenanceReport } from '../src/workflows/maintenance/weekly-database-maintenance.js';
import { concurrentWriter, purgeFixture, survivors, withDb, type PurgeFixture } from './support/maintenance-fixture.js';
import { ROOT, tempDir, waitFor } from './support/services.js';
import { startDevServer, testConfig, testConfigYaml, workflowBundle } from './support/temporal.js';

const TIMEOUT = { timeout: 300_000 };

describe('weeklyDatabaseMaintenance (real dev server, PostgreSQL)', () => {
  let env: TestWorkflowEnvironment;
  let fx: PurgeFixture;
  let cfg: OpsConfig;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-maint-${randomUUID()}`;

  const start = (input: unknown) =>
    env.client.workflow.start<(i: unknown) => Promise<MaintenanceReport>>('weeklyDatabaseMaintenance', { taskQueue, workflowId: `maint-${randomUUID()}`, args: [input] });

  before(async () => {
    env = await startDevServer();
    fx = await purgeFixture(20_000, 60_000);
    cfg = testConfig({
      address: env.address,
      taskQueue,
      environments: { production: { url: 'http://127.0.0.1:1', logs: tempDir('maint'), database: fx.name } },
      // Small first windows so the purge runs many batches even on this small data set.
      extra: { maintenance: { initialBatchRows: 500, batchTargetMs: 20, maxWait: '4s' } },
    });
    worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await fx?.drop();
    await env?.teardown();
  });

  it('removes an interrupted REINDEX CONCURRENTLY leftover, purges exactly the guide\'s rows in short batches while the app writes', TIMEOUT, async () => {
    // 1. Interrupt a concurrent reindex: a transaction that could write the table makes REINDEX wait after it
    //    created idx_sessions_user_id_ccnew; cancelling it then leaves that index invalid.
    await withDb(fx.name, async (holder) => {
      await holder.query('BEGIN');
      await holder.query(`UPDATE chat_sessions SET title = title WHERE false`);
      await withDb(fx.name, async (reindexer) => {
        const pid = (await reindexer.query('SELECT pg_backend_pid() AS p')).rows[0].p as number;
        const reindex = reindexer.query('REINDEX INDEX CONCURRENTLY idx_sessions_user_id').then(
          () => 'finished',
          (err: Error & { code?: string }) => err.code,
        );
        await waitFor('REINDEX waiting for the open transaction', () =>
          withDb(fx.name, async (c) => (await c.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [pid])).rows[0]?.wait_event_type === 'Lock'),
        );
        await withDb(fx.name, (c) => c.query('SELECT pg_cancel_backend($1)', [pid]));
        assert.equal(await reindex, '57014', 'the reindex was cancelled');
      });
      await holder.query('ROLLBACK');
    });
    const invalid = () =>
      withDb(fx.name, async (c) => (await c.query(`SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid WHERE NOT i.indisvalid ORDER BY 1`)).rows.map((r) => r.relname as string));
    assert.deepEqual(await invalid(), ['idx_sessions_user_id_ccnew']);

    // 2. The maintenance, with the app writing all along.
    const writer = concurrentWriter(fx.name);
    await new Promise((r) => setTimeout(r, 300));
    let report: MaintenanceReport;
    let writes: Awaited<ReturnType<ReturnType<typeof concurrentWriter>['stop']>>;
    try {
      report = await (await start({ environment: 'production', requestedBy: 'test' })).result();
    } finally {
      writes = await writer.stop();
    }

    assert.equal(report.outcome, 'success');
    assert.equal(report.exclusion.decision, 'proceeded');
    assert.deepEqual(report.reindex?.removedLeftovers, ['idx_sessions_user_id_ccnew']);
    assert.deepEqual(report.reindex?.indexes.map((i) => [i.name, i.status]), [['idx_messages_created_at', 'rebuilt'], ['idx_sessions_user_id', 'rebuilt']]);
    assert.deepEqual(await invalid(), [], 'no invalid index is left');

    // Exactly the guide's result: same surviving sessions, same surviving seeded messages.
    const ours = await survivors(fx.name, fx.seededMaxMessageId);
    const guide = await survivors(fx.expected, fx.seededMaxMessageId);
    assert.deepEqual(ours.sessions, guide.sessions);
    assert.deepEqual(ours.messages, guide.messages);
    const [sessions, messages] = report.purge!.phases;
    const seeded = await withDb(fx.expected, async (c) => Number((await c.query('SELECT count(*) AS n FROM chat_sessions')).rows[0].n));
    assert.equal(sessions!.deleted, 20_000 - seeded, 'session count adds up');
    assert.equal(sessions!.deleted, 8_000, 'the seed makes 40 % of the sessions idle');
    assert.ok(messages!.deleted > 10_000, `messages purged: ${messages!.deleted}`);
    assert.equal(messages!.deleted, 60_000 - ours.messages.length);
    assert.ok(sessions!.batches > 5 && messages!.batches > 5, `many short batches: ${sessions!.batches} + ${messages!.batches}`);
    assert.ok(sessions!.done && messages!.done);

    // The app's statements were never held up for long (the issue: none waits longer than 1 s).
    assert.ok(writes.statements > 50, `the writer ran during the purge (${writes.statements} statements)`);
    assert.ok(writes.maxMs < 1000, `longest writer statement ${writes.maxMs.toFixed(1)} ms`);
    console.log(`purge: ${sessions!.deleted} sessions in ${sessions!.batches} batches, ${messages!.deleted} messages in ${messages!.batches} batches; longest transaction ${Math.max(sessions!.maxTransactionMs, messages!.maxTransactionMs)} ms; writer: ${writes.statements} statements, longest ${writes.maxMs.toFixed(1)} ms`);

    // The report: sizes and tuples of every table.
    const names = report.tables!.map((t) => t.table).sort();
    assert.deepEqual(names, ['agents', 'chat_sessions', 'messages', 'schema_migrations'].filter((n) => names.includes(n)));
    const msgStats = report.tables!.find((t) => t.table === 'messages')!;
    assert.ok(msgStats.totalBytes > 0 && msgStats.deleted >= messages!.deleted && msgStats.indexes.some((i) => i.name === 'idx_messages_created_at'));

    // A second run finds nothing more to purge.
    const again = await (await start({ environment: 'production' })).result();
    assert.equal(again.purge!.phases[0]!.deleted, 0);
    assert.equal(again.purge!.phases[1]!.deleted, 0);
  });

  it('waits for a running backup of the environment and skips after maintenance.maxWait; goes ahead once it ended', TIMEOUT, async () => {
    // A "backup" that is running: its workflow id is the environment's data id, on a queue nobody serves.
    const blocker = await env.client.workflow.start('backup', { taskQueue: `nobody-${randomUUID()}`, workflowId: dataWorkflowId('production'), args: [{ environment: 'production' }] });
    const skipped = await (await start({ environment: 'production' })).result();
    assert.equal(skipped.outcome, 'skipped');
    assert.equal(skipped.exclusion.decision, 'skipped');
    assert.ok(skipped.exclusion.waitedMs >= 4000, `waited ${skipped.exclusion.waitedMs} ms`);
    assert.deepEqual(skipped.exclusion.waitedFor.map((w) => w.workflowId), [dataWorkflowId('production')]);
    assert.equal(skipped.purge, undefined, 'nothing ran');

    const waiting = await start({ environment: 'production' });
    await new Promise((r) => setTimeout(r, 1500));
    await blocker.terminate('test: the backup ended');
    const proceeded = await waiting.result();
    assert.equal(proceeded.outcome, 'success');
    assert.equal(proceeded.exclusion.decision, 'proceeded');
    assert.ok(proceeded.exclusion.waitedMs >= 1000, `waited ${proceeded.exclusion.waitedMs} ms`);
    assert.deepEqual(proceeded.exclusion.waitedFor.map((w) => w.workflowId), [dataWorkflowId('production')]);
  });

  it('refuses bad input before anything runs', TIMEOUT, async () => {
    for (const input of [{ environment: 'production; rm -rf /' }, { environment: '../prod' }, 'production', { environment: 'nowhere' }, { environment: 'production', requestedBy: '$(id)' }]) {
      await assert.rejects((async () => (await start(input)).result())(), (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError);
        const cause = err.cause as { type?: string; cause?: { type?: string } };
        const type = cause.type ?? cause.cause?.type;
        assert.ok(type === 'BadInput' || type === 'UnknownEnvironmentError', `${JSON.stringify(input)} → ${type}`);
        return true;
      });
    }
  });

  it('rejects retention windows of 0, negative or absurd values in the config', TIMEOUT, () => {
    const base = { address: '127.0.0.1:7233', taskQueue: 'q', environments: { production: { url: 'http://127.0.0.1:1', logs: '/tmp/x' } } };
    for (const [section, key, value] of [
      ['maintenance', 'sessionIdleDays', 0],
      ['maintenance', 'orphanMessageDays', -5],
      ['maintenance', 'sessionIdleDays', 1e9],
      ['cleanup', 'logsDays', 0],
      ['cleanup', 'uploadsDays', -1],
      ['cleanup', 'tempDays', 99999],
      ['cleanup', 'tempPattern', '../*'],
      ['maintenance', 'reindex', ['idx; DROP TABLE messages']],
    ] as const) {
      const yaml = testConfigYaml({ ...base, extra: { [section]: { [key]: value } } });
      assert.throws(() => parseConfig(yaml, 'test', ROOT), (err: Error) => err.message.includes(`${section}.${key}`), `${section}.${key}=${JSON.stringify(value)}`);
    }
  });
});
