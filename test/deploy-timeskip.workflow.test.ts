/**
 * A failed deploy's database-rollback gate at its production defaults (`deploy.approvalTimeout` 24h,
 * `deploy.escalateAfter` 30m), on Temporal's time-skipping test server (the Java SDK's, from Maven Central:
 * `scripts/services.sh up timeskip`). v2 migrates and fails verify; the app goes back to v1 by itself; the gate
 * waits. Workflow time is moved on by the test server: no escalation alert at 29 min, one at 30 min (to the real
 * webhook receiver), and after 24 h the gate gives up, leaving the schema at level 2 — in well under two minutes of
 * wall time. Nothing is mocked: the real worker and activities, Docker with the real images and nginx front,
 * PostgreSQL and an HTTP receiver; only the server is the test server instead of the dev server.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { tsToMs } from '@temporalio/common/lib/time.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { getEnvironment } from '../src/common/config/index.js';
import { readReleases } from '../src/activities/release/release-store.js';
import type { ApprovalStatus } from '../src/workflows/common/approval.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import { hasTokenCount, levelOf, sql, servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { waitFor } from './support/services.js';
import { alertReceiver, startTimeSkippingServer } from './support/temporal.js';

const MIN_MS = 60_000;
const DAY_MS = 24 * 60 * MIN_MS;

describe('database-rollback gate at the production defaults (24h, escalation at 30m), on the time-skipping test server', { timeout: 900_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  let sink: Awaited<ReturnType<typeof alertReceiver>>;
  const taskQueue = `test-deploy-timeskip-${randomUUID()}`;

  before(async () => {
    // /api/sessions/<unknown id> answers 404: a smoke check expecting 200 makes the deploy fail verify after it
    // migrated. No approvalTimeout or escalateAfter here: the defaults apply, as in production.
    stack = await startDeployStack({ taskQueue, alerts: true, server: startTimeSkippingServer, deploy: { smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }], backupBeforeDeploy: false } });
    ({ env, fx } = stack);
    sink = stack.sink!;
  });

  after(async () => {
    await stack?.stop();
  });

  it('no alert at 29 min, the escalation alert at 30 min, then the gate gives up at 24 h and the schema stays', { timeout: 300_000 }, async () => {
    const settings = getEnvironment(fx.cfg, 'production').deploy;
    assert.equal(settings.approvalTimeout, DAY_MS, 'the default deploy.approvalTimeout is 24h');
    assert.equal(settings.escalateAfter, 30 * MIN_MS, 'the default deploy.escalateAfter is 30m');
    const escalations = () => sink.received.filter((r) => r.body.type === 'db_rollback_waiting');

    const h = await env.client.workflow.start<(i: unknown) => Promise<DeployResult>>('deploy', {
      taskQueue,
      workflowId: `deploy-${randomUUID()}`,
      args: [{ environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 }],
    });
    await waitFor('the database rollback waits for a decision', async () => (await h.query<ApprovalStatus>('databaseRollbackStatus')).state === 'open', 180_000);
    const gate = await h.query<ApprovalStatus>('databaseRollbackStatus');
    const openedAt = Date.parse(gate.openedAt ?? '');
    assert.equal(Date.parse(gate.deadline ?? '') - openedAt, DAY_MS, 'the gate waits exactly deploy.approvalTimeout');
    assert.equal(await servingVersion(fx.url), 'v1', 'the app is back on v1 while the database waits');
    assert.equal(await levelOf(fx.database.name), 2);

    // 29 minutes of workflow time: no escalation yet.
    await env.sleep(29 * MIN_MS);
    const clock = (await env.currentTimeMs()) - openedAt;
    assert.ok(clock >= 29 * MIN_MS && clock < 30 * MIN_MS, `workflow clock ${clock / MIN_MS} min after the gate opened`);
    await new Promise((r) => setTimeout(r, 2_000)); // a moment of wall time in which a wrong alert could arrive
    assert.deepEqual(escalations(), [], 'no escalation alert before deploy.escalateAfter');

    // Past 30 minutes: the escalation alert reaches the webhook (real activities, real HTTP).
    await env.sleep(2 * MIN_MS);
    await waitFor('the escalation alert', async () => escalations().length === 1, 30_000);
    const [alert] = escalations();
    assert.equal(alert?.body.severity, 'critical');
    assert.equal(alert?.body.environment, 'production');
    assert.match(String(alert?.body.message), /level 2 to 1.*nobody answered for 30 min\. Approve: llmchat-ops approve-db-rollback --env production/);
    assert.equal((await h.query<ApprovalStatus>('databaseRollbackStatus')).state, 'open', 'the escalation does not decide');

    // Nobody decides: awaiting the result lets the server skip to the gate's deadline.
    const wall = Date.now();
    let failure: (Error & { type?: string; details?: unknown[] }) | undefined;
    try {
      await h.result();
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      failure = err.cause as Error & { type?: string; details?: unknown[] };
    }
    const wallMs = Date.now() - wall;
    assert.ok(failure, 'the deploy must fail');
    assert.equal(failure.type, 'DeployFailed');
    assert.match(failure.message, /verify failed: GET \/api\/sessions\/.*HTTP 404 \(expected 200\)/);
    assert.match(failure.message, /app back on v1; database left at level 2: rollback timed-out$/);
    assert.equal((failure.details?.[0] as { outcome: string }).outcome, 'database-left');
    assert.ok(wallMs < 60_000, `the rest of the day took ${wallMs} ms of wall time`);

    // The schema stays; the app stays on v1; the release record says database-left; one escalation only.
    assert.equal(await levelOf(fx.database.name), 2);
    assert.equal(await hasTokenCount(fx.database.name), true);
    assert.equal(await servingVersion(fx.url), 'v1');
    const stateDir = getEnvironment(fx.cfg, 'production').deploy.stateDir as string;
    assert.equal((await readReleases(stateDir, 'production')).history.at(-1)?.outcome, 'database-left');
    assert.equal(escalations().length, 1, 'escalated once');
    await waitFor('the deploy_failed alert', async () => sink.received.some((r) => r.body.type === 'deploy_failed'), 30_000);
    const gateAfter = await h.query<ApprovalStatus>('databaseRollbackStatus');
    assert.equal(gateAfter.state, 'timed-out');
    assert.deepEqual(gateAfter.decisions, []);

    // The history in workflow time (the server's clock after the result is no measure: once the workflow is closed
    // and the result awaited, the test server skips on to its own far-off timers): the 30 min and 24 h timers, the
    // alert sent 30 min after the gate opened, the gate's timer fired a day after it started, the end right after.
    const events = (await h.fetchHistory()).events ?? [];
    const failed = events.find((e) => e.workflowExecutionFailedEventAttributes);
    assert.ok(failed, 'the history ends with the failure');
    const gaveUpAfter = tsToMs(failed.eventTime) - openedAt;
    assert.ok(gaveUpAfter >= DAY_MS && gaveUpAfter < DAY_MS + 60 * MIN_MS, `gave up ${gaveUpAfter / MIN_MS / 60} h after the gate opened: at 24 h`);
    const started = events.filter((e) => e.timerStartedEventAttributes?.startToFireTimeout);
    const timerOf = (ms: number) => started.find((e) => tsToMs(e.timerStartedEventAttributes?.startToFireTimeout) === ms);
    const firedOf = (timer: (typeof events)[number] | undefined) => events.find((e) => e.timerFiredEventAttributes && e.timerFiredEventAttributes.timerId === timer?.timerStartedEventAttributes?.timerId);
    const escTimer = timerOf(30 * MIN_MS);
    const gateTimer = timerOf(DAY_MS);
    const timers = started.map((e) => tsToMs(e.timerStartedEventAttributes?.startToFireTimeout));
    assert.ok(escTimer && gateTimer, `a 30 min and a 24 h timer; timers seen: ${timers.join(', ')}`);
    const escFired = firedOf(escTimer);
    const gateFired = firedOf(gateTimer);
    assert.ok(escFired && gateFired, 'both timers fired');
    assert.ok(tsToMs(escFired.eventTime) - tsToMs(escTimer.eventTime) >= 30 * MIN_MS);
    assert.ok(tsToMs(gateFired.eventTime) - tsToMs(gateTimer.eventTime) >= DAY_MS);
    const delivered = events.filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverAlert');
    const first = delivered[0];
    assert.ok(first, 'deliverAlert was scheduled');
    const alertAfter = tsToMs(first.eventTime) - openedAt;
    assert.ok(alertAfter >= 30 * MIN_MS && alertAfter < 31 * MIN_MS, `the escalation alert was sent ${alertAfter / MIN_MS} min after the gate opened`);
  });
});
