/**
 * What the backup/restore workflow test files share: a dev server, a seeded fixture (database, app tree, logs),
 * a test config for `production` on the given task queue, and our worker running on it.
 */
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { OpsConfig } from '../../src/common/config/index.js';
import { createWorker } from '../../src/worker.js';
import { seedFixture, type Fixture } from './backup-fixture.js';
import { startDevServer, testConfig, workflowBundle } from './temporal.js';

export interface BackupStack {
  env: TestWorkflowEnvironment;
  fx: Fixture;
  cfg: OpsConfig;
  worker: Worker;
  /** Stops the worker (and fails if it failed), drops the fixture's database, stops the server. */
  stop: () => Promise<void>;
}

export async function startBackupStack(taskQueue: string, messages: number): Promise<BackupStack> {
  const env = await startDevServer();
  const fx = await seedFixture(messages);
  const cfg = testConfig({
    address: env.address,
    taskQueue,
    environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } },
  });
  const worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
  const running = worker.run();
  return {
    env,
    fx,
    cfg,
    worker,
    stop: async () => {
      worker.shutdown();
      await running;
      await fx.database.drop();
      await env.teardown();
    },
  };
}
