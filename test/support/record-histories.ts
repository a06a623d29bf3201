/**
 * Records real dailyHealthCheck histories for the replay test: `node dist/test/support/record-histories.js`.
 * Re-run it only on purpose (a deliberate, versioned workflow change); the replay test guards the rest.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { createWorker } from '../../src/worker.js';
import { ROOT, privateRedis, scratchDatabase, startAppProcess, tempDir } from './services.js';
import { alertReceiver, startDevServer, temporalBinary, testConfig, workflowBundle } from './temporal.js';
import { seedFixture } from './backup-fixture.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';

/** The CLI's JSON is the canonical history export, the same an operator would download from the Web UI. */
async function save(env: TestWorkflowEnvironment, workflowId: string, name: string): Promise<void> {
  const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json']);
  await writeFile(path.join(ROOT, 'test/histories', `${name}.json`), stdout);
  console.log(`recorded ${name}`);
}

/** A verified backup, then a live restore of its config that waits for approveRestore and takes a safety backup. */
async function recordBackupAndRestore(env: TestWorkflowEnvironment): Promise<void> {
  const fx = await seedFixture(500);
  const taskQueue = 'record-backups';
  const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } });
  const worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
  try {
    await worker.runUntil(async () => {
      const { backupId } = await env.client.workflow.execute('backup', {
        taskQueue,
        workflowId: 'backup',
        args: [{ environment: 'production', kinds: ['database', 'config'], requestedBy: 'recorder', reason: 'history' }],
      });
      await save(env, 'backup', 'backup');
      const handle = await env.client.workflow.start('restore', { taskQueue, workflowId: 'restore-approved', args: [{ environment: 'production', backupId, kind: 'config', requestedBy: 'recorder' }] });
      while ((await handle.query<{ state: string }>('restoreStatus')).state !== 'awaiting-approval') await new Promise((r) => setTimeout(r, 100));
      await handle.signal('approveRestore', { by: 'approver' });
      await handle.result();
      await save(env, 'restore-approved', 'restore-approved');
    });
  } finally {
    await fx.database.drop();
  }
}

async function run(): Promise<void> {
  const env = await startDevServer();
  const [db, redis, sink] = await Promise.all([scratchDatabase(), privateRedis(), alertReceiver()]);
  const logs = tempDir('record');
  const app = await startAppProcess({ databaseUrl: db.url, redisUrl: redis.url, logDir: logs });
  const taskQueue = 'record-histories';
  const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: app.url, logs } }, webhookUrl: sink.url });
  const worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
  try {
    await worker.runUntil(async () => {
      for (const [name, before] of [['healthy', async () => {}], ['degraded', () => redis.stop()]] as const) {
        await before();
        const workflowId = `daily-health-check-${name}`;
        await env.client.workflow.execute('dailyHealthCheck', { taskQueue, workflowId, args: [{ environment: 'production', requestedBy: 'recorder' }] });
        await save(env, workflowId, `daily-health-check-${name}`);
      }
    });
    await recordBackupAndRestore(env);
  } finally {
    await app.stop();
    await Promise.allSettled([redis.stop(), sink.close(), db.drop()]);
    await env.teardown();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
