/**
 * Approvals of a restore over live data, as requests with an answer (update) or plain signals, on the real dev
 * server and PostgreSQL: early decisions are refused (consent follows the information), self-approval is refused (four eyes), every decision is
 * recorded and answered, a rejection stops an approved restore until its point of no return, and an unanswered
 * request times out without changing anything.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import pg from 'pg';
import type { BackupManifest } from '../src/activities/backup/manifest.js';
import type { OpsConfig } from '../src/common/config/index.js';
import { RequestedByKey } from '../src/common/search-attributes.js';
import { createWorker } from '../src/worker.js';
import type { ApprovalStatus, Decision, DecisionAnswer } from '../src/workflows/common/approval.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import type { RestoreOutcome } from '../src/workflows/backup/restore.js';
import type { RestoreStatus } from '../src/workflows/backup/shared.js';
import { approveAtGate, openGate } from './support/approvals.js';
import { query, seedFixture, tableDigests, type Fixture } from './support/backup-fixture.js';
import { PG, waitFor } from './support/services.js';
import { startDevServer, testConfig, workflowBundle } from './support/temporal.js';
import { executeUpdateRetrying } from '../src/common/update-retry.js';

const T = { timeout: 180_000 };

describe('restore approvals (update with an answer, signal never dropped, four eyes)', { timeout: 900_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let cfg: OpsConfig;
  const workers: { worker: Worker; running: Promise<void> }[] = [];
  let baseline: BackupResult;
  const taskQueue = `test-approval-${randomUUID()}`;
  const shortQueue = `test-approval-short-${randomUUID()}`;

  const start = (input: Record<string, unknown>, queue = taskQueue) =>
    env.client.workflow.start<(i: unknown) => Promise<RestoreOutcome>>('restore', { taskQueue: queue, workflowId: `restore-${randomUUID()}`, args: [input] });
  const decide = (h: WorkflowHandle, name: 'approveRestore' | 'rejectRestore', d: Decision) => executeUpdateRetrying<DecisionAnswer, [Decision]>(h, name, [d]);
  /** The decision naming the open gate (an approval must). */
  const gated = async (h: WorkflowHandle, d: Decision): Promise<Decision> => ({ ...d, gate: (await openGate(h, 'restore')).gateId as string });
  const statusOf = (h: WorkflowHandle) => h.query<RestoreStatus>('restoreStatus');
  /** Waits until the restore is in `state`, and fails the test if it never gets there. */
  const reach = async (h: WorkflowHandle, state: RestoreStatus['state']) => {
    await waitFor(`restore in state ${state}`, async () => (await statusOf(h)).state === state, 60_000);
    assert.equal((await statusOf(h)).state, state);
  };
  const failure = async (p: Promise<unknown>): Promise<{ type?: string; message: string }> => {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      let inner = err.cause as Error & { type?: string };
      while (inner.cause instanceof Error) inner = inner.cause as Error & { type?: string };
      return { type: inner.type, message: inner.message };
    }
    assert.fail('the restore should have failed');
  };
  const configPath = () => path.join(fx.dirs.config, 'llmchat.env');

  before(async () => {
    env = await startDevServer();
    fx = await seedFixture(2_000);
    const spec = { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app };
    cfg = testConfig({ address: env.address, taskQueue, environments: { production: spec } });
    // A second worker whose config waits only 3 s for a decision (the approval-timeout test).
    const short = testConfig({ address: env.address, taskQueue: shortQueue, environments: { production: spec }, extra: { backup: { approvalTimeout: '3s' } } });
    for (const c of [cfg, short]) {
      const worker = await createWorker(c, env.nativeConnection, { workflowBundle: await workflowBundle() });
      workers.push({ worker, running: worker.run() });
    }
    baseline = await env.client.workflow.execute('backup', {
      taskQueue,
      workflowId: `backup-${randomUUID()}`,
      args: [{ environment: 'production', kinds: ['database', 'config'], requestedBy: 'test', reason: 'approval baseline' }],
    });
  });

  after(async () => {
    for (const w of workers) w.worker.shutdown();
    await Promise.all(workers.map((w) => w.running));
    await fx?.database.drop();
    await env?.teardown();
  });

  it('refuses an approval sent the moment the restore starts (consent follows the information); one given at the open gate applies', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=1\n');
    const h = await start({ environment: 'production', backupId: baseline.backupId, kind: 'config', requestedBy: 'bob' });
    await h.signal('approveRestore', { by: 'alice', comment: 'go ahead' }); // before the plan is even known
    const gate = await openGate(h, 'restore');
    assert.match(gate.subject ?? '', /restore config of backup .* \(backup taken 20.*\): every change made to .* since the backup is LOST/);
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=1\n', 'the early approval was not kept');
    assert.equal((await approveAtGate(h, 'restore', { by: 'alice', comment: 'read it' }))?.accepted, true);
    const res = await h.result();
    assert.equal(res.approvedBy, 'alice');
    assert.equal(await readFile(configPath(), 'utf8'), 'LLMCHAT_ENVIRONMENT=production\n');
    const approval = await h.query<ApprovalStatus>('restoreApproval');
    assert.equal(approval.state, 'committed');
    assert.deepEqual(
      approval.decisions.map((d) => [d.verdict, d.by, d.via, d.accepted, d.comment]),
      [['approve', 'alice', 'signal', false, 'go ahead'], ['approve', 'alice', 'update', true, 'read it']],
    );
    assert.match(approval.decisions[0]?.answer ?? '', /refused: no approval is awaited yet/);
  });

  it('refuses self-approval with an answer, records it, and accepts another person; later decisions are answered too', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=2\n');
    const h = await start({ environment: 'production', backupId: baseline.backupId, kind: 'config', requestedBy: 'bob' });
    await reach(h, 'awaiting-approval');
    const self = await decide(h, 'approveRestore', await gated(h, { by: 'bob' }));
    assert.equal(self.accepted, false);
    assert.match(self.message, /bob requested this operation and cannot approve it/);
    assert.equal((await statusOf(h)).state, 'awaiting-approval', 'a refused approval changes nothing');
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=2\n');

    const ok = await decide(h, 'approveRestore', await gated(h, { by: 'carol', comment: 'checked the backup' }));
    assert.deepEqual([ok.accepted, ok.message], [true, 'approved by carol']);
    const again = await decide(h, 'approveRestore', { by: 'dave' }).catch((err: Error) => err);
    // Either answered "already approved" or, if the restore already finished, "no decision is awaited".
    if (!(again instanceof Error)) {
      assert.equal(again.accepted, false);
      assert.match(again.message, /already approved by carol|past its point of no return|no decision is awaited/);
    }
    const res = await h.result();
    assert.equal(res.approvedBy, 'carol');
    const decisions = (await h.query<ApprovalStatus>('restoreApproval')).decisions;
    assert.deepEqual(decisions.slice(0, 2).map((d) => [d.by, d.via, d.accepted]), [['bob', 'update', false], ['carol', 'update', true]]);
  });

  it('answers malformed decisions clearly: a bad update is rejected, a bad signal is recorded as refused', T, async () => {
    const h = await start({ environment: 'production', backupId: baseline.backupId, kind: 'config', requestedBy: 'bob' });
    await reach(h, 'awaiting-approval');
    await assert.rejects(decide(h, 'approveRestore', { by: '' }), (err: unknown) => err instanceof WorkflowUpdateFailedError && /must name who decides/.test(String((err.cause as Error)?.message)));
    await assert.rejects(decide(h, 'approveRestore', { by: 'carol', comment: 'x'.repeat(501) }), (err: unknown) => err instanceof WorkflowUpdateFailedError && /at most 500/.test(String((err.cause as Error)?.message)));
    await h.signal('approveRestore', { who: 'mallory' });
    await waitFor('the bad signal recorded', async () => (await h.query<ApprovalStatus>('restoreApproval')).decisions.length === 1);
    const [bad] = (await h.query<ApprovalStatus>('restoreApproval')).decisions;
    assert.equal(bad?.accepted, false);
    assert.match(bad?.answer ?? '', /refused: Expected a decision/);
    assert.equal((await statusOf(h)).state, 'awaiting-approval');
    const no = await decide(h, 'rejectRestore', { by: 'bob', comment: 'changed my mind' }); // the requester may withdraw
    assert.equal(no.accepted, true);
    const f = await failure(h.result());
    assert.equal(f.type, 'RestoreRejected');
    assert.match(f.message, /rejected by bob: changed my mind; nothing was changed/);
  });

  it('a rejection after the approval stops the restore before its point of no return, and says so', T, async () => {
    const before = await tableDigests(fx.database.name);
    // The safety backup's pg_dump waits on this lock, so the approved restore is provably mid-way when rejected.
    const blocker = new pg.Client({ ...PG, database: fx.database.name });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
    let h: WorkflowHandle | undefined;
    try {
      h = await start({ environment: 'production', backupId: baseline.backupId, kind: 'database', requestedBy: 'bob' });
      await reach(h, 'awaiting-approval');
      // The locked table cannot be counted for the gate: it opens anyway, saying that table's loss is unknown.
      const gate = await openGate(h, 'restore');
      assert.match(gate.details?.backup?.writesLost?.error ?? '', /1 table\(s\) locked or too large to count .*: public\.messages$/);
      assert.match(gate.subject ?? '', /their loss unknown: public\.messages/);
      assert.equal((await decide(h, 'approveRestore', await gated(h, { by: 'alice' }))).accepted, true);
      await reach(h, 'safety-backup');
      const no = await decide(h, 'rejectRestore', { by: 'carol', comment: 'wrong backup id' });
      assert.equal(no.accepted, true, no.message);
      assert.match(no.message, /stopped before the point of no return, nothing was changed/);
      const f = await failure(h.result());
      assert.equal(f.type, 'RestoreRejected');
      assert.match(f.message, /rejected by carol: wrong backup id/);
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    assert.deepEqual(await tableDigests(fx.database.name), before, 'the live database is untouched');
    const names = await query('llmchat', async (c) => (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${fx.database.name}_%`])).rows);
    assert.deepEqual(names, [], 'no staging database left');
    // The cancelled safety backup is marked failed in its manifest, never left looking usable.
    const dir = cfg.environments.production!.paths.backups;
    const manifests = await Promise.all((await readdir(dir)).map(async (n) => JSON.parse(await readFile(path.join(dir, n, 'manifest.json'), 'utf8')) as BackupManifest));
    const safety = manifests.filter((m) => m.safetyFor === h?.workflowId);
    assert.equal(safety.length, 1);
    assert.equal(safety[0]?.status, 'failed');
  });

  it('a restore over live data is refused while a deploy of the environment runs, naming it; nothing is changed', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=4\n');
    // A deploy that holds the release id (on a queue no worker polls, so it stays running for the test).
    const release = await env.client.workflow.start('deploy', {
      taskQueue: `nobody-${randomUUID()}`,
      workflowId: 'llmchat-release-production',
      args: [{ environment: 'production', version: 'v9', requestedBy: 'zoe' }],
      typedSearchAttributes: [{ key: RequestedByKey, value: 'zoe' }],
    });
    try {
      const h = await start({ environment: 'production', backupId: baseline.backupId, kind: 'config', requestedBy: 'bob' });
      const f = await failure(h.result());
      assert.equal(f.type, 'ReleaseRunning');
      assert.match(f.message, /restore of config from .* refused: a deploy of production is running \(workflow llmchat-release-production, requested by zoe, started 20/);
      assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=4\n');
      // A restore into a new target touches nothing live, so a deploy does not stop it.
      const copy = await start({ environment: 'production', backupId: baseline.backupId, kind: 'config', target: `copy-${randomUUID().slice(0, 8)}`, requestedBy: 'bob' });
      assert.equal((await copy.result()).live, false);
    } finally {
      await release.terminate('test over');
    }
  });

  it('gives up after the approval timeout without changing anything', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=3\n');
    const h = await start({ environment: 'production', backupId: baseline.backupId, kind: 'config', requestedBy: 'bob' }, shortQueue);
    const f = await failure(h.result());
    assert.equal(f.type, 'ApprovalTimeout');
    assert.match(f.message, /No approveRestore within 3 s; nothing was changed/);
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=3\n');
    const late = await h.query<ApprovalStatus>('restoreApproval');
    assert.equal(late.state, 'timed-out');
  });
});
