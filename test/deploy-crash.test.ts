/**
 * Crash tests of deploy: the worker process SIGKILLed during the switch (while the new slot's readiness is
 * polled) and during the health gate, then started again — the deploy ends correctly with exactly one version
 * serving and no orphan containers; and the Temporal dev server SIGKILLed and restarted on its SQLite file while a
 * deploy waits for approveDatabaseRollback — the approval sent after the restart is acted on; and the worker
 * SIGKILLed between the front's reload and its check (issue 15): the front goes back first, under a request loop
 * with no failed request, and a run lost mid-switch blocks the next release until `llmchat-ops up`.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Client, Connection, WorkflowFailedError } from '@temporalio/client';
import pg from 'pg';
import { projectContainers, slotProject } from '../src/activities/release/docker.js';
import { getEnvironment } from '../src/common/config/index.js';
import { ALL_SEARCH_ATTRIBUTES } from '../src/common/search-attributes.js';
import type { ApprovalStatus } from '../src/workflows/common/approval.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import type { ReleaseProgress } from '../src/workflows/release/shared.js';
import { upEnvironment } from '../src/activities/release/bootstrap.js';
import { configuredUpstream, frontSpec } from '../src/activities/release/nginx-front.js';
import { readSwitchRecord } from '../src/activities/release/checked-switch.js';
import { readReleases } from '../src/activities/release/release-store.js';
import { approveAtGate } from './support/approvals.js';
import { requestLoop, servingVersion, startDeployFixture, type DeployFixture } from './support/deploy-fixture.js';
import { nginxStandIn } from './support/nginx-stand-in.js';
import { freePort, PG, ROOT, tempDir, waitFor } from './support/services.js';
import { temporalBinary } from './support/temporal.js';

const T = { timeout: 400_000 };

/** A dev server on a SQLite file, so it can be killed and started again with its state. */
function devServer(port: number, uiPort: number, dbFile: string): ChildProcess {
  const sa = ALL_SEARCH_ATTRIBUTES.flatMap((k) => ['--search-attribute', `${k.name}=Keyword`]);
  return spawn(temporalBinary(), ['server', 'start-dev', '--ip', '127.0.0.1', '--port', String(port), '--ui-port', String(uiPort), '--headless', '--db-filename', dbFile, '--namespace', 'default', '--log-level', 'error', ...sa], { stdio: 'ignore' });
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGKILL');
  await exited;
}

function startWorker(configFile: string): Promise<ChildProcess> {
  const child = spawn('node', ['dist/src/worker.js', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LLMCHAT_DB_PASSWORD: PG.password } });
  let output = '';
  child.stdout?.on('data', (c) => (output += c));
  child.stderr?.on('data', (c) => (output += c));
  return waitFor('worker started', async () => output.includes('llmchat-ops worker started'), 90_000).then(() => child);
}

