/**
 * Several workers, safe (issue 17 §3): two worker PROCESSES on one task queue, as on two hosts — own config, own
 * `worker.host`, own state dirs; host-a is the data host, host-b is not — against this test's own dev server and
 * a blue/green demo environment. Every lock that used to live in one process is raced across the two:
 * (a) runs spread across both workers and each completes exactly once; data activities run on the data host only;
 * (b) two deploys of one environment raced: the workflow id refuses the second start, the shared release lease
 *     refuses a deploy started under another id;
 * (e) the worker running a deploy SIGKILLed mid-step: the other finishes it;
 * (c) two recoveries raced from the two hosts' configs: one restart budget (one restart, one refused);
 * (d) maintenance started against a running backup waits until the backup has ended;
 * (f) a backup started while only host-b runs waits for the data host's queue and runs there, never on host-b;
 * (g) a second host claiming to be the data host is refused at start.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { WorkflowExecutionAlreadyStartedError, WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { createContainerActivities } from '../src/activities/faults/containers.js';
import { dataTaskQueue, dataWorkflowId, releaseWorkflowId } from '../src/common/names.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import { servingVersion, startDeployFixture, type DeployFixture } from './support/deploy-fixture.js';
import { freePort, PG, waitFor } from './support/services.js';
import { startDevServer } from './support/temporal.js';
import { pidOf, startHost, type WorkerProcess } from './support/worker-processes.js';

process.env.LLMCHAT_DB_PASSWORD ??= PG.password;

const T = { timeout: 600_000 };

interface Started {
  activity: string;
  identity: string;
  attempt: number;
  queue: string;
}

/** Every workflow task and activity start of a run, with the worker identity that took it. */
async function tasksOf(h: WorkflowHandle): Promise<{ workflowTasks: string[]; activities: Started[]; completions: number }> {
  const events = (await h.fetchHistory()).events ?? [];
  const scheduled = new Map<string, { name: string; queue: string }>();
  const out = { workflowTasks: [] as string[], activities: [] as Started[], completions: 0 };
  for (const e of events) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), { name: s.activityType?.name ?? '', queue: s.taskQueue?.name ?? '' });
    const st = e.activityTaskStartedEventAttributes;
    if (st) {
      const sc = scheduled.get(String(st.scheduledEventId));
      out.activities.push({ activity: sc?.name ?? '?', identity: st.identity ?? '', attempt: st.attempt ?? 0, queue: sc?.queue ?? '' });
    }
    if (e.workflowTaskStartedEventAttributes?.identity) out.workflowTasks.push(e.workflowTaskStartedEventAttributes.identity);
    if (e.workflowExecutionCompletedEventAttributes) out.completions++;
  }
  return out;
}

