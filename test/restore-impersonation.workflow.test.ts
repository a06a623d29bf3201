/**
 * An operator with Temporal access but no approval rights runs a worker of their own, on their own task queue
 * (nothing in Temporal stops a client from polling a queue it names), with workflows they wrote
 * (test/support/foreign-workflows.ts). Neither of their two ways to replace the live database may work:
 *
 * - a workflow of theirs running under `llmchat-release-<env>` (even one whose type is named `deploy`) starts our
 *   `restore` as a child with a forged `releaseApproval`: the restore sees the release id as its parent's;
 * - a workflow of theirs schedules our `restoreDatabase` activity on our task queue directly: no restore
 *   workflow, no gate at all.
 *
 * Real dev server, real PostgreSQL; the live database must keep a row written after the backup.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import type { OpsConfig } from '../src/common/config/index.js';
import { dataWorkflowId, releaseWorkflowId } from '../src/common/names.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import { approveAtGate } from './support/approvals.js';
import { query, type Fixture } from './support/backup-fixture.js';
import { startBackupStack, type BackupStack } from './support/backup-stack.js';
import { resetBefore } from './support/temporal.js';

const FOREIGN = fileURLToPath(new URL('./support/foreign-workflows.js', import.meta.url));

/** The innermost failure of a workflow run: its type and message. */
async function innermost(p: Promise<unknown>): Promise<{ type?: string; message: string; chain: string }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    let e = err as Error & { type?: string; cause?: unknown };
    const chain: string[] = [];
    while (e.cause instanceof Error) {
      e = e.cause as Error & { type?: string };
      chain.push(`${e.type ?? e.name}: ${e.message}`);
    }
    return { type: e.type, message: e.message, chain: chain.join(' <- ') };
  }
  assert.fail('the run should have failed');
}

describe('a foreign worker cannot replace the live database (forged release parent, direct activity)', { timeout: 600_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let stack: BackupStack;
  let foreign: Worker;
  let foreignRunning: Promise<void>;
  let backupId = '';
  const taskQueue = `test-impersonation-${randomUUID()}`;
  const foreignQueue = `foreign-${randomUUID()}`;
  /** A row written after the backup: a restore of the backup over live data takes it away. */
  const plantRow = () => query(fx.database.name, (c) => c.query("INSERT INTO chat_sessions (user_id, title) SELECT 'after-backup', 'must survive' WHERE NOT EXISTS (SELECT 1 FROM chat_sessions WHERE user_id = 'after-backup')"));
  const afterBackupRows = () => query(fx.database.name, async (c) => (await c.query("SELECT 1 FROM chat_sessions WHERE user_id = 'after-backup'")).rowCount);

  before(async () => {
    stack = await startBackupStack(taskQueue, 2_000);
    ({ env, fx } = stack);
    foreign = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: foreignQueue,
      workflowBundle: await bundleWorkflowCode({ workflowsPath: FOREIGN, logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error } as never }),
    });
    foreignRunning = foreign.run();
    const b = await env.client.workflow.execute<(i: unknown) => Promise<BackupResult>>('backup', {
      taskQueue,
      workflowId: `backup-${randomUUID()}`,
      args: [{ environment: 'production', kinds: ['database'], requestedBy: 'test', reason: 'baseline', verify: 'checksums' }],
    });
    backupId = b.backupId;
  });

  after(async () => {
    foreign?.shutdown();
    await foreignRunning?.catch(() => {});
    await stack?.stop();
  });

  for (const type of ['foreignRelease', 'deploy']) {
    it(`a foreign workflow (type ${type}) under llmchat-release-production cannot start a pre-approved restore`, async () => {
      await plantRow();
      const h = await env.client.workflow.start(type, {
        taskQueue: foreignQueue,
        workflowId: releaseWorkflowId('production'),
        args: [{ taskQueue, environment: 'production', backupId }],
      });
      const f = await innermost(h.result());
      assert.equal(f.type, 'BadInput', f.chain);
      assert.match(f.message, /releaseApproval.*accepted only from .*deploy.*task queue/i);
      assert.equal(await afterBackupRows(), 1, 'the live database was not replaced');
      const child = await env.client.workflow.getHandle(dataWorkflowId('production')).describe();
      assert.equal(child.type, 'restore');
      assert.equal(child.parentExecution?.workflowId, releaseWorkflowId('production'));
    });
  }

  it('a foreign workflow cannot run restoreDatabase (or any of our activities) on our task queue', async () => {
    await plantRow();
    for (const [activity, input] of [
      ['restoreDatabase', { environment: 'production', backupId, runToken: 'foreign' }],
      ['listBackups', { environment: 'production' }],
    ] as const) {
      const h = await env.client.workflow.start('foreignActivity', { taskQueue: foreignQueue, workflowId: `foreign-${randomUUID()}`, args: [{ taskQueue, activity, input }] });
      const f = await innermost(h.result());
      assert.equal(f.type, 'ForeignWorkflow', `${activity}: ${f.chain}`);
      assert.match(f.message, new RegExp(`${activity} refused: .*task queue ${foreignQueue}.*not ${taskQueue}`));
    }
    assert.equal(await afterBackupRows(), 1, 'the live database was not replaced');
  });

  it('a reset of an approved restore run (to just before its restore step) does not replace the live data again', async () => {
    const h = await env.client.workflow.start('restore', {
      taskQueue,
      workflowId: dataWorkflowId('production'),
      args: [{ environment: 'production', backupId, kind: 'database', requestedBy: 'mallory' }],
    });
    await approveAtGate(h, 'restore', { by: 'bob' }, { via: 'signal' });
    await h.result();
    await plantRow();
    const reset = await resetBefore(env, h, (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'restoreDatabase');
    const runId = reset.originalRunId;
    const f = await innermost(env.client.workflow.getHandle(dataWorkflowId('production'), reset.runId).result());
    assert.equal(await afterBackupRows(), 1, 'the live database was not replaced again');
    assert.equal(f.type, 'BadInput', f.chain);
    assert.match(f.message, new RegExp(`refused: this run \\(\\S+\\) is a reset of run ${runId}; an approval recorded before a reset .* is never acted on again`));
  });
});
