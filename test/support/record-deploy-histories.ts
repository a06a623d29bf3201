/**
 * Records real deploy histories for the replay test: `node dist/test/support/record-deploy-histories.js`
 * (services and images up first). A successful deploy v1 → v2 with its backup, and one whose verify fails after
 * migration 002: the app goes back to v1 by itself and the database rollback is approved. Re-run only on purpose
 * (a deliberate, versioned workflow change); the replay test guards the rest.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { createWorker } from '../../src/worker.js';
import type { ApprovalStatus } from '../../src/workflows/common/approval.js';
import { startDeployFixture } from './deploy-fixture.js';
import { ROOT } from './services.js';
import { alertReceiver, startDevServer, temporalBinary, workflowBundle } from './temporal.js';

async function save(env: TestWorkflowEnvironment, workflowId: string): Promise<void> {
  const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json']);
  await writeFile(path.join(ROOT, 'test/histories', `${workflowId}.json`), stdout);
  console.log(`recorded ${workflowId}`);
}

async function run(): Promise<void> {
  const env = await startDevServer();
  const sink = await alertReceiver();
  try {
    for (const [name, smoke] of [['deploy-success', []], ['deploy-db-rollback-approved', [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }]]] as const) {
      const taskQueue = `record-${name}`;
      const fx = await startDeployFixture({ address: env.address, taskQueue, webhookUrl: sink.url, deploy: { smoke, backupBeforeDeploy: name === 'deploy-success' } });
      const worker = await createWorker(fx.cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
      try {
        await worker.runUntil(async () => {
          const h = await env.client.workflow.start('deploy', { taskQueue, workflowId: name, args: [{ environment: 'production', version: 'v2', requestedBy: 'recorder', bakeSeconds: 4 }] });
          if (name === 'deploy-db-rollback-approved') {
            while ((await h.query<ApprovalStatus>('databaseRollbackStatus')).state !== 'open') await new Promise((r) => setTimeout(r, 200));
            await h.executeUpdate('approveDatabaseRollback', { args: [{ by: 'approver', comment: 'recorded', gate: (await h.query<ApprovalStatus>('databaseRollbackStatus')).gateId }] });
          }
          await h.result().catch(() => undefined);
          await save(env, name);
        });
      } finally {
        await fx.teardown();
      }
    }
  } finally {
    await sink.close();
    await env.teardown();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
