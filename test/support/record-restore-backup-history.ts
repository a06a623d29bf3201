/**
 * Records the histories of a deploy with `deploy.databaseRollback: restore-backup` for the replay test:
 * `node dist/test/support/record-restore-backup-history.js` (services and images up first). v2 migrates, fails
 * verify (a smoke check v2 cannot pass), the app goes back to v1, the database rollback is approved by another
 * person and the deploy restores its own pre-deploy backup through the `restore` workflow as its child. Both
 * histories are kept: the deploy's and the child restore's. Their workflow ids matter (the deploy must run as the
 * release workflow of its environment, the restore as the data workflow), so the files are named
 * `<name>--<workflow id>.json`. Re-run only on purpose (a deliberate, versioned workflow change).
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { dataWorkflowId, releaseWorkflowId } from '../../src/common/names.js';
import type { ApprovalStatus } from '../../src/workflows/common/approval.js';
import { startDeployStack } from './deploy-fixture.js';
import { ROOT } from './services.js';
import { temporalBinary } from './temporal.js';

async function run(): Promise<void> {
  const taskQueue = 'record-deploy-restore-backup';
  const stack = await startDeployStack({
    taskQueue,
    alerts: true,
    deploy: { smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }], databaseRollback: 'restore-backup', backupBeforeDeploy: true },
  });
  const { env } = stack;
  try {
    const release = releaseWorkflowId('production');
    const h = await env.client.workflow.start('deploy', { taskQueue, workflowId: release, args: [{ environment: 'production', version: 'v2', requestedBy: 'recorder', bakeSeconds: 0 }] });
    while ((await h.query<ApprovalStatus>('databaseRollbackStatus')).state !== 'open') await new Promise((r) => setTimeout(r, 200));
    const answer = await h.executeUpdate<{ accepted: boolean; message: string }, [{ by: string; comment: string; gate?: string }]>('approveDatabaseRollback', { args: [{ by: 'approver', comment: 'recorded', gate: (await h.query<ApprovalStatus>('databaseRollbackStatus')).gateId }] });
    if (!answer.accepted) throw new Error(`approval refused: ${answer.message}`);
    const failure = await h.result().then(() => undefined, (e: Error) => e);
    if (!/database restored from backup/.test(String((failure as { cause?: Error })?.cause?.message ?? failure?.message))) {
      throw new Error(`the deploy did not end with the database restored: ${String(failure)}`);
    }
    for (const [name, workflowId] of [['deploy-restore-backup', release], ['deploy-restore-backup-child', dataWorkflowId('production')]] as const) {
      const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', workflowId, '--address', env.address, '--output', 'json']);
      const file = path.join(ROOT, 'test/histories', `${name}--${workflowId}.json`);
      await writeFile(file, stdout);
      console.log(`recorded ${path.relative(ROOT, file)}`);
    }
  } finally {
    await stack.stop();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
