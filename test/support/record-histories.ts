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
        // The CLI's JSON is the canonical history export, the same an operator would download from the Web UI.
        const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json']);
        await writeFile(path.join(ROOT, 'test/histories', `daily-health-check-${name}.json`), stdout);
        console.log(`recorded ${workflowId}`);
      }
    });
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
