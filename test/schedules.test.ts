/** Schedules on the real dev server, checked with the real `temporal` CLI. */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { applySchedules, listSchedules } from '../src/schedules.js';
import { createWorker } from '../src/worker.js';
import type { HealthReport } from '../src/workflows/health/daily-health-check.js';
import { ROOT, tempDir, waitFor } from './support/services.js';
import { startDevServer, temporalBinary, testConfig, testConfigYaml, workflowBundle, type TestConfigOptions } from './support/temporal.js';

describe('schedules apply (real dev server, real temporal CLI)', () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-schedules-${randomUUID()}`;
  const logs = tempDir('sched');
  const base = (cron: string, extra: Partial<TestConfigOptions> = {}): TestConfigOptions => ({
    address: env.address,
    taskQueue,
    // Nothing listens on port 9: the triggered run completes with an "unhealthy" report, which is still a run.
    environments: { production: { url: 'http://127.0.0.1:9', logs } },
    schedules: { dailyHealthCheck: { cron, environments: ['production'] } },
    ...extra,
  });
  const temporal = (...args: string[]) => execa(temporalBinary(), [...args, '--address', env.address, '--namespace', 'default']);

  before(async () => {
    env = await startDevServer();
    worker = await createWorker(testConfig(base('0 8 * * *')), env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });
  after(async () => {
    for await (const s of env.client.schedule.list()) await env.client.schedule.getHandle(s.scheduleId).delete();
    worker?.shutdown();
    await running;
    await env?.teardown();
  });

  it('creates the schedule with explicit overlap, catch-up window and timezone, visible to `temporal schedule`', async () => {
    const results = await applySchedules(env.client, testConfig(base('0 8 * * *')));
    assert.deepEqual(results.map((r) => [r.scheduleId, r.outcome, r.paused]), [['dailyHealthCheck-production', 'created', false]]);

    await waitFor('schedule in `temporal schedule list`', async () => (await temporal('schedule', 'list')).stdout.includes('dailyHealthCheck-production'));
    const described = JSON.parse((await temporal('schedule', 'describe', '--schedule-id', 'dailyHealthCheck-production', '--output', 'json')).stdout);
    const text = JSON.stringify(described);
    assert.match(text, /"overlapPolicy":"SCHEDULE_OVERLAP_POLICY_SKIP"/);
    assert.match(text, /"catchupWindow":"3600s"/);
    assert.match(text, /"timezoneName":"UTC"/);
    assert.match(text, /"workflowType":\{"name":"dailyHealthCheck"\}/);
    assert.match(text, new RegExp(`"taskQueue":\\{"name":"${taskQueue}"`));

    const d = await env.client.schedule.getHandle('dailyHealthCheck-production').describe();
    assert.equal(d.policies.overlap, ScheduleOverlapPolicy.SKIP);
    assert.equal(d.policies.catchupWindow, 3_600_000);
    assert.equal(d.spec.timezone, 'UTC');
    assert.deepEqual(d.spec.calendars?.[0]?.hour, [{ start: 8, end: 8, step: 1 }]);
  });

  it('applying the same config again changes nothing', async () => {
    const before = await env.client.schedule.getHandle('dailyHealthCheck-production').describe();
    const results = await applySchedules(env.client, testConfig(base('0 8 * * *')));
    assert.deepEqual(results.map((r) => r.outcome), ['unchanged']);
    const after = await env.client.schedule.getHandle('dailyHealthCheck-production').describe();
    assert.equal(after.info.lastUpdatedAt?.getTime(), before.info.lastUpdatedAt?.getTime());
  });

  it('a changed cron updates the schedule, and an operator\'s pause survives it', async () => {
    await temporal('schedule', 'toggle', '--schedule-id', 'dailyHealthCheck-production', '--pause', '--reason', 'maintenance window');
    const results = await applySchedules(env.client, testConfig(base('30 6 * * *')));
    assert.deepEqual(results.map((r) => [r.outcome, r.paused]), [['updated', true]]);
    const d = await env.client.schedule.getHandle('dailyHealthCheck-production').describe();
    assert.equal(d.state.paused, true);
    assert.equal(d.state.note, 'maintenance window');
    assert.deepEqual(d.spec.calendars?.[0]?.hour, [{ start: 6, end: 6, step: 1 }]);
    assert.deepEqual((await applySchedules(env.client, testConfig(base('30 6 * * *')))).map((r) => [r.outcome, r.paused]), [['unchanged', true]]);
    const listed = await listSchedules(env.client, testConfig(base('30 6 * * *')));
    assert.deepEqual(listed.map((s) => [s.scheduleId, s.state.paused]), [['dailyHealthCheck-production', true]]);
    await temporal('schedule', 'toggle', '--schedule-id', 'dailyHealthCheck-production', '--unpause', '--reason', 'done');
  });

  it('a triggered schedule runs the workflow to completion on the worker', async () => {
    await temporal('schedule', 'trigger', '--schedule-id', 'dailyHealthCheck-production');
    let workflowId = '';
    await waitFor('the scheduled run', async () => {
      const d = await env.client.schedule.getHandle('dailyHealthCheck-production').describe();
      workflowId = d.info.recentActions.at(-1)?.action.workflow.workflowId ?? '';
      return workflowId !== '';
    });
    assert.match(workflowId, /^dailyHealthCheck-production-/);
    const report = (await env.client.workflow.getHandle(workflowId).result()) as HealthReport;
    assert.equal(report.environment, 'production');
    assert.equal(report.status, 'unhealthy');
    const desc = await env.client.workflow.getHandle(workflowId).describe();
    assert.equal(desc.status.name, 'COMPLETED');
  });

  it('the CLI prints one line per schedule and exits non-zero when any schedule fails', async () => {
    const dir = tempDir('sched-cli');
    const good = path.join(dir, 'good.yaml');
    await writeFile(good, testConfigYaml(base('30 6 * * *')));
    const ok = await execa('node', ['bin/llmchat-ops.js', '--config', good, 'schedules', 'apply'], { cwd: ROOT, reject: false });
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, /^unchanged +dailyHealthCheck-production +cron "30 6 \* \* \*" UTC, overlap SKIP, catch-up 1 hour$/m);

    const bad = path.join(dir, 'bad.yaml');
    const opts = base('30 6 * * *');
    await writeFile(bad, testConfigYaml({ ...opts, schedules: { ...opts.schedules, weeklyNonsense: { cron: '0 3 * * 0', environments: ['production'] } } }));
    const failed = await execa('node', ['bin/llmchat-ops.js', '--config', bad, 'schedules', 'apply'], { cwd: ROOT, reject: false });
    assert.equal(failed.exitCode, 1);
    assert.match(failed.stdout, /^failed +weeklyNonsense-production +unknown schedule "weeklyNonsense"; known: dailyHealthCheck, nightlyBackup\b.*$/m);
    assert.match(failed.stdout, /^unchanged +dailyHealthCheck-production/m, 'the good schedule is still applied');

    const list = await execa('node', ['bin/llmchat-ops.js', '--config', good, 'schedules', 'list'], { cwd: ROOT, reject: false });
    assert.equal(list.exitCode, 0, list.stderr);
    assert.match(list.stdout, /^dailyHealthCheck-production +active +next \d{4}-\d\d-\d\dT06:30:00\.000Z/m);
  });
});
