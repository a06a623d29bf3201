/**
 * When a deploy fails after it migrated and switched, and the rollback workflow: on the real dev server, Docker,
 * nginx front and PostgreSQL. A smoke check that v2 fails makes its deploy fail verify after migration 002 ran:
 * the app goes back to v1 by itself; the database waits for approveDatabaseRollback — self-approval refused,
 * escalation alert when nobody answers, approved once (schema back at 1, other data intact), rejected once
 * (schema left). Then `rollback` to v1 with and without the database part.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { getEnvironment } from '../src/common/config/index.js';
import { readReleases } from '../src/activities/release/release-store.js';
import type { ApprovalStatus, Decision, DecisionAnswer } from '../src/workflows/common/approval.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import type { ReleaseProgress } from '../src/workflows/release/shared.js';
import type { RollbackResult } from '../src/workflows/release/rollback.js';
import { failureOf, hasTokenCount, levelOf, sql, migrateTo, requestLoop, servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { openGate } from './support/approvals.js';
import { waitFor } from './support/services.js';
import { alertReceiver, resetBefore } from './support/temporal.js';
import { executeUpdateRetrying } from '../src/common/update-retry.js';

const T = { timeout: 300_000 };

describe('failed deploy after migration: app rolled back by itself, database only on approval; rollback workflow', { timeout: 1_800_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  let sink: Awaited<ReturnType<typeof alertReceiver>>;
  const taskQueue = `test-deploy-rb-${randomUUID()}`;
  const start = (type: 'deploy' | 'rollback', input: unknown) =>
    env.client.workflow.start<(i: unknown) => Promise<DeployResult | RollbackResult>>(type, { taskQueue, workflowId: `${type}-${randomUUID()}`, args: [input] });
  const decide = (h: WorkflowHandle, name: 'approveDatabaseRollback' | 'rejectDatabaseRollback', d: Decision) => executeUpdateRetrying<DecisionAnswer, [Decision]>(h, name, [d]);
  /** The decision naming the open gate (an approval must). */
  const gated = async (h: WorkflowHandle, d: Decision): Promise<Decision> => ({ ...d, gate: (await openGate(h, 'db-rollback')).gateId as string });
  const awaitingApproval = async (h: WorkflowHandle) => {
    await waitFor('the database rollback waits for a decision', async () => (await h.query<ApprovalStatus>('databaseRollbackStatus')).state === 'open', 120_000);
    assert.equal((await h.query<ApprovalStatus>('databaseRollbackStatus')).state, 'open');
  };
  const stateDir = () => getEnvironment(fx.cfg, 'production').deploy.stateDir as string;

  before(async () => {
    // /api/sessions/<unknown id> answers 404: a smoke check expecting 200 makes every deploy fail verify.
    stack = await startDeployStack({ taskQueue, alerts: true, deploy: { smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }], escalateAfter: '3s', backupBeforeDeploy: false } });
    ({ env, fx } = stack);
    sink = stack.sink!;
  });

  after(async () => {
    await stack?.stop();
  });

  it('v2 migrates, fails verify: app back on v1 by itself; self-approval refused; escalation; approved → schema back at 1, data intact', T, async () => {
    await sql(fx.database.name, "INSERT INTO chat_sessions (user_id, title) VALUES ('keep-me', 'survives the rollback')");
    const loop = requestLoop(fx.url, 50);
    const h = await start('deploy', { environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 });
    // Consent before the fact (issue 15): sent while the deploy is still at work, before any failure is known —
    // refused and answered (update) or recorded as refused (signal), never kept for the gate.
    await h.signal('approveDatabaseRollback', { by: 'bob', comment: 'pre-approved' });
    const early = await decide(h, 'approveDatabaseRollback', { by: 'carol', comment: 'pre-approved too' });
    assert.equal(early.accepted, false);
    assert.equal(early.state, 'not-open');
    assert.match(early.message, /refused: no approval is awaited yet/);
    await awaitingApproval(h);
    // the app is already back on v1 while the database waits
    assert.equal(await servingVersion(fx.url), 'v1');
    assert.equal(await levelOf(fx.database.name), 2);
    const gate = await openGate(h, 'db-rollback');
    assert.equal(gate.state, 'open', 'the early approvals were not kept');
    assert.match(gate.gateId ?? '', /^db-rollback-[0-9a-f]{8}$/);
    assert.deepEqual(gate.details?.migration, { from: 2, to: 1 });
    assert.match(gate.details?.failure ?? '', /^deploy of v2 failed: verify failed: .*GET \/api\/sessions\/.*HTTP 404/);
    assert.match(gate.subject ?? '', /migrate production's database down from level 2 to 1 \(deploy of v2 failed: verify failed/);
    const p = await h.query<ReleaseProgress>('progress');
    assert.match(p.waitingFor ?? '', new RegExp(`approveDatabaseRollback or rejectDatabaseRollback \\{"by","comment","gate":"${gate.gateId}"\\}.*level 2 to 1.*not from alice`));
    assert.ok(p.steps.some((s) => s.name === 'app-rollback' && s.state === 'done'));
    const self = await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'alice' }));
    assert.equal(self.accepted, false);
    assert.match(self.message, /alice requested this operation and cannot approve it/);
    const unnamed = await decide(h, 'approveDatabaseRollback', { by: 'bob' });
    assert.equal(unnamed.accepted, false);
    assert.match(unnamed.message, new RegExp(`refused: an approval must name the gate it approves \\("gate"\\); the open gate is ${gate.gateId}: migrate production's database down from level 2 to 1`));
    const other = await decide(h, 'approveDatabaseRollback', { by: 'bob', gate: 'db-rollback-00000000' });
    assert.equal(other.accepted, false);
    assert.match(other.message, /names gate db-rollback-00000000, which is not open here/);
    await waitFor('escalation alert', async () => sink.received.some((r) => r.body.type === 'db_rollback_waiting'), 30_000);
    const alert = sink.received.find((r) => r.body.type === 'db_rollback_waiting');
    assert.match(String(alert?.body.title), new RegExp(`waits for approval \\(gate ${gate.gateId}\\)`));
    assert.match(String(alert?.body.message), new RegExp(`migrate production's database down from level 2 to 1 \\(deploy of v2 failed: verify failed.*Approve: llmchat-ops approve-db-rollback --env production --gate ${gate.gateId} -m "why"`));
    const ok = await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'bob', comment: 'incident 7' }));
    assert.equal(ok.accepted, true, ok.message);
    const f = await failureOf(h.result());
    const stats = await loop.stop();
    assert.equal(f.type, 'DeployFailed');
    assert.match(f.message, /verify failed: GET \/api\/sessions\/.*HTTP 404 \(expected 200\)/);
    assert.match(f.message, /app back on v1; database migrated down to level 1 \(approved by bob\)/);
    assert.equal(await levelOf(fx.database.name), 1);
    assert.equal(await hasTokenCount(fx.database.name), false);
    assert.equal((await sql(fx.database.name, "SELECT 1 FROM chat_sessions WHERE user_id = 'keep-me'")).length, 1, 'other data intact');
    assert.equal(await servingVersion(fx.url), 'v1');
    assert.equal(stats.failed, 0, stats.errors.join(', '));
    const records = await readReleases(stateDir(), 'production');
    assert.equal(records.current?.version, 'v1');
    assert.equal(records.history.at(-1)?.outcome, 'database-rolled-back');
    const closed = await h.query<ApprovalStatus>('databaseRollbackStatus');
    assert.deepEqual(closed.decisions.map((d) => [d.by, d.via, d.accepted]).sort(), [['alice', 'update', false], ['bob', 'signal', false], ['bob', 'update', false], ['bob', 'update', false], ['bob', 'update', true], ['carol', 'update', false]]);
  });

  it('a reset of an approved migrate-down deploy does not migrate down again over what a later release wrote', T, async () => {
    await migrateTo(fx.database.url, 1);
    const h = await start('deploy', { environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 });
    await awaitingApproval(h);
    assert.equal((await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'bob' }))).accepted, true);
    const f = await failureOf(h.result());
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'database-rolled-back');
    assert.equal(await levelOf(fx.database.name), 1);
    // A later release brings level 2 back and writes into its new column: nobody approved dropping that.
    await migrateTo(fx.database.url, 2);
    await sql(fx.database.name, "INSERT INTO messages (session_id, role, content, token_count) VALUES (gen_random_uuid(), 'user', 'written by v2', 42)");
    const reset = await resetBefore(env, h, (e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'migrateDown');
    const runId = reset.originalRunId;
    try {
      const r = env.client.workflow.getHandle(h.workflowId, reset.runId);
      const g = await failureOf(r.result());
      assert.equal(await levelOf(fx.database.name), 2, 'not migrated down again');
      assert.equal((await sql(fx.database.name, 'SELECT 1 FROM messages WHERE token_count = 42')).length, 1, 'what v2 wrote is still there');
      assert.equal(g.type, 'DeployFailed', g.message);
      assert.equal((g.details?.[0] as { outcome: string }).outcome, 'failed');
      assert.match(g.message, new RegExp(`database migrate-down to level 1 FAILED \\(approved by bob\\): migrate down to level 1 refused: this run \\(${reset.runId}\\) is a reset of run ${runId}.*llmchat-ops rollback --env production --database.*nothing was changed; the database is at level 2`), g.message);
      assert.equal((await readReleases(stateDir(), 'production')).history.at(-1)?.outcome, 'failed', 'the reset run recorded how it ended');
    } finally {
      await migrateTo(fx.database.url, 1);
    }
  });

  it('rejected: the schema is left as it is and the outcome says so (plain signal)', T, async () => {
    const h = await start('deploy', { environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 });
    await awaitingApproval(h);
    await h.signal('rejectDatabaseRollback', { by: 'bob', comment: 'keep the column' });
    const f = await failureOf(h.result());
    assert.match(f.message, /database left at level 2: rollback rejected by bob \(keep the column\)/);
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'database-left');
    assert.equal(await levelOf(fx.database.name), 2);
    assert.equal(await servingVersion(fx.url), 'v1');
    assert.equal((await readReleases(stateDir(), 'production')).history.at(-1)?.outcome, 'database-left');
  });

  it('rollback to v1 with the database part (approved) and without it', T, async () => {
    // Make v2 the current release first: the deploy's smoke check fails, so set the records by a rollback to v2.
    await migrateTo(fx.database.url, 2);
    const toV2 = await start('rollback', { environment: 'production', version: 'v2', requestedBy: 'carol' });
    const r2 = (await toV2.result()) as RollbackResult;
    assert.equal(r2.outcome, 'success');
    assert.equal(await servingVersion(fx.url), 'v2');
    let records = await readReleases(stateDir(), 'production');
    assert.equal(records.current?.version, 'v2');
    assert.equal(records.previous?.version, 'v1');

    // default target: the previous release (v1); the database part waits for approval
    const loop = requestLoop(fx.url, 50);
    const back = await start('rollback', { environment: 'production', requestedBy: 'carol', database: true });
    await awaitingApproval(back);
    assert.equal(await servingVersion(fx.url), 'v1', 'the app switches before the database waits');
    const ans = await decide(back, 'approveDatabaseRollback', await gated(back, { by: 'dave' }));
    assert.equal(ans.accepted, true);
    const r1 = (await back.result()) as RollbackResult;
    const stats = await loop.stop();
    assert.equal(r1.outcome, 'database-rolled-back');
    assert.equal(r1.version, 'v1');
    assert.equal(await levelOf(fx.database.name), 1);
    assert.equal(stats.failed, 0, stats.errors.join(', '));

    // without the database part: v2 again (schema stays at 1 — v2 then fails writes, so only the switch is checked)
    const plain = await start('rollback', { environment: 'production', version: 'v2', requestedBy: 'carol' });
    const r3 = (await plain.result()) as RollbackResult;
    assert.equal(r3.outcome, 'success');
    assert.equal(r3.database, undefined);
    assert.equal(await levelOf(fx.database.name), 1);
    records = await readReleases(stateDir(), 'production');
    assert.equal(records.current?.version, 'v2');
    assert.deepEqual(records.history.slice(-3).map((e) => [e.operation, e.version, e.outcome]), [
      ['rollback', 'v2', 'success'],
      ['rollback', 'v1', 'database-rolled-back'],
      ['rollback', 'v2', 'success'],
    ]);
  });

  it('rollback --database whose approved migrate-down fails: failed, recorded, notified; a new rollback --to v1 --database then goes down', T, async () => {
    // v2 serves (the test before), the schema is brought back to v2's level; a view on 002's column blocks its down migration.
    await migrateTo(fx.database.url, 2);
    await sql(fx.database.name, 'CREATE VIEW token_report AS SELECT token_count FROM messages');
    try {
      const back = await start('rollback', { environment: 'production', requestedBy: 'carol', database: true });
      await awaitingApproval(back);
      assert.equal((await decide(back, 'approveDatabaseRollback', await gated(back, { by: 'dave' }))).accepted, true);
      const f = await failureOf(back.result());
      assert.equal(f.type, 'RollbackFailed', f.message);
      assert.equal((f.details?.[0] as { outcome: string }).outcome, 'failed');
      assert.match(f.message, /v1 serves production again \(was v2\); database migrate-down FAILED after approval by dave: .*depend.*; it is at level 2/, f.message);
      assert.equal(await servingVersion(fx.url), 'v1');
      assert.equal(await levelOf(fx.database.name), 2);
      const records = await readReleases(stateDir(), 'production');
      assert.equal(records.current?.version, 'v1');
      assert.equal(records.previous?.version, 'v2');
      assert.equal(records.history.at(-1)?.outcome, 'failed');
      await waitFor('the critical rollback_failed alert', async () => sink.received.some((r) => r.body.type === 'rollback_failed'), 30_000);
    } finally {
      await sql(fx.database.name, 'DROP VIEW IF EXISTS token_report');
    }
    // The way out the message names: a new rollback to v1 with the database part, approved anew.
    const again = await start('rollback', { environment: 'production', version: 'v1', requestedBy: 'carol', database: true });
    await awaitingApproval(again);
    assert.equal((await decide(again, 'approveDatabaseRollback', await gated(again, { by: 'dave' }))).accepted, true);
    const r = (await again.result()) as RollbackResult;
    assert.equal(r.outcome, 'database-rolled-back');
    assert.equal(await levelOf(fx.database.name), 1);
    assert.equal(await servingVersion(fx.url), 'v1');
  });
});
