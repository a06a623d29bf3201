/**
 * Records the deploy histories of the plan that refuses what cannot work (patch plan-refuses-what-cannot-work) for
 * the replay test: `node dist/test/support/record-deploy-plan-histories.js` (services and images up first). A deploy
 * of a version whose image cannot be had (refused before the backup) and a deploy over a hand-edited front config
 * (alerted, kept, rewritten). Re-run only on purpose; the checkout's path in stack traces becomes /llmchat-ops/.
 */
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { getEnvironment } from '../../src/common/config/index.js';
import { createWorker } from '../../src/worker.js';
import { startDeployFixture } from './deploy-fixture.js';
import { ROOT } from './services.js';
import { alertReceiver, startDevServer, temporalBinary, workflowBundle } from './temporal.js';

async function save(env: TestWorkflowEnvironment, workflowId: string): Promise<void> {
  const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json']);
  await writeFile(path.join(ROOT, 'test/histories', `${workflowId}.json`), stdout.split(`${ROOT}/`).join('/llmchat-ops/'));
  console.log(`recorded ${workflowId}`);
}

async function run(): Promise<void> {
  const env = await startDevServer();
  const sink = await alertReceiver();
  const taskQueue = 'record-deploy-plan';
  const fx = await startDeployFixture({ address: env.address, taskQueue, webhookUrl: sink.url });
  try {
    const worker = await createWorker(fx.cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    await worker.runUntil(async () => {
      const refused = await env.client.workflow.start('deploy', { taskQueue, workflowId: 'deploy-image-refused', args: [{ environment: 'production', version: 'v404', requestedBy: 'recorder' }] });
      await refused.result().catch(() => undefined);
      await save(env, 'deploy-image-refused');
      const conf = path.join(getEnvironment(fx.cfg, 'production').deploy.stateDir as string, 'front', 'nginx.conf');
      await writeFile(conf, (await readFile(conf, 'utf8')).replace('http {\n', 'http {\n  # edited by hand\n'));
      const edited = await env.client.workflow.start('deploy', { taskQueue, workflowId: 'deploy-front-edited', args: [{ environment: 'production', version: 'v2', requestedBy: 'recorder', bakeSeconds: 2 }] });
      await edited.result();
      await save(env, 'deploy-front-edited');
    });
  } finally {
    await fx.teardown();
    await sink.close();
    await env.teardown();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
