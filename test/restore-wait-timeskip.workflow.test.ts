/**
 * Waits that do not grow the history (issue 15, point 5), on Temporal's time-skipping test server: a failed
 * deploy with `deploy.databaseRollback: restore-backup` is approved at its gate (naming the gate id), but the data
 * workflow id is held by another run for longer than the approval may wait (24 h, the default). The approved
 * restore polls for the id with backoff: after a day of workflow time it gives up — the restore never started,
 * the schema stays — and the whole history of the deploy stays under 2,000 events (a fixed 5 s poll made
 * ~17,000 tries of ~10 events each). Real worker, activities, Docker, nginx front and PostgreSQL; only the server
 * is the test server.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { getEnvironment } from '../src/common/config/index.js';
import { dataWorkflowId, releaseWorkflowId } from '../src/common/names.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import { approveAtGate, gateOf, openGate } from './support/approvals.js';
import { levelOf, servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { startTimeSkippingServer } from './support/temporal.js';

const DAY_MS = 24 * 3600_000;
const FOREIGN = fileURLToPath(new URL('./support/foreign-workflows.js', import.meta.url));

describe('an approved restore-backup waiting a day for the data id, on the time-skipping test server', { timeout: 900_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  let holder: { worker: Worker; running: Promise<void> } | undefined;
  const taskQueue = `test-restore-wait-${randomUUID()}`;
  const holderQueue = `test-restore-wait-holder-${randomUUID()}`;

  before(async () => {
    // A smoke check v2 fails (404) makes the deploy fail verify after it migrated; no approvalTimeout: 24 h.
    stack = await startDeployStack({ taskQueue, server: startTimeSkippingServer, deploy: { smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }], databaseRollback: 'restore-backup', backupBeforeDeploy: true } });
    ({ env, fx } = stack);
    const worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue: holderQueue,
      workflowBundle: await bundleWorkflowCode({ workflowsPath: FOREIGN, logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error } as never }),
    });
    holder = { worker, running: worker.run() };
  });

  after(async () => {
    holder?.worker.shutdown();
    await holder?.running.catch(() => {});
    await stack?.stop();
  });

  it('polls with backoff for 24 h, gives up without restoring, and the history stays under 2,000 events', { timeout: 600_000 }, async () => {
    assert.equal(getEnvironment(fx.cfg, 'production').deploy.approvalTimeout, DAY_MS, 'the default deploy.approvalTimeout is 24h');
    const h = await env.client.workflow.start<(i: unknown) => Promise<DeployResult>>('deploy', {
      taskQueue,
      workflowId: releaseWorkflowId('production'),
      args: [{ environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 }],
    });
    // Once the gate is open (the pre-deploy backup is done, the data id free), another run takes the data id for
    // two days: the approved restore cannot start within the day an approval may wait.
    await openGate(h, 'db-rollback', 240_000);
    const held = await env.client.workflow.start('hold', { taskQueue: holderQueue, workflowId: dataWorkflowId('production'), args: [2 * DAY_MS] });
    const answer = await approveAtGate(h, 'db-rollback', { by: 'bob', comment: 'restore it' });
    assert.equal(answer?.accepted, true, answer?.message);
    const approvedAt = Date.parse((await gateOf(h, 'db-rollback')).decisions.find((d) => d.accepted)?.at ?? '');

    const wall = Date.now();
    let failure: (Error & { type?: string; details?: unknown[] }) | undefined;
    // The test server skips the day while the result is awaited; bounded in wall time, so a wait that grows the
    // history (a try every 5 s: ~17,000 tries) fails here with its numbers instead of running for an hour.
    const ended = await Promise.race([
      h.result().then(() => 'completed', (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError, String(err));
        failure = err.cause as Error & { type?: string; details?: unknown[] };
        return 'failed';
      }),
      new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), 240_000).unref()),
    ]);
    const wallMs = Date.now() - wall;
    if (ended === 'stuck') {
      const events = (await h.fetchHistory()).events ?? [];
      const last = events.at(-1);
      await held.terminate('test over');
      await h.terminate('test over');
      assert.fail(`still waiting after ${wallMs} ms of wall time: ${events.length} history events, ${events.filter((e) => e.startChildWorkflowExecutionFailedEventAttributes).length} tries, ${((tsToMs(last?.eventTime) - approvedAt) / 3600_000).toFixed(2)} h of workflow time waited`);
    }
    assert.ok(failure, 'the deploy must fail');
    assert.equal(failure.type, 'DeployFailed');
    assert.match(failure.message, /database restore from backup production-\S+ FAILED \(approved by bob; restore run llmchat-data-production\): a backup or restore of production was still running under llmchat-data-production after 1440 min of waiting; the restore did not start/);
    assert.equal(await levelOf(fx.database.name), 2, 'nothing was restored: the schema stays at level 2');
    assert.equal(await servingVersion(fx.url), 'v1');

    const events = (await h.fetchHistory()).events ?? [];
    const tries = events.filter((e) => e.startChildWorkflowExecutionFailedEventAttributes).length;
    const failed = events.find((e) => e.workflowExecutionFailedEventAttributes);
    assert.ok(failed);
    const waited = tsToMs(failed.eventTime) - approvedAt;
    console.log(`restore wait: ${events.length} history events, ${tries} tries to start the restore, ${(waited / 3600_000).toFixed(2)} h of workflow time, ${wallMs} ms of wall time`);
    assert.ok(waited >= DAY_MS, `waited ${waited / 3600_000} h`);
    assert.ok(events.length < 2_000, `${events.length} history events for a day of waiting (${tries} tries)`);
    assert.ok(tries <= 105, `${tries} tries`);
    await held.terminate('test over').catch(() => {}); // may be over already: the server skipped on past it
  });
});
