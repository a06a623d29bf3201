/**
 * Records real histories for the replay test: `node dist/test/support/record-histories.js` (all of them), or
 * `… record-histories.js import` (only the importBackup ones), `… maintenance` (only the maintenance ones),
 * `… data-host` (a backup and a restore on the data host's queue).
 * Re-run it only on purpose (a deliberate, versioned workflow change); the replay test guards the rest.
 */
import { readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { createWorker } from '../../src/worker.js';
import { ROOT, privateRedis, scratchDatabase, startAppProcess, tempDir } from './services.js';
import { alertReceiver, startDevServer, temporalBinary, testConfig, workflowBundle } from './temporal.js';
import { seedFixture } from './backup-fixture.js';
import { purgeFixture } from './maintenance-fixture.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';

/** The CLI's JSON is the canonical history export, the same an operator would download from the Web UI. */
async function save(env: TestWorkflowEnvironment, workflowId: string, name: string): Promise<void> {
  const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json']);
  await writeFile(path.join(ROOT, 'test/histories', `${name}.json`), stdout);
  console.log(`recorded ${name}`);
}

/** A weekly database maintenance (purge in several batches, reindex) and a dry-run cleanup. */
async function recordMaintenance(env: TestWorkflowEnvironment): Promise<void> {
  const fx = await purgeFixture(2_000, 6_000, 'llmchat_rec');
  const taskQueue = 'record-maintenance';
  const logs = tempDir('record-maint');
  const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs, database: fx.name } }, extra: { maintenance: { initialBatchRows: 500 } } });
  const worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
  try {
    await worker.runUntil(async () => {
      await env.client.workflow.execute('weeklyDatabaseMaintenance', { taskQueue, workflowId: 'weekly-database-maintenance', args: [{ environment: 'production', requestedBy: 'recorder' }] });
      await save(env, 'weekly-database-maintenance', 'weekly-database-maintenance');
      await env.client.workflow.execute('weeklyCleanup', { taskQueue, workflowId: 'weekly-cleanup-dry-run', args: [{ environment: 'production', dryRun: true, requestedBy: 'recorder' }] });
      await save(env, 'weekly-cleanup-dry-run', 'weekly-cleanup-dry-run');
    });
  } finally {
    await fx.drop();
  }
}

/**
 * A verified backup, then a live restore of its config that waits for approveRestore and takes a safety backup.
 * `suffix` names a later recording kept beside the first (e.g. `-data-host-queue`: runs carrying the patches
 * data-activities-on-data-host-queue and backup-record-steps-not-cancellable).
 */
async function recordBackupAndRestore(env: TestWorkflowEnvironment, suffix = ''): Promise<void> {
  const fx = await seedFixture(500);
  const taskQueue = 'record-backups';
  const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } });
  const worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
  try {
    await worker.runUntil(async () => {
      const { backupId } = await env.client.workflow.execute('backup', {
        taskQueue,
        workflowId: `backup${suffix}`,
        args: [{ environment: 'production', kinds: ['database', 'config'], requestedBy: 'recorder', reason: 'history' }],
      });
      await save(env, `backup${suffix}`, `backup${suffix}`);
      const handle = await env.client.workflow.start('restore', { taskQueue, workflowId: `restore-approved${suffix}`, args: [{ environment: 'production', backupId, kind: 'config', requestedBy: 'recorder' }] });
      while ((await handle.query<{ state: string }>('restoreStatus')).state !== 'awaiting-approval') await new Promise((r) => setTimeout(r, 100));
      await handle.signal('approveRestore', { by: 'approver', gate: (await handle.query<{ approval: { gateId?: string } }>('restoreStatus')).approval.gateId });
      await handle.result();
      await save(env, `restore-approved${suffix}`, `restore-approved${suffix}`);
    });
  } finally {
    await fx.database.drop();
  }
}

/** An operator's import of an unsigned copy of a backup: the inspection, then the confirmed re-signing. */
async function recordImport(env: TestWorkflowEnvironment): Promise<void> {
  process.env.LLMCHAT_BACKUP_SIGNING_KEY ??= 'llmchat-demo-backup-signing-key';
  const fx = await seedFixture(100);
  const taskQueue = 'record-import';
  const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } });
  const worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
  try {
    await worker.runUntil(async () => {
      const { backupId } = await env.client.workflow.execute('backup', {
        taskQueue,
        workflowId: 'record-import-backup',
        args: [{ environment: 'production', kinds: ['config'], requestedBy: 'recorder', reason: 'history', verify: 'checksums' }],
      });
      // The same backup as another installation would hand it over: no signature.
      const file = path.join(cfg.environments.production!.paths.backups, backupId, 'manifest.json');
      const { signature: _dropped, ...unsigned } = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
      await writeFile(file, JSON.stringify(unsigned, null, 2));
      const shown = await env.client.workflow.execute('importBackup', { taskQueue, workflowId: 'import-backup-inspect', args: [{ environment: 'production', backupId, requestedBy: 'recorder' }] });
      await save(env, 'import-backup-inspect', 'import-backup-inspect');
      const confirm = (shown as { manifestSha256: string }).manifestSha256;
      await env.client.workflow.execute('importBackup', { taskQueue, workflowId: 'import-backup-confirm', args: [{ environment: 'production', backupId, requestedBy: 'recorder', confirm }] });
      await save(env, 'import-backup-confirm', 'import-backup-confirm');
    });
  } finally {
    await fx.database.drop();
    await rm(fx.root, { recursive: true, force: true });
  }
}

async function run(): Promise<void> {
  const env = await startDevServer();
  if (process.argv[2] === 'maintenance') {
    try {
      await recordMaintenance(env);
    } finally {
      await env.teardown();
    }
    return;
  }
  if (process.argv[2] === 'data-host') {
    // Only a backup and a restore with the data host's queue (added later): the first recordings stay.
    try {
      await recordBackupAndRestore(env, '-data-host-queue');
    } finally {
      await env.teardown();
    }
    return;
  }
  if (process.argv[2] === 'import') {
    // Only the import histories (added later): the others stay as recorded.
    try {
      await recordImport(env);
    } finally {
      await env.teardown();
    }
    return;
  }
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
    await recordImport(env);
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