describe('several workers on one task queue, as on two hosts', { timeout: 2_400_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let taskQueue: string;
  let a: WorkerProcess; // host-a: the data host
  let b: WorkerProcess; // host-b
  const all: WorkerProcess[] = [];
  const startA = async () => {
    a = await startHost(fx.configFile, { host: 'host-a', dataHost: 'host-a' });
    all.push(a);
  };
  const startB = async () => {
    b = await startHost(fx.configFile, { host: 'host-b', dataHost: 'host-a' });
    all.push(b);
  };
  const start = (type: string, args: unknown[], id = `${type}-${randomUUID().slice(0, 8)}`) => env.client.workflow.start(type, { taskQueue, workflowId: id, args });

  before(async () => {
    env = await startDevServer();
    taskQueue = `test-several-${randomUUID()}`;
    fx = await startDeployFixture({ address: env.address, taskQueue, metricsPort: await freePort(), deploy: { healthySuccesses: 2, backupBeforeDeploy: false } });
    // A restart budget of one, so two raced recoveries on two hosts show whether they share it.
    const doc = parse(await readFile(fx.configFile, 'utf8')) as Record<string, any>;
    doc.environments.production.faultDetection = { recovery: { restarts: 1, per: '1h', healthyTimeout: '60s' } };
    // Maintenance re-checks for a running backup every tenth of its longest wait: 12 s instead of a minute.
    doc.maintenance = { ...(doc.maintenance ?? {}), maxWait: '2m' };
    await writeFile(fx.configFile, stringify(doc));
    await Promise.all([startA(), startB()]);
  });

  after(async () => {
    for (const w of all) await w.kill('SIGKILL');
    await fx?.teardown();
    await env?.teardown();
  });

  it('(a) runs spread across both workers, each completes exactly once; data activities run on the data host only', T, async () => {
    const checks = await Promise.all(Array.from({ length: 16 }, () => start('dailyHealthCheck', [{ environment: 'production', requestedBy: 'test' }])));
    const backups = await Promise.all(Array.from({ length: 3 }, (_, i) => start('backup', [{ environment: 'production', kinds: ['uploads'], requestedBy: 'test', verify: 'checksums' }], `backup-a-${i}-${randomUUID().slice(0, 8)}`)));
    await Promise.all([...checks, ...backups].map((h) => h.result()));
    const pids = new Set<number>();
    for (const h of [...checks, ...backups]) {
      const t = await tasksOf(h);
      assert.equal(t.completions, 1, `${h.workflowId} completed once`);
      for (const id of t.workflowTasks) pids.add(pidOf(id));
    }
    assert.deepEqual([...pids].sort(), [a.pid, b.pid].sort(), 'both workers took workflow tasks');
    for (const h of backups) {
      const t = await tasksOf(h);
      assert.ok(t.activities.length > 0);
      for (const s of t.activities) {
        assert.equal(s.queue, dataTaskQueue(taskQueue), `${s.activity} scheduled on the data queue`);
        assert.equal(pidOf(s.identity), a.pid, `${s.activity} ran on the data host`);
        assert.equal(s.attempt, 1, `${s.activity} ran once`);
      }
    }
  });

  it('(b) two deploys of one environment raced: the second start is refused by id, a third under another id by the shared lease', T, async () => {
    const h = await start('deploy', [{ environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 }], releaseWorkflowId('production'));
    await assert.rejects(start('deploy', [{ environment: 'production', version: 'v2', requestedBy: 'bob', bakeSeconds: 0 }], releaseWorkflowId('production')), WorkflowExecutionAlreadyStartedError);
    await waitFor('the first deploy holds the lease', async () => (await h.fetchHistory()).events?.some((e) => e.activityTaskCompletedEventAttributes) ?? false, 60_000);
    const rogue = await start('deploy', [{ environment: 'production', version: 'v2', requestedBy: 'mallory', bakeSeconds: 0 }], `rogue-deploy-${randomUUID().slice(0, 8)}`);
    await assert.rejects(rogue.result(), (err: unknown) => err instanceof WorkflowFailedError && /is running/.test(String(err.cause?.message)));
    const r = (await h.result()) as DeployResult;
    assert.equal(r.outcome, 'success');
    assert.equal(await servingVersion(fx.url), 'v2');
  });

  it('(e) the worker running a deploy is SIGKILLed mid-step: the other worker finishes it', T, async () => {
    // A long health gate, so the kill lands inside it.
    const h = await start('deploy', [{ environment: 'production', version: 'v1', requestedBy: 'alice', bakeSeconds: 0 }], releaseWorkflowId('production'));
    let runner = '';
    await waitFor(
      'a step of the deploy running on a worker',
      async () => {
        const d = await h.describe();
        const p = (d.raw.pendingActivities ?? []).find((x) => x.lastWorkerIdentity && ['waitSlotReady', 'healthGate', 'startSlot'].includes(x.activityType?.name ?? ''));
        runner = p?.lastWorkerIdentity ?? '';
        return runner !== '';
      },
      120_000,
      50,
    );
    const victim = pidOf(runner) === a.pid ? a : b;
    const survivor = victim === a ? b : a;
    await victim.kill('SIGKILL');
    const r = (await h.result()) as DeployResult;
    assert.equal(r.outcome, 'success');
    assert.equal(await servingVersion(fx.url), 'v1');
    const t = await tasksOf(h);
    assert.ok(t.activities.some((s) => pidOf(s.identity) === survivor.pid && s.attempt >= 2), 'a step was retried on the surviving worker');
    assert.equal(t.completions, 1);
    if (victim === a) await startA();
    else await startB();
  });

  it('(c) two recoveries raced from the two hosts: one restart budget, so one restart and one refusal', T, async () => {
    const ra = createContainerActivities(a.cfg);
    const rb = createContainerActivities(b.cfg);
    const results = await Promise.all([
      ra.restartAppService({ environment: 'production', key: `fault-1/host-a-${randomUUID()}`, reason: 'raced recovery' }),
      rb.restartAppService({ environment: 'production', key: `fault-1/host-b-${randomUUID()}`, reason: 'raced recovery' }),
    ]);
    assert.deepEqual(results.map((r) => r.outcome).sort(), ['recovered', 'refused-budget'], JSON.stringify(results));
  });

  it('(d) maintenance started against a running backup waits until the backup has ended', T, async () => {
    // Hold pg_dump on a table lock, so the backup is surely running when the maintenance starts.
    const c = new pg.Client({ ...PG, database: fx.database.name });
    await c.connect();
    await c.query('BEGIN');
    await c.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
    // Under the environment's data workflow id, as the CLI and the schedules start backups.
    const backup = await start('backup', [{ environment: 'production', kinds: ['database'], requestedBy: 'test', verify: 'checksums' }], dataWorkflowId('production'));
    await waitFor('pg_dump running', async () => (await backup.describe()).raw.pendingActivities?.some((p) => p.activityType?.name === 'dumpDatabase' && p.lastWorkerIdentity) ?? false, 60_000);
    const maint = await start('weeklyDatabaseMaintenance', [{ environment: 'production', requestedBy: 'test' }]);
    await new Promise((r) => setTimeout(r, 4000));
    await c.query('COMMIT');
    await c.end();
    const br = (await backup.result()) as BackupResult;
    assert.equal(br.manifest.status, 'complete');
    const mr = (await maint.result()) as { outcome: string; exclusion: { decision: string; waitedMs: number; waitedFor: { workflowId: string }[] } };
    assert.equal(mr.outcome, 'success', JSON.stringify(mr));
    assert.ok(mr.exclusion.waitedFor.some((w) => w.workflowId === backup.workflowId), JSON.stringify(mr.exclusion));
    const backupClosed = (await backup.describe()).closeTime as Date;
    const mEvents = (await maint.fetchHistory()).events ?? [];
    const firstDataStep = mEvents.find((e) => e.activityTaskScheduledEventAttributes && e.activityTaskScheduledEventAttributes.activityType?.name !== 'runningConflicts' && e.activityTaskScheduledEventAttributes.activityType?.name !== 'describeEnvironment' && !/plan/i.test(e.activityTaskScheduledEventAttributes.activityType?.name ?? ''));
    assert.ok(firstDataStep, 'the maintenance ran its steps');
    const at = Number(firstDataStep.eventTime?.seconds ?? 0) * 1000 + Math.floor((firstDataStep.eventTime?.nanos ?? 0) / 1e6);
    assert.ok(at >= backupClosed.getTime() - 1000, `maintenance's ${firstDataStep.activityTaskScheduledEventAttributes?.activityType?.name} began after the backup ended (${new Date(at).toISOString()} vs ${backupClosed.toISOString()})`);
  });

  it('(f) a backup started while only host-b runs waits for the data host, then runs there — never on host-b', T, async () => {
    await a.kill('SIGTERM');
    const h = await start('backup', [{ environment: 'production', kinds: ['uploads'], requestedBy: 'test', verify: 'checksums' }]);
    await new Promise((r) => setTimeout(r, 5000));
    const d = await h.describe();
    assert.equal(d.status.name, 'RUNNING');
    const pending = d.raw.pendingActivities ?? [];
    assert.ok(pending.length > 0 && pending.every((p) => !p.lastWorkerIdentity), `the data step waits for the data host: ${JSON.stringify(pending.map((p) => [p.activityType?.name, p.lastWorkerIdentity, p.attempt]))}`);
    await startA();
    const r = (await h.result()) as BackupResult;
    assert.equal(r.manifest.status, 'complete');
    const t = await tasksOf(h);
    assert.ok(t.activities.length > 0);
    for (const s of t.activities) assert.equal(pidOf(s.identity), a.pid, `${s.activity} ran on the data host`);
    assert.ok(!t.activities.some((s) => pidOf(s.identity) === b.pid));
  });

  it('(g) a second host claiming to be the data host is refused at start, naming the first', T, async () => {
    await assert.rejects(startHost(fx.configFile, { host: 'host-c', dataHost: 'host-c' }), /exited \(1\)[\s\S]*already has workers on host host-a[\s\S]*this worker is on host-c/);
  });
});