async function connect(address: string): Promise<Client> {
  let last: unknown;
  for (let i = 0; i < 100; i++) {
    try {
      const connection = await Connection.connect({ address, connectTimeout: '2 seconds' });
      const client = new Client({ connection });
      await client.workflowService.getSystemInfo({});
      return client;
    } catch (err) {
      last = err;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
  throw new Error(`dev server on ${address} did not come up: ${String(last)}`);
}

/** Highest attempt at which an activity type started in a run (2+: it was retried after the worker died). */
async function attemptOf(client: Client, workflowId: string, activity: string): Promise<number> {
  const history = await client.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  let attempt = 0;
  for (const e of history.events ?? []) {
    const s = e.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
    const st = e.activityTaskStartedEventAttributes;
    if (st && scheduled.get(String(st.scheduledEventId)) === activity) attempt = Math.max(attempt, st.attempt ?? 0);
  }
  return attempt;
}

/** The activity types running now in a workflow. */
async function pendingActivities(client: Client, workflowId: string): Promise<string[]> {
  const d = await client.workflow.getHandle(workflowId).describe();
  return (d.raw.pendingActivities ?? []).map((a) => a.activityType?.name ?? '');
}

describe('deploy crash tests (worker SIGKILLed, dev server SIGKILLed)', { timeout: 1_800_000 }, () => {
  const children: ChildProcess[] = [];
  const fixtures: DeployFixture[] = [];
  const clients: Client[] = [];

  after(async () => {
    for (const c of children) await kill(c);
    for (const f of fixtures) await f.teardown();
    for (const c of clients) await c.connection.close().catch(() => {});
  });

  async function setup(deploy: Record<string, unknown>, nginx?: string) {
    const dir = tempDir('deploy-crash');
    const [port, uiPort] = [await freePort(), await freePort()];
    const dbFile = path.join(dir, 'temporal.db');
    let server = devServer(port, uiPort, dbFile);
    children.push(server);
    const address = `127.0.0.1:${port}`;
    const client = await connect(address);
    clients.push(client);
    const taskQueue = `test-deploy-crash-${randomUUID()}`;
    const fx = await startDeployFixture({ address, taskQueue, metricsPort: await freePort(), deploy, ...(nginx ? { nginx } : {}) });
    fixtures.push(fx);
    let worker = await startWorker(fx.configFile);
    children.push(worker);
    return {
      client,
      fx,
      taskQueue,
      restartWorker: async () => {
        await kill(worker);
        worker = await startWorker(fx.configFile);
        children.push(worker);
      },
      killWorker: () => kill(worker),
      startWorker: async () => {
        worker = await startWorker(fx.configFile);
        children.push(worker);
      },
      restartServer: async () => {
        await kill(server);
        server = devServer(port, uiPort, dbFile);
        children.push(server);
        const fresh = await connect(address);
        clients.push(fresh);
        return fresh;
      },
    };
  }

  const slots = async (fx: DeployFixture) => {
    const env = getEnvironment(fx.cfg, 'production');
    const out: Record<string, string[]> = {};
    for (const s of ['main', 'blue', 'green'] as const) out[s] = (await projectContainers(env, slotProject(env, s))).map((c) => c.state);
    return out;
  };

  it('worker killed while the new slot is being made ready, and again during the health gate: each deploy ends right, one version serving', T, async () => {
    const { client, fx, taskQueue, restartWorker } = await setup({ healthySuccesses: 12, backupBeforeDeploy: false });
    const id1 = `deploy-crash-switch-${randomUUID()}`;
    const h1 = await client.workflow.start('deploy', { taskQueue, workflowId: id1, args: [{ environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 }] });
    await waitFor('the switch waits for the new slot', async () => (await pendingActivities(client, id1)).includes('waitSlotReady'), 120_000);
    await restartWorker();
    const r1 = (await h1.result()) as DeployResult;
    assert.equal(r1.outcome, 'success');
    assert.ok((await attemptOf(client, id1, 'waitSlotReady')) >= 2, 'the readiness wait was retried on the new worker');
    assert.equal(await servingVersion(fx.url), 'v2');
    assert.deepEqual(await slots(fx), { main: [], blue: [], green: ['running'] });

    const id2 = `deploy-crash-gate-${randomUUID()}`;
    const h2 = await client.workflow.start('deploy', { taskQueue, workflowId: id2, args: [{ environment: 'production', version: 'v1', requestedBy: 'alice', bakeSeconds: 0 }] });
    await waitFor('the health gate runs', async () => (await pendingActivities(client, id2)).includes('healthGate'), 120_000);
    await restartWorker();
    const r2 = (await h2.result()) as DeployResult;
    assert.equal(r2.outcome, 'success');
    assert.ok((await attemptOf(client, id2, 'healthGate')) >= 2, 'the health gate was retried on the new worker');
    const p = await h2.query<ReleaseProgress>('progress');
    assert.ok(p.steps.find((s) => s.name === 'health-gate')?.state === 'done');
    assert.equal(await servingVersion(fx.url), 'v1');
    assert.deepEqual(await slots(fx), { main: [], blue: ['running'], green: [] });
  });

  it('dev server killed and restarted on its SQLite file while the database rollback waits: the approval after the restart is acted on', T, async () => {
    const { client, fx, taskQueue, restartServer } = await setup({ smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }], backupBeforeDeploy: false });
    const id = `deploy-crash-server-${randomUUID()}`;
    const h = await client.workflow.start('deploy', { taskQueue, workflowId: id, args: [{ environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 }] });
    await waitFor('the database rollback waits', async () => (await h.query<ApprovalStatus>('databaseRollbackStatus')).state === 'open', 120_000);
    const fresh = await restartServer();
    const again = fresh.workflow.getHandle(id);
    await waitFor('the run answers queries after the restart', async () => (await again.query<ApprovalStatus>('databaseRollbackStatus')).state === 'open', 120_000);
    await approveAtGate(again, 'db-rollback', { by: 'bob', comment: 'after the restart' }, { via: 'signal' });
    try {
      await again.result();
      assert.fail('the deploy should have failed verify');
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      assert.match(String(err.cause?.message), /app back on v1; database migrated down to level 1 \(approved by bob\)/);
    }
    const c = new pg.Client({ ...PG, database: fx.database.name });
    await c.connect();
    try {
      assert.equal(Number((await c.query('SELECT max(version) AS v FROM schema_migrations')).rows[0].v), 1);
    } finally {
      await c.end();
    }
    assert.equal(await servingVersion(fx.url), 'v1');
  });
  it('worker killed between the reload and the check: the front goes back first (0 failed requests), then the new slot stops; a run lost mid-switch blocks releases until `up`', T, async () => {
    const nginx = await nginxStandIn(tempDir('deploy-crash-nginx'));
    const { client, fx, taskQueue, restartWorker, killWorker, startWorker: start } = await setup({ backupBeforeDeploy: false }, nginx.bin);
    const stateDir = getEnvironment(fx.cfg, 'production').deploy.stateDir as string;
    const frontSlot = async () => (await configuredUpstream(frontSpec(stateDir, fx.url, 'nginx')))?.slot;
    const reloaded = path.join(tempDir('deploy-crash-reloaded'), 'reloaded');
    await nginx.mode(`hang ${reloaded}`);
    const loop = requestLoop(fx.url, 50);
    const id = `deploy-crash-reload-${randomUUID()}`;
    // v1 again, into the other slot: a release that would pass every check — the worker dies before the check
    const h = await client.workflow.start('deploy', { taskQueue, workflowId: id, args: [{ environment: 'production', version: 'v1', requestedBy: 'alice', bakeSeconds: 0 }] });
    await waitFor('nginx reloaded onto the new slot', async () => existsSync(reloaded), 120_000);
    assert.equal(await frontSlot(), 'green');
    assert.ok(await readSwitchRecord(stateDir), 'the switch is recorded as in flight');
    await restartWorker();
    let message = '';
    try {
      await h.result();
      assert.fail('the deploy should have failed');
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      message = String(err.cause?.message);
    }
    const stats = await loop.stop();
    assert.equal(stats.failed, 0, stats.errors.join(', '));
    assert.match(message, /switch failed: the switch of the front to v1 \(slot green\) did not finish/);
    assert.match(message, /the switch to v1 \(slot green\) begun \S+Z had not reported its reload; the front answered from slot green with v1 when the run came back to it; switched back to v1 \(slot blue\) at \S+Z, checked through the front \(healthy, v1\); 0 requests failed at the front in between/);
    assert.match(message, /slot green \(v1\) stopped after the front was back on v1/);
    assert.equal(await frontSlot(), 'blue');
    assert.equal(await readSwitchRecord(stateDir), undefined, 'the record is cleared once the front is back');
    assert.deepEqual(await slots(fx), { main: [], blue: ['running'], green: [] });
    assert.equal((await h.query<ReleaseProgress>('progress')).outcome, 'app-rolled-back');
    assert.equal((await attemptOf(client, id, 'switchFrontChecked')), 1, 'the switch was not retried');

    // The run itself lost mid-switch (terminated while nginx hangs): the next release is refused until `up`.
    await nginx.mode(`hang ${reloaded}2`);
    const id2 = `deploy-crash-lost-${randomUUID()}`;
    const h2 = await client.workflow.start('deploy', { taskQueue, workflowId: id2, args: [{ environment: 'production', version: 'v1', requestedBy: 'alice', bakeSeconds: 0 }] });
    await waitFor('nginx reloaded onto the new slot', async () => existsSync(`${reloaded}2`), 120_000);
    await killWorker();
    await h2.terminate('lost mid-switch (test)');
    await start();
    const h3 = await client.workflow.start('deploy', { taskQueue, workflowId: `deploy-crash-after-${randomUUID()}`, args: [{ environment: 'production', version: 'v1', requestedBy: 'bob', bakeSeconds: 0 }] });
    try {
      await h3.result();
      assert.fail('the deploy should have been refused');
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      assert.match(String(err.cause?.message), new RegExp(`a switch of the front from v1 \\(slot blue\\) to v1 \\(slot green\\) by workflow ${id2}.*did not finish.*llmchat-ops up --env production`));
    }
    assert.equal((await readReleases(stateDir, 'production')).current?.slot, 'blue', 'the records still name the slot that served before');
    const lines: string[] = [];
    await upEnvironment(fx.cfg, 'production', 'v1', (l) => lines.push(l));
    assert.ok(lines.some((l) => /did not finish; the front is back on the recorded release v1 \(slot blue\)/.test(l)), lines.join('\n'));
    assert.equal(await frontSlot(), 'blue');
    assert.equal(await readSwitchRecord(stateDir), undefined);
    assert.equal(await servingVersion(fx.url), 'v1');
  });
});
