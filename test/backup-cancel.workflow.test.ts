/**
 * A backup cancelled while it writes its record (`beginBackup`) is recorded as failed, not left in progress: the
 * quick step used to be cancelled without waiting, finished anyway after the workflow had ended, and left an
 * in-progress manifest no one closed (seen under load in approval-attack's cancelled safety backup). The worker
 * here runs the real activities on the real dev server and PostgreSQL; only `beginBackup` first waits 2 s, so the
 * cancel lands while it runs.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createActivities } from '../src/activities/index.js';
import type { BackupManifest } from '../src/activities/backup/manifest.js';
import { createWorker } from '../src/worker.js';
import { seedFixture, type Fixture } from './support/backup-fixture.js';
import { waitFor } from './support/services.js';
import { startDevServer, testConfig, workflowBundle } from './support/temporal.js';

describe('a backup cancelled while it records its start', { timeout: 300_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-backup-cancel-${randomUUID()}`;
  let beginStarted: () => void = () => {};
  let beginEnded = false;

  before(async () => {
    env = await startDevServer();
    fx = await seedFixture(500);
    const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } });
    const activities = createActivities(cfg);
    worker = await createWorker(cfg, env.nativeConnection, {
      workflowBundle: await workflowBundle(),
      activities: {
        ...activities,
        async beginBackup(input: Parameters<typeof activities.beginBackup>[0]) {
          beginStarted();
          await sleep(2000);
          try {
            return await activities.beginBackup(input);
          } finally {
            beginEnded = true;
          }
        },
      },
    });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await fx?.database.drop();
    await env?.teardown();
  });

  it('the cancel waits for the record, then marks the backup failed; nothing stays in progress', async () => {
    const started = new Promise<void>((resolve) => (beginStarted = resolve));
    const h = await env.client.workflow.start('backup', { taskQueue, workflowId: `backup-cancel-${randomUUID()}`, args: [{ environment: 'production', requestedBy: 'test', kinds: ['database'] }] });
    await started;
    await h.cancel();
    await assert.rejects(h.result(), /cancel/i);
    await waitFor('the delayed beginBackup to end', async () => beginEnded, 20_000);
    await sleep(500); // what a late step would write, it has written by now
    const backups = path.join(fx.dirs.logs, 'backups');
    const manifests: BackupManifest[] = [];
    for (const entry of await readdir(backups, { recursive: true })) {
      if (path.basename(String(entry)) === 'manifest.json') manifests.push(JSON.parse(await readFile(path.join(backups, String(entry)), 'utf8')) as BackupManifest);
    }
    assert.equal(manifests.length, 1, 'the backup wrote its record');
    assert.equal(manifests[0]!.status, 'failed', `the cancelled backup is recorded as failed, not ${manifests[0]!.status}`);
  });
});
