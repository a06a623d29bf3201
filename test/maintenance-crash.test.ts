/**
 * Crash test of the weekly purge: the worker process is SIGKILLed in the middle of the purge and started again.
 * Temporal notices the missing heartbeats and retries the purge on the new worker, which resumes from the cursor
 * committed with the last batch: the end state is exactly the guide's, and the counts add up (nothing deleted
 * twice, nothing skipped).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { MaintenanceReport } from '../src/workflows/maintenance/weekly-database-maintenance.js';
import { purgeFixture, survivors, withDb, type PurgeFixture } from './support/maintenance-fixture.js';
import { freePort, PG, ROOT, tempDir, waitFor } from './support/services.js';
import { startDevServer, testConfigYaml } from './support/temporal.js';

const SESSIONS = 20_000;
const MESSAGES = 150_000;

describe('crash test: worker SIGKILLed mid-purge', () => {
  let env: TestWorkflowEnvironment;
  let fx: PurgeFixture;
  let configFile: string;
  let worker: ChildProcess | undefined;
  const taskQueue = `test-maint-crash-${randomUUID()}`;

  function startWorker(): Promise<ChildProcess> {
    const child = spawn('node', ['dist/src/worker.js', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LLMCHAT_DB_PASSWORD: PG.password } });
    let output = '';
    child.stdout?.on('data', (c) => (output += c));
    child.stderr?.on('data', (c) => (output += c));
    worker = child;
    return waitFor('worker started', async () => output.includes('llmchat-ops worker started'), 60_000).then(() => child);
  }

  async function kill(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  before(async () => {
    env = await startDevServer();
    fx = await purgeFixture(SESSIONS, MESSAGES, 'llmchat_mc');
    const dir = tempDir('maint-crash');
    configFile = path.join(dir, 'ops.config.yaml');
    await writeFile(
      configFile,
      testConfigYaml({
        address: env.address,
        taskQueue,
        metricsPort: await freePort(),
        environments: { production: { url: 'http://127.0.0.1:1', logs: dir, database: fx.name } },
        // Tiny transactions: the purge takes many batches, so the kill lands in the middle of it.
        extra: { maintenance: { initialBatchRows: 100, batchTargetMs: 5 } },
      }),
    );
  });

  after(async () => {
    if (worker) await kill(worker);
    await fx?.drop();
    await env?.teardown();
  });

  it('resumes from the committed cursor: the guide\'s result, counts that add up', { timeout: 300_000 }, async () => {
    const first = await startWorker();
    const workflowId = `maint-crash-${randomUUID()}`;
    const handle = await env.client.workflow.start<(i: unknown) => Promise<MaintenanceReport>>('weeklyDatabaseMaintenance', {
      taskQueue,
      workflowId,
      args: [{ environment: 'production', requestedBy: 'crash-test' }],
    });
    // Kill once the messages phase has committed a few batches, well before it is done.
    let seen = { batches: 0, deleted: 0 };
    await waitFor(
      'the messages phase under way',
      () =>
        withDb(fx.name, async (c) => {
          const { rows } = await c.query(`SELECT batches, deleted, done FROM llmchat_ops.purge_progress WHERE phase = 'messages'`).catch(() => ({ rows: [] as Record<string, unknown>[] }));
          if (rows[0]?.done) throw new Error('the purge finished before the kill: make it slower');
          seen = { batches: Number(rows[0]?.batches ?? 0), deleted: Number(rows[0]?.deleted ?? 0) };
          return seen.batches >= 5;
        }),
      120_000,
      10,
    );
    await kill(first);
    const atKill = await withDb(fx.name, async (c) => (await c.query(`SELECT batches, deleted, done FROM llmchat_ops.purge_progress WHERE phase = 'messages'`)).rows[0]);
    assert.equal(atKill.done, false, 'killed mid-purge');

    await startWorker();
    const report = await handle.result();
    assert.equal(report.outcome, 'success');
    const [sessions, messages] = report.purge!.phases;
    assert.ok(messages!.resumedAtBatch !== undefined && messages!.resumedAtBatch >= Number(atKill.batches), `resumed at batch ${messages!.resumedAtBatch} (killed after ${atKill.batches})`);

    // Exactly the guide's result, and the counts add up to what disappeared.
    const ours = await survivors(fx.name, fx.seededMaxMessageId);
    const guide = await survivors(fx.expected, fx.seededMaxMessageId);
    assert.deepEqual(ours.sessions, guide.sessions);
    assert.deepEqual(ours.messages, guide.messages);
    assert.equal(sessions!.deleted, SESSIONS - ours.sessions.length);
    assert.equal(messages!.deleted, MESSAGES - ours.messages.length);

    // The purge activity really ran twice (the kill happened inside it).
    const history = await handle.fetchHistory();
    const scheduled = new Map<string, string>();
    let attempts = 0;
    for (const e of history.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
      const st = e.activityTaskStartedEventAttributes;
      if (st && scheduled.get(String(st.scheduledEventId)) === 'purgeExpiredRows') attempts = Math.max(attempts, st.attempt ?? 0);
    }
    assert.ok(attempts >= 2, `purgeExpiredRows attempt ${attempts}`);
    console.log(`killed after ${atKill.batches} message batches (${atKill.deleted} deleted); resumed, finished with ${messages!.deleted} messages in ${messages!.batches} batches, ${sessions!.deleted} sessions`);
  });
});
