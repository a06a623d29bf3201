/**
 * deploy.databaseRollback: restore-backup, on the real dev server, Docker, nginx front and PostgreSQL. A smoke
 * check that v2 fails makes its deploy fail verify after migration 002 ran: the app goes back to v1 by itself and
 * the database waits for approveDatabaseRollback; approved (by another person) it restores the deploy's own
 * pre-deploy backup through the `restore` workflow as a child — schema back at level 1, rows written before the
 * backup intact, a row written after it gone. Rejected: schema left. A corrupted backup: the restore child fails
 * and the outcome names the run and the live database's state. The restore's pre-approval (`releaseApproval`) is
 * refused from anyone but the release workflow; a direct restore over live data still waits for approveRestore.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pg from 'pg';
import { getEnvironment } from '../src/common/config/index.js';
import { readReleases } from '../src/activities/release/release-store.js';
import { dataWorkflowId, releaseWorkflowId } from '../src/common/names.js';
import type { ApprovalStatus, Decision, DecisionAnswer } from '../src/workflows/common/approval.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import type { ReleaseProgress } from '../src/workflows/release/shared.js';
import type { RestoreOutcome } from '../src/workflows/backup/restore.js';
import type { RestoreStatus } from '../src/workflows/backup/shared.js';
import { failureOf, hasTokenCount, levelOf, sql, migrateTo, servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { openGate } from './support/approvals.js';
import { ROOT, waitFor } from './support/services.js';
import { alertReceiver, resetBefore } from './support/temporal.js';
import { executeUpdateRetrying } from '../src/common/update-retry.js';

const T = { timeout: 300_000 };
const RELEASE = releaseWorkflowId('production');
const DATA = dataWorkflowId('production');

const sessionsOf = async (db: string, user: string) => (await sql(db, `SELECT 1 FROM chat_sessions WHERE user_id = ${pg.escapeLiteral(user)}`)).length;

describe('deploy.databaseRollback: restore-backup — the pre-deploy backup restored through the restore workflow', { timeout: 1_800_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  let sink: Awaited<ReturnType<typeof alertReceiver>>;
  let firstBackup = '';
  const taskQueue = `test-deploy-restore-${randomUUID()}`;
  const deploy = (workflowId = RELEASE) =>
    env.client.workflow.start<(i: unknown) => Promise<DeployResult>>('deploy', { taskQueue, workflowId, args: [{ environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 0 }] });
  const startRestore = (input: Record<string, unknown>, workflowId = DATA) =>
    env.client.workflow.start<(i: unknown) => Promise<RestoreOutcome>>('restore', { taskQueue, workflowId, args: [input] });
  const decide = (h: WorkflowHandle, name: 'approveDatabaseRollback' | 'rejectDatabaseRollback', d: Decision) => executeUpdateRetrying<DecisionAnswer, [Decision]>(h, name, [d]);
  /** The decision naming the open gate (an approval must). */
  const gated = async (h: WorkflowHandle, d: Decision): Promise<Decision> => ({ ...d, gate: (await openGate(h, 'db-rollback')).gateId as string });
  const awaitingApproval = async (h: WorkflowHandle) => {
    await waitFor('the database rollback waits for a decision', async () => (await h.query<ApprovalStatus>('databaseRollbackStatus')).state === 'open', 180_000);
  };
  const stateDir = () => getEnvironment(fx.cfg, 'production').deploy.stateDir as string;
  const cli = (user: string, ...args: string[]) =>
    execa('node', ['bin/llmchat-ops.js', '--config', fx.configFile, ...args], { cwd: ROOT, reject: false, timeout: 120_000, env: { LLMCHAT_OPS_OPERATOR: user } });
  const db = () => fx.database.name;

  before(async () => {
    // /api/sessions/<unknown id> answers 404: a smoke check expecting 200 makes every deploy fail verify.
    stack = await startDeployStack({ taskQueue, alerts: true, deploy: { smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }], databaseRollback: 'restore-backup', backupBeforeDeploy: true } });
    ({ env, fx } = stack);
    sink = stack.sink!;
  });

  after(async () => {
    await stack?.stop();
  });

  it('refuses, before any change, a deploy that could not restore its backup: another workflow id, or skipBackup', T, async () => {
    const other = await deploy(`deploy-${randomUUID()}`);
    const f = await failureOf(other.result());
    assert.equal(f.type, 'DeployRefused');
    assert.match(f.message, /restore-backup.*trusted only from workflow id llmchat-release-production.*Nothing was changed/);
    const skip = await env.client.workflow.start('deploy', { taskQueue, workflowId: RELEASE, args: [{ environment: 'production', version: 'v2', requestedBy: 'alice', skipBackup: true }] });
    const g = await failureOf(skip.result());
    assert.equal(g.type, 'DeployRefused');
    assert.match(g.message, /it cannot be skipped/);
    assert.equal(await levelOf(db()), 1);
    assert.equal(await servingVersion(fx.url), 'v1');
  });

  it('v2 migrates, fails verify: approved by another person → the pre-deploy backup is restored (rows after it gone), app on v1', T, async () => {
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('before-deploy', 'in the backup')");
    const h = await deploy();
    await awaitingApproval(h);
    assert.equal(await servingVersion(fx.url), 'v1', 'the app is back on v1 while the database waits');
    assert.equal(await levelOf(db()), 2);
    const p = await h.query<ReleaseProgress>('progress');
    firstBackup = p.backupId ?? '';
    assert.match(firstBackup, /^production-/);
    const gate = await h.query<ApprovalStatus>('databaseRollbackStatus');
    assert.match(gate.subject ?? '', new RegExp(`restore production's database from backup ${firstBackup}, taken before this deploy .*every write made since the backup is LOST`));
    assert.match(p.waitingFor ?? '', /approveDatabaseRollback.*from backup .*taken before this deploy.*LOST.*not from alice/);
    // What would be lost, counted: the migration's own row in schema_migrations was written after the backup.
    assert.match(gate.gateId ?? '', /^db-rollback-[0-9a-f]{8}$/);
    assert.equal(gate.details?.backup?.id, firstBackup);
    assert.match(gate.details?.failure ?? '', /verify failed/);
    assert.deepEqual(gate.details?.backup?.writesLost?.changed.find((c) => c.table === 'public.schema_migrations'), { table: 'public.schema_migrations', backup: 1, live: 2 }, JSON.stringify(gate.details));
    assert.match(gate.subject ?? '', /every write made since the backup is LOST: \d+ row\(s\) written since the backup go and \d+ row\(s\) deleted since come back \(rows in the backup → now: .*public\.schema_migrations 1 → 2/);

    // Written after the backup: the restore must take it away.
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('after-backup', 'lost by the restore')");

    // While the deploy runs, an operator's restore over live data is still refused (only the release's own child passes).
    const direct = await startRestore({ environment: 'production', backupId: firstBackup, kind: 'database', requestedBy: 'mallory' });
    const refused = await failureOf(direct.result());
    assert.equal(refused.type, 'ReleaseRunning');

    const self = await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'alice' }));
    assert.equal(self.accepted, false);
    assert.match(self.message, /alice requested this operation and cannot approve it/);
    // The CLI: without --gate it shows the gate, what would be lost, and the command; with it, it approves.
    const bare = await cli('bob', 'approve-db-rollback', '--env', 'production', '-m', 'incident 8');
    assert.equal(bare.exitCode, 1);
    assert.match(bare.stderr, new RegExp(`name the gate you approve with --gate: the deploy of production waits at gate ${gate.gateId}:`));
    assert.match(bare.stderr, /restore production's database from backup .*every write made since the backup is LOST: \d+ row\(s\) written since the backup go/);
    assert.match(bare.stderr, new RegExp(`llmchat-ops approve-db-rollback --env production --gate ${gate.gateId} -m "why"`));
    const ok = await cli('bob', 'approve-db-rollback', '--env', 'production', '--gate', gate.gateId as string, '-m', 'incident 8');
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`^gate ${gate.gateId} — restore production's database from backup ${firstBackup}.*LOST.*: approved by bob$`, 'm'));

    const f = await failureOf(h.result());
    assert.equal(f.type, 'DeployFailed');
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'database-rolled-back');
    assert.match(f.message, /verify failed/);
    assert.match(f.message, new RegExp(`app back on v1; database restored from backup ${firstBackup} \\(approved by bob; restore run ${DATA} \\(run [0-9a-f-]+\\); the data from before the restore is in safety backup production-\\S+; migration level 1\\)`));

    // the live database is the pre-deploy one
    assert.equal(await levelOf(db()), 1);
    assert.equal(await hasTokenCount(db()), false);
    assert.equal(await sessionsOf(db(), 'before-deploy'), 1, 'rows written before the backup are intact');
    assert.equal(await sessionsOf(db(), 'after-backup'), 0, 'the row written after the backup is gone');
    assert.equal(await servingVersion(fx.url), 'v1');
    await waitFor('v1 answers /health/db on the restored database', async () => (await fetch(`${fx.url}/health/db`).catch(() => undefined))?.status === 200, 30_000);

    // the restore ran as the deploy's child, recorded who approved it where
    const runId = /restore run \S+ \(run ([0-9a-f-]+)\)/.exec(f.message)?.[1];
    const child = env.client.workflow.getHandle(DATA, runId);
    const desc = await child.describe();
    assert.equal(desc.type, 'restore');
    assert.equal(desc.parentExecution?.workflowId, RELEASE);
    const outcome = (await child.result()) as RestoreOutcome;
    assert.equal(outcome.backupId, firstBackup);
    assert.equal(outcome.live, true);
    assert.equal(outcome.approvedBy, 'bob');
    assert.equal(outcome.requestedBy, 'alice');
    assert.deepEqual({ ...outcome.approvedIn, runId: undefined }, { workflowId: RELEASE, runId: undefined, gate: 'approveDatabaseRollback', comment: 'incident 8' });
    assert.equal(outcome.approvedIn?.runId, (await h.describe()).runId);
    assert.match(outcome.safetyBackupId ?? '', /^production-/);
    const st = await child.query<RestoreStatus>('restoreStatus');
    assert.equal(st.approval.state, 'committed', 'pre-approved by the deploy, then past its point of no return');
    assert.equal(st.approval.approvedBy, 'bob');
    assert.deepEqual(st.approval.decisions, []);

    const records = await readReleases(stateDir(), 'production');
    assert.equal(records.current?.version, 'v1');
    assert.equal(records.history.at(-1)?.outcome, 'database-rolled-back');
    await waitFor('the outcome notification', async () => sink.received.some((r) => r.body.type === 'deploy_failed' && String(r.body.message).includes(`database restored from backup ${firstBackup}`)), 30_000);
  });

  it('a direct restore claiming the release approval is refused; without it, over live data it waits for approveRestore', T, async () => {
    assert.ok(firstBackup, 'needs the backup of the previous test');
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('still-here', 'not touched')");
    for (const workflowId of [DATA, RELEASE, `restore-${randomUUID()}`]) {
      const h = await startRestore({ environment: 'production', backupId: firstBackup, kind: 'database', requestedBy: 'mallory', releaseApproval: { by: 'bob' } }, workflowId);
      const f = await failureOf(h.result());
      assert.equal(f.type, 'BadInput', workflowId);
      assert.match(f.message, /`releaseApproval` is accepted only from llmchat-release-production .*started directly, not by a workflow.*nothing was changed/);
    }
    // malformed pre-approvals are refused by the input schema
    for (const bad of [{ by: 'bob', extra: 1 }, { by: '' }, 'bob', { by: 'bob', comment: 'x\u001b[2J' }]) {
      const f = await failureOf((await startRestore({ environment: 'production', backupId: firstBackup, kind: 'database', requestedBy: 'mallory', releaseApproval: bad })).result());
      assert.equal(f.type, 'BadInput');
      assert.match(f.message, /releaseApproval/);
    }
    // the ordinary path: waits for approveRestore from another person, and a rejection changes nothing
    const h = await startRestore({ environment: 'production', backupId: firstBackup, kind: 'database', requestedBy: 'mallory' });
    await waitFor('the restore waits for approval', async () => (await h.query<RestoreStatus>('restoreStatus')).state === 'awaiting-approval', 60_000);
    const self = await executeUpdateRetrying<DecisionAnswer, [Decision]>(h, 'approveRestore', [{ by: 'mallory', gate: (await openGate(h, 'restore')).gateId as string }]);
    assert.match(self.message, /mallory requested this operation/);
    assert.equal(self.accepted, false);
    await executeUpdateRetrying<DecisionAnswer, [Decision]>(h, 'rejectRestore', [{ by: 'bob' }]);
    assert.equal((await failureOf(h.result())).type, 'RestoreRejected');
    assert.equal(await sessionsOf(db(), 'still-here'), 1);
  });

  it('rejected: the schema is left as it is and nothing is restored', T, async () => {
    const h = await deploy();
    await awaitingApproval(h);
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('after-backup-2', 'kept: nothing restored')");
    await h.signal('rejectDatabaseRollback', { by: 'bob', comment: 'keep the data' });
    const f = await failureOf(h.result());
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'database-left');
    assert.match(f.message, /database left at level 2: rollback rejected by bob \(keep the data\)/);
    assert.equal(await levelOf(db()), 2);
    assert.equal(await sessionsOf(db(), 'after-backup-2'), 1);
    assert.equal(await servingVersion(fx.url), 'v1');
  });

  it('the restore child fails (backup corrupted while waiting): the outcome names the restore run and the live database state', T, async () => {
    // the previous test left the schema at 2: bring it back to 1 so the deploy migrates again
    await migrateTo(fx.database.url, 1);
    const h = await deploy();
    await awaitingApproval(h);
    const backupId = (await h.query<ReleaseProgress>('progress')).backupId as string;
    const dir = path.join(getEnvironment(fx.cfg, 'production').paths.backups, backupId);
    const file = path.join(dir, (await readdir(dir)).find((n) => n.startsWith('database.dump')) as string);
    const bytes = await readFile(file);
    const at = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
    await writeFile(file, bytes);
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('after-backup-3', 'kept: restore failed')");
    assert.equal((await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'bob' }))).accepted, true);
    const f = await failureOf(h.result());
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'failed');
    assert.match(f.message, new RegExp(`database restore from backup ${backupId} FAILED \\(approved by bob; restore run ${DATA} \\(run [0-9a-f-]+\\)\\): .*does not match its manifest.*; the live database keeps its name \\(the restore swaps atomically\\) and it is still the deploy's database at level 2 \\(nothing was swapped in\\)`, 'i'));
    assert.equal(await levelOf(db()), 2);
    assert.equal(await sessionsOf(db(), 'after-backup-3'), 1);
    assert.equal(await servingVersion(fx.url), 'v1');
    assert.equal((await readReleases(stateDir(), 'production')).history.at(-1)?.outcome, 'failed');
  });

  it('approved, then at once rejected: the rejection reaches the restore before its swap — nothing restored, the answer says so', T, async () => {
    await migrateTo(fx.database.url, 1);
    const h = await deploy();
    await awaitingApproval(h);
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('after-backup-4', 'kept: rejected in time')");
    const ok = await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'bob' }));
    assert.equal(ok.accepted, true, ok.message);
    const no = await decide(h, 'rejectDatabaseRollback', { by: 'carol', comment: 'wrong call, keep the data' });
    assert.equal(no.accepted, true, no.message);
    assert.match(no.message, /rejected by carol after approval by bob; stopped before the point of no return, nothing was changed/);
    const f = await failureOf(h.result());
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'database-left');
    assert.match(f.message, /database left at level 2: rollback rejected by carol \(wrong call, keep the data\)/);
    assert.equal(await levelOf(db()), 2);
    assert.equal(await sessionsOf(db(), 'after-backup-4'), 1, 'nothing was restored');
    assert.equal(await servingVersion(fx.url), 'v1');
    // the restore child was stopped by the forwarded rejection
    const child = env.client.workflow.getHandle(DATA);
    assert.equal((await child.describe()).parentExecution?.runId, (await h.describe()).runId);
    const c = await failureOf(child.result());
    assert.match(c.message, /Restore rejected by carol: wrong call, keep the data; nothing was changed/);
    assert.equal((await readReleases(stateDir(), 'production')).history.at(-1)?.outcome, 'database-left');
  });

  it('a reset of the deploy run (to just before it started the restore) does not replay the old approval over live data', T, async () => {
    await migrateTo(fx.database.url, 1);
    const h = await deploy();
    await awaitingApproval(h);
    assert.equal((await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'bob' }))).accepted, true);
    const f = await failureOf(h.result());
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'database-rolled-back');
    assert.equal(await levelOf(db()), 1);
    // Written after the approved restore: nobody approved taking it away.
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('after-restore', 'nobody approved removing this')");
    const reset = await resetBefore(env, h, (e) => e.startChildWorkflowExecutionInitiatedEventAttributes?.workflowType?.name === 'restore');
    const runId = reset.originalRunId;
    const r = env.client.workflow.getHandle(RELEASE, reset.runId);
    const g = await failureOf(r.result());
    assert.equal(await sessionsOf(db(), 'after-restore'), 1, 'the live database was not restored again');
    assert.equal((g.details?.[0] as { outcome: string }).outcome, 'failed');
    assert.match(g.message, new RegExp(`database restore from backup \\S+ FAILED \\(approved by bob; .*is a reset of run ${runId}.*nothing was changed; the live database keeps its name .* and it is at migration level 1`));
  });

  it('the data id is held by another run when the approval comes: the approved restore waits for it, then runs', T, async () => {
    await migrateTo(fx.database.url, 1);
    const h = await deploy();
    await awaitingApproval(h);
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('after-backup-5', 'lost once the restore runs')");
    // A run nobody works on holds llmchat-data-production (as a long nightly backup would).
    const holder = await env.client.workflow.start('backup', { taskQueue: `nobody-${randomUUID()}`, workflowId: DATA, args: [{}] });
    assert.equal((await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'bob' }))).accepted, true);
    await waitFor('the approved restore waits for the data id', async () => /the approved restore waits for llmchat-data-production/.test((await h.query<ReleaseProgress>('progress')).waitingFor ?? ''), 60_000);
    assert.equal(await sessionsOf(db(), 'after-backup-5'), 1);
    await holder.terminate('the long backup ended');
    const f = await failureOf(h.result());
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'database-rolled-back', f.message);
    assert.equal(await levelOf(db()), 1);
    assert.equal(await sessionsOf(db(), 'after-backup-5'), 0);
  });

  it('…and a rejection while it waits for the data id stops it: nothing restored', T, async () => {
    await migrateTo(fx.database.url, 1);
    const h = await deploy();
    await awaitingApproval(h);
    await sql(db(), "INSERT INTO chat_sessions (user_id, title) VALUES ('after-backup-6', 'kept: rejected while waiting')");
    const holder = await env.client.workflow.start('backup', { taskQueue: `nobody-${randomUUID()}`, workflowId: DATA, args: [{}] });
    assert.equal((await decide(h, 'approveDatabaseRollback', await gated(h, { by: 'bob' }))).accepted, true);
    await waitFor('the approved restore waits for the data id', async () => /the approved restore waits for llmchat-data-production/.test((await h.query<ReleaseProgress>('progress')).waitingFor ?? ''), 60_000);
    const no = await decide(h, 'rejectDatabaseRollback', { by: 'carol' });
    assert.equal(no.accepted, true, no.message);
    assert.match(no.message, /stopped before the point of no return/);
    const f = await failureOf(h.result());
    await holder.terminate('probe done');
    assert.equal((f.details?.[0] as { outcome: string }).outcome, 'database-left', f.message);
    assert.match(f.message, /database left at level 2: rollback rejected by carol/);
    assert.equal(await levelOf(db()), 2);
    assert.equal(await sessionsOf(db(), 'after-backup-6'), 1);
  });
});
