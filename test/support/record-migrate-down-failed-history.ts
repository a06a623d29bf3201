/**
 * Records, for the replay test, the history of a deploy whose approved migrate-down FAILED, as the workflow code of
 * before 2026-11-27 wrote it (`git checkout c583efd -- src/workflows`, build, then
 * `node dist/test/support/record-migrate-down-failed-history.js`; services and images up first): v2 migrates to
 * level 2, fails verify (a smoke check v2 cannot pass), the app goes back to v1, the database rollback is approved by
 * another person, and the migrate-down fails because a view depends on migration 002's column. That code let the
 * failure end the workflow; today's code records the release and notifies instead, and must still replay it.
 * Re-run only on purpose.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import type { ApprovalStatus } from '../../src/workflows/common/approval.js';
import { sql, startDeployStack } from './deploy-fixture.js';
import { ROOT } from './services.js';
import { temporalBinary } from './temporal.js';

async function run(): Promise<void> {
  const taskQueue = 'record-deploy-migrate-down-failed';
  const name = 'deploy-migrate-down-failed';
  const stack = await startDeployStack({
    taskQueue,
    alerts: true,
    deploy: { smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }] },
  });
  const { env, fx } = stack;
  try {
    const h = await env.client.workflow.start('deploy', { taskQueue, workflowId: name, args: [{ environment: 'production', version: 'v2', requestedBy: 'recorder', bakeSeconds: 0 }] });
    while ((await h.query<ApprovalStatus>('databaseRollbackStatus')).state !== 'open') await new Promise((r) => setTimeout(r, 200));
    // Something depends on the column migration 002 added: its down migration cannot drop it.
    await sql(fx.database.name, 'CREATE VIEW token_report AS SELECT token_count FROM messages');
    const answer = await h.executeUpdate<{ accepted: boolean; message: string }, [{ by: string; comment: string; gate?: string }]>('approveDatabaseRollback', { args: [{ by: 'approver', comment: 'recorded', gate: (await h.query<ApprovalStatus>('databaseRollbackStatus')).gateId }] });
    if (!answer.accepted) throw new Error(`approval refused: ${answer.message}`);
    const failure = await h.result().then(() => undefined, (e: Error) => e);
    const text = `${failure?.message} ${String((failure as { cause?: Error })?.cause?.message)} ${String((failure as { cause?: { cause?: Error } })?.cause?.cause?.message)}`;
    if (!/migrate down/.test(text) || !/depend/.test(text)) throw new Error(`the deploy did not end with a failed migrate-down: ${text}`);
    const { stdout } = await execa(temporalBinary(), ['workflow', 'show', '--workflow-id', name, '--address', env.address, '--output', 'json']);
    const file = path.join(ROOT, 'test/histories', `${name}.json`);
    await writeFile(file, stdout);
    console.log(`recorded ${path.relative(ROOT, file)}: ${text}`);
  } finally {
    await stack.stop();
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
