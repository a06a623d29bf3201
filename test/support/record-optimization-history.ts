/**
 * Records a databaseOptimization history for the replay test: `node dist/test/support/record-optimization-history.js`
 * (PostgreSQL up first). Recorded with the workflow as it was before the invalid-index step (patch
 * optimization-drops-index-leftovers), so the replay test proves such runs still replay. Re-run only on purpose;
 * the checkout's path in stack traces becomes /llmchat-ops/.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { createWorker } from '../../src/worker.js';
import { seedPurgeDatabase } from './maintenance-fixture.js';
import { PG, ROOT, scratchDatabase, tempDir } from './services.js';
import { startDevServer, temporalBinary, testConfig, workflowBundle } from './temporal.js';

async function run(): Promise<void> {
  process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
  const env = await startDevServer();
  const db = await scratchDatabase('llmchat_rec_opt');
  try {
    await seedPurgeDatabase(db.name, 500, 2_000);
    const taskQueue = 'record-optimization';
    const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs: tempDir('rec-opt'), database: db.name } } });
    const worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    const workflowId = 'database-optimization';
    await worker.runUntil(async () => {
      await (await env.client.workflow.start('databaseOptimization', { taskQueue, workflowId, args: [{ environment: 'production', requestedBy: 'recorder' }] })).result();
    });
    const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json']);
    await writeFile(path.join(ROOT, 'test/histories', `${workflowId}.json`), stdout.split(`${ROOT}/`).join('/llmchat-ops/'));
    console.log(`recorded ${workflowId}`);
  } finally {
    await db.drop();
    await env.teardown();
  }
}

await run();
