/**
 * The weekly and monthly schedules on the real dev server: created with the configured cron, overlap policy and
 * catch-up window; a triggered maintenance schedule really runs the workflow; `schedules apply` removes the
 * llmchat-ops schedules the config no longer lists and leaves a schedule somebody else created alone.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { applySchedules } from '../src/schedules.js';
import { createWorker } from '../src/worker.js';
import type { MaintenanceReport } from '../src/workflows/maintenance/weekly-database-maintenance.js';
import { PG, scratchDatabase, tempDir, waitFor } from './support/services.js';
import { startDevServer, testConfig, workflowBundle, type TestConfigOptions } from './support/temporal.js';

const SCHEDULES = {
  weeklyDatabaseMaintenance: { cron: '0 3 * * 0', environments: ['production'] },
  weeklyCleanup: { cron: '0 4 * * 0', environments: ['production'] },
  databaseOptimization: { cron: '0 5 1 * *', environments: ['production'] },
  monthlyPerformanceReport: { cron: '0 6 1 * *', environments: ['production'] },
};

describe('maintenance schedules (real dev server)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  const taskQueue = `test-msched-${randomUUID()}`;
  const logs = tempDir('msched');
  let opts: (schedules: TestConfigOptions['schedules']) => TestConfigOptions;

  before(async () => {
    process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
    env = await startDevServer();
    db = await scratchDatabase('llmchat_ms');
    opts = (schedules) => ({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:9', logs, database: db.name } }, schedules });
    worker = await createWorker(testConfig(opts(SCHEDULES)), env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });
  after(async () => {
    for await (const s of env.client.schedule.list()) await env.client.schedule.getHandle(s.scheduleId).delete();
    worker?.shutdown();
    await running;
    await db?.drop();
    await env?.teardown();
  });

  it('creates all four with their specs; a trigger runs the maintenance; apply removes only its own stale schedules', { timeout: 300_000 }, async () => {
    const created = await applySchedules(env.client, testConfig(opts(SCHEDULES)));
    assert.deepEqual(created.map((r) => [r.scheduleId, r.outcome]).sort(), [
      ['databaseOptimization-production', 'created'],
      ['monthlyPerformanceReport-production', 'created'],
      ['weeklyCleanup-production', 'created'],
      ['weeklyDatabaseMaintenance-production', 'created'],
    ]);
    const expect = {
      weeklyDatabaseMaintenance: 6 * 3_600_000,
      weeklyCleanup: 12 * 3_600_000,
      databaseOptimization: 6 * 3_600_000,
      monthlyPerformanceReport: 3 * 86_400_000,
    };
    for (const [name, catchup] of Object.entries(expect)) {
      const d = await env.client.schedule.getHandle(`${name}-production`).describe();
      assert.equal(d.policies.overlap, ScheduleOverlapPolicy.SKIP, name);
      assert.equal(d.policies.catchupWindow, catchup, name);
      assert.equal(d.action.type === 'startWorkflow' && d.action.workflowType, name);
      assert.ok(d.info.nextActionTimes.length > 0, `${name} has a next run`);
    }
    // The weekly run is on Sundays at 03:00 UTC.
    const next = (await env.client.schedule.getHandle('weeklyDatabaseMaintenance-production').describe()).info.nextActionTimes[0]!;
    assert.equal(next.getUTCDay(), 0);
    assert.equal(next.getUTCHours(), 3);

    // Triggered, the maintenance schedule runs the real workflow to success.
    await env.client.schedule.getHandle('weeklyDatabaseMaintenance-production').trigger();
    let runId = '';
    await waitFor('the triggered maintenance run', async () => {
      const d = await env.client.schedule.getHandle('weeklyDatabaseMaintenance-production').describe();
      runId = d.info.recentActions[0]?.action.workflow.workflowId ?? '';
      return runId !== '';
    });
    const report = (await env.client.workflow.getHandle(runId).result()) as MaintenanceReport;
    assert.equal(report.outcome, 'success');
    assert.ok(runId.startsWith('weeklyDatabaseMaintenance-production'));

    // A schedule somebody else made, then a config that no longer lists the cleanup and the report.
    await env.client.schedule.create({
      scheduleId: 'someone-elses-schedule',
      spec: { cronExpressions: ['0 1 * * *'] },
      action: { type: 'startWorkflow', workflowType: 'weeklyCleanup', taskQueue, args: [{ environment: 'production', dryRun: true }] },
      state: { paused: true },
    });
    const { weeklyCleanup: _c, monthlyPerformanceReport: _r, ...fewer } = SCHEDULES;
    const applied = await applySchedules(env.client, testConfig(opts(fewer)));
    assert.deepEqual(applied.map((r) => [r.scheduleId, r.outcome]).sort(), [
      ['databaseOptimization-production', 'unchanged'],
      ['monthlyPerformanceReport-production', 'removed'],
      ['weeklyCleanup-production', 'removed'],
      ['weeklyDatabaseMaintenance-production', 'unchanged'],
    ]);
    await waitFor('list reflects the removal', async () => {
      const ids: string[] = [];
      for await (const s of env.client.schedule.list()) ids.push(s.scheduleId);
      return !ids.includes('weeklyCleanup-production') && ids.includes('someone-elses-schedule');
    });
    await env.client.schedule.getHandle('someone-elses-schedule').describe(); // still there
  });
});
