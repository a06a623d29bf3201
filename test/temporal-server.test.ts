/**
 * Core flows on the production Temporal server (go.temporal.io/server v1.32.2) with PostgreSQL persistence — its
 * own two scratch databases made by the module's sql tool — instead of the dev server: a backup during which the
 * server is killed (-9) and restarted, completing; an approved restore over the live database; a schedule applied
 * by the CLI and triggered; a deploy whose verify fails after its migration, with the database rollback approved;
 * a fault (error burst) detected and recovered by a restart. Every run completes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Client, Connection } from '@temporalio/client';
import { NativeConnection, type Worker } from '@temporalio/worker';
import { execa } from 'execa';
import pg from 'pg';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { stringify, parse as parseYaml } from 'yaml';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import { parseConfig, type OpsConfig } from '../src/common/config/index.js';
import { createWorker } from '../src/worker.js';
import { faultDetection } from '../src/workflows/faults/fault-detection.js';
import { approveAtGate } from './support/approvals.js';
import { faultFixture, type FaultFixture } from './support/fault-fixture.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { failureOf, levelOf, servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { seedFixture, tableDigests, query, type Fixture } from './support/backup-fixture.js';
import { dropDatabaseOf, PG, ROOT, tempDir, waitFor } from './support/services.js';
import { testConfigYaml, workflowBundle } from './support/temporal.js';
import { createTemporalDatabases, startRealServer, type PostgresPersistence, type RealServer } from './support/temporal-server.js';

describe('core flows on the production Temporal server with PostgreSQL (kill -9 and restart mid-run)', () => {
  let server: RealServer;
  let pgp: PostgresPersistence;
  let fx: Fixture;
  let cfg: OpsConfig;
  let configFile: string;
  let client: Client;
  let nativeConnection: NativeConnection;
  let worker: Worker;
  let running: Promise<void>;
  let first: BackupResult;
  const taskQueue = `test-server-${randomUUID()}`;
  const suffix = randomUUID().slice(0, 8);

  before(async () => {
    const dir = tempDir('server');
    pgp = { database: `temporal_t_${suffix}`, visibility: `temporal_vis_t_${suffix}`, user: PG.user, password: PG.password, port: PG.port };
    [, fx] = await Promise.all([createTemporalDatabases(pgp), seedFixture(2_000)]);
    server = await startRealServer(dir, undefined, pgp);
    const doc = parseYaml(testConfigYaml({
      address: server.address,
      taskQueue,
      environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } },
      schedules: { dailyHealthCheck: { cron: '0 8 * * *', environments: ['production'], paused: true } },
    })) as Record<string, unknown>;
    configFile = path.join(dir, 'ops.config.yaml');
    await writeFile(configFile, stringify(doc));
    cfg = parseConfig(stringify(doc), configFile, dir);
    nativeConnection = await NativeConnection.connect({ address: server.address });
    client = new Client({ connection: await Connection.connect({ address: server.address }) });
    worker = await createWorker(cfg, nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running?.catch(() => undefined);
    await client?.connection.close();
    await nativeConnection?.close();
    await server?.stop();
    await fx?.database.drop();
    const c = new pg.Client({ ...PG, database: 'llmchat' });
    await c.connect();
    try {
      for (const db of [pgp?.database, pgp?.visibility]) if (db) await dropDatabaseOf(c, db).catch(() => undefined);
    } finally {
      await c.end();
    }
  });

  const start = <T>(type: string, input: unknown, id = `llmchat-data-production`) =>
    client.workflow.start<(i: unknown) => Promise<T>>(type, { taskQueue, workflowId: id, args: [input] });

  it('a backup survives kill -9 of the server mid-run and a restart: it completes, verified', async () => {
    const h = await start<BackupResult>('backup', { environment: 'production', requestedBy: 'test', reason: 'server crash test' });
    // Kill once the run has started activities (its history has more than the first events).
    await waitFor('the backup to be under way', async () => ((await h.fetchHistory()).events?.length ?? 0) > 6, 30_000, 100);
    await server.kill9();
    await new Promise((r) => setTimeout(r, 1000));
    await server.restart();
    first = await h.result();
    assert.equal(first.manifest.verification?.status, 'verified', JSON.stringify(first.manifest.verification));
    const d = await h.describe();
    assert.equal(d.status.name, 'COMPLETED');
  });

  it('an approved restore over the live database, the server killed -9 and restarted while it waits', async () => {
    const before = await tableDigests(fx.database.name);
    await query(fx.database.name, (c) => c.query(`DELETE FROM messages WHERE id % 10 = 0`));
    const h = await start<{ approvedBy: string }>('restore', { environment: 'production', backupId: first.backupId, kind: 'database', requestedBy: 'bob' });
    await waitFor('awaiting approval', async () => ((await h.query<{ state: string }>('restoreStatus')).state === 'awaiting-approval'), 60_000, 200);
    await server.kill9(); // while the restore waits for its approval
    await server.restart();
    await approveAtGate(h, 'restore', { by: 'alice', comment: 'server test' }, { via: 'signal' });
    const res = await h.result();
    assert.equal(res.approvedBy, 'alice');
    assert.deepEqual(await tableDigests(fx.database.name), before);
  });

  it('schedules apply (CLI) and a triggered health check complete', async () => {
    const r = await execa('node', ['bin/llmchat-ops.js', '--config', configFile, 'schedules', 'apply'], { cwd: ROOT, reject: false, env: { ...process.env, LLMCHAT_DB_PASSWORD: PG.password } });
    assert.equal(r.exitCode, 0, r.stderr + r.stdout);
    await client.schedule.getHandle('dailyHealthCheck-production').trigger();
    await waitFor('the triggered run to complete', async () => {
      for await (const w of client.workflow.list({ query: `TaskQueue = '${taskQueue}' AND WorkflowType = 'dailyHealthCheck' AND ExecutionStatus = 'Completed'` })) return !!w;
      return false;
    }, 60_000, 500);
  });

  describe('a deploy whose database rollback is approved, on this server', { timeout: 600_000 }, () => {
    let stack: DeployStack;
    let dfx: DeployFixture;
    const deployQueue = `test-server-deploy-${randomUUID()}`;
    before(async () => {
      // The deploy stack on this server instead of a dev server (its teardown leaves the server to the outer after()).
      const shim = { address: server.address, client, nativeConnection, connection: client.connection, teardown: async () => {} } as unknown as TestWorkflowEnvironment;
      stack = await startDeployStack({ taskQueue: deployQueue, server: async () => shim, deploy: { smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }], backupBeforeDeploy: false } });
      dfx = stack.fx;
    });
    after(async () => {
      await stack?.stop();
    });

    it('v2 migrates, fails verify: app back on v1; server killed -9 and restarted while it waits; approved by bob → database back at level 1', async () => {
      const h = await client.workflow.start<(i: unknown) => Promise<unknown>>('deploy', { taskQueue: deployQueue, workflowId: `deploy-${randomUUID()}`, args: [{ environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 }] });
      await waitFor('the database rollback waits for a decision', async () => (await h.query<{ state: string }>('databaseRollbackStatus')).state === 'open', 180_000);
      assert.equal(await servingVersion(dfx.url), 'v1');
      await server.kill9(); // while the deploy waits for the database-rollback decision
      await server.restart();
      const ok = await approveAtGate(h, 'db-rollback', { by: 'bob' });
      assert.equal(ok?.accepted, true, ok?.message);
      const f = await failureOf(h.result());
      assert.equal(f.type, 'DeployFailed');
      assert.match(f.message, /database migrated down to level 1 \(approved by bob\)/);
      assert.equal(await levelOf(dfx.database.name), 1);
    });
  });

  describe('a fault detected and recovered, on this server', { timeout: 600_000 }, () => {
    let f: FaultFixture;
    before(async () => {
      const shim = { address: server.address, client, nativeConnection, connection: client.connection, teardown: async () => {} } as unknown as TestWorkflowEnvironment;
      f = await faultFixture({ environments: { prod: { faultDetection: { recovery: { restarts: 2, per: '1h', healthyTimeout: '60s' } } } }, alerts: { escalateAfter: '10m', grace: '0s' }, server: async () => shim });
      await f.startWorker();
    });
    after(async () => {
      await f?.teardown();
    });
    const detect = () => client.workflow.execute(faultDetection, { taskQueue: f.taskQueue, workflowId: `faultDetection-prod-${randomUUID()}`, args: [{ environment: 'prod', requestedBy: 'test' }] });

    it('an error burst is detected, the app restarted and healthy again', async () => {
      assert.equal((await detect()).outcome, 'healthy', 'baseline');
      for (let i = 0; i < 30; i++) await fetch(`${f.app.url}/api/debug/error`, { method: 'POST' }).then((r) => r.arrayBuffer());
      for (let i = 0; i < 10; i++) await fetch(`${f.app.url}/health`).then((r) => r.arrayBuffer());
      const r = await detect();
      assert.ok(r.faults.includes('error-rate'), JSON.stringify(r.checks, null, 2));
      assert.deepEqual(r.recoveries.map((x) => [x.action, x.outcome]), [['restart', 'recovered']]);
    });
  });
});
