/**
 * The restore's approval timeout at its production default (`backup.approvalTimeout`, 24h), on Temporal's
 * time-skipping test server (the Java SDK's, from Maven Central: `scripts/services.sh up timeskip`): the restore
 * over live data waits a day of workflow time for approveRestore, gives up with `ApprovalTimeout` and changes
 * nothing — in seconds of wall time. Nothing is mocked: the real worker, activities, PostgreSQL and backup files;
 * only the server is the test server instead of the dev server.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir } from 'node:fs/promises';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { OpsConfig } from '../src/common/config/index.js';
import { createWorker } from '../src/worker.js';
import type { ApprovalStatus } from '../src/workflows/common/approval.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import type { RestoreOutcome } from '../src/workflows/backup/restore.js';
import type { RestoreStatus } from '../src/workflows/backup/shared.js';
import { query, seedFixture, tableDigests, type Fixture } from './support/backup-fixture.js';
import { waitFor } from './support/services.js';
import { startTimeSkippingServer, testConfig, workflowBundle } from './support/temporal.js';

const DAY_MS = 24 * 3600_000;

describe('restore approval timeout at the production default, on the time-skipping test server', { timeout: 600_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let cfg: OpsConfig;
  let worker: Worker;
  let running: Promise<void>;
  let baseline: BackupResult;
  const taskQueue = `test-approval-timeskip-${randomUUID()}`;

  before(async () => {
    env = await startTimeSkippingServer();
    fx = await seedFixture(2_000);
    const spec = { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app };
    // No backup.approvalTimeout in this config: the default applies, as in production.
    cfg = testConfig({ address: env.address, taskQueue, environments: { production: spec } });
    worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
    baseline = await env.client.workflow.execute('backup', {
      taskQueue,
      workflowId: `backup-${randomUUID()}`,
      args: [{ environment: 'production', kinds: ['database'], requestedBy: 'test', reason: 'time-skipping baseline' }],
    });
  });

  after(async () => {
    worker?.shutdown();
    await running?.catch(() => {});
    await fx?.database.drop();
    await env?.teardown();
  });

  it('waits 24 h of workflow time for approveRestore, then gives up with ApprovalTimeout and nothing changed', { timeout: 180_000 }, async () => {
    assert.equal(cfg.backup.approvalTimeout, DAY_MS, 'the default backup.approvalTimeout is 24h');
    const before = await tableDigests(fx.database.name);
    const backupsBefore = (await readdir(cfg.environments.production!.paths.backups)).sort();

    const h: WorkflowHandle = await env.client.workflow.start<(i: unknown) => Promise<RestoreOutcome>>('restore', {
      taskQueue,
      workflowId: `restore-${randomUUID()}`,
      args: [{ environment: 'production', backupId: baseline.backupId, kind: 'database', requestedBy: 'bob' }],
    });
    await waitFor('restore awaiting approval', async () => (await h.query<RestoreStatus>('restoreStatus')).state === 'awaiting-approval', 60_000);
    const gate = await h.query<ApprovalStatus>('restoreApproval');
    assert.equal(gate.state, 'open');
    const openedAt = Date.parse(gate.openedAt ?? '');
    assert.equal(Date.parse(gate.deadline ?? '') - openedAt, DAY_MS, 'the gate waits exactly the configured timeout');
    // Nothing moves the workflow clock on its own: it is still hours away from the deadline.
    assert.ok((await env.currentTimeMs()) - openedAt < 3600_000, 'the clock has not skipped before the result is awaited');

    const wall = Date.now();
    let failure: (Error & { type?: string }) | undefined;
    try {
      await h.result(); // the test server skips time to the next timer while the result is awaited
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      failure = err.cause as Error & { type?: string };
    }
    const wallMs = Date.now() - wall;
    assert.ok(failure, 'the restore must fail when nobody decides');
    assert.equal(failure.type, 'ApprovalTimeout');
    assert.match(failure.message, /^No approveRestore within 86400 s; nothing was changed$/);
    assert.ok(wallMs < 60_000, `a day of workflow time took ${wallMs} ms of wall time`);

    // When it gave up, in workflow time, from the history (the server's clock after the result is no measure: once
    // the workflow is closed and the result awaited, the test server skips on to its own far-off timers).
    const events = (await h.fetchHistory()).events ?? [];
    const failed = events.find((e) => e.workflowExecutionFailedEventAttributes);
    assert.ok(failed, 'the history ends with the failure');
    const gaveUpAfter = tsToMs(failed.eventTime) - openedAt;
    assert.ok(gaveUpAfter >= DAY_MS && gaveUpAfter < DAY_MS + 3600_000, `gave up ${gaveUpAfter / 3600_000} h after the gate opened: at 24 h`);
    // One 24 h timer for the gate, fired a day (workflow time) after it started.
    const timers = events.filter((e) => e.timerStartedEventAttributes?.startToFireTimeout);
    const gateTimer = timers.find((e) => tsToMs(e.timerStartedEventAttributes?.startToFireTimeout) === DAY_MS);
    assert.ok(gateTimer, `a 24 h timer; timers seen: ${timers.map((e) => tsToMs(e.timerStartedEventAttributes?.startToFireTimeout)).join(', ')}`);
    const fired = events.find((e) => e.timerFiredEventAttributes?.timerId === gateTimer.timerStartedEventAttributes?.timerId);
    assert.ok(fired, 'the gate timer fired');
    assert.ok(tsToMs(fired.eventTime) - tsToMs(gateTimer.eventTime) >= DAY_MS, 'fired a day after it started');

    // Nothing changed: same data, no safety backup taken, no staging database left, the gate says timed-out.
    assert.deepEqual(await tableDigests(fx.database.name), before, 'the live database is untouched');
    assert.deepEqual((await readdir(cfg.environments.production!.paths.backups)).sort(), backupsBefore, 'no safety backup was taken');
    const staging = await query('llmchat', async (c) => (await c.query<{ datname: string }>('SELECT datname FROM pg_database WHERE datname LIKE $1', [`${fx.database.name}_%`])).rows);
    assert.deepEqual(staging, [], 'no staging database');
    const late = await h.query<ApprovalStatus>('restoreApproval');
    assert.equal(late.state, 'timed-out');
    assert.equal(late.deadline, undefined);
  });
});
