/**
 * The restore's approval gate attacked as a hostile or careless operator would, on the real dev server and
 * PostgreSQL: workflow cancellation at every stage of the gate (with decisions in flight), decisions with odd,
 * oversized or deceptive payloads, decisions to restores that need none, and look-alike names that would dodge
 * the four-eyes rule. Each case is a defect that was found this way; the test keeps it fixed.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { CancelledFailure, WorkflowFailedError, WorkflowUpdateFailedError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import pg from 'pg';
import type { BackupManifest } from '../src/activities/backup/manifest.js';
import type { OpsConfig } from '../src/common/config/index.js';
import { OutcomeKey } from '../src/common/search-attributes.js';
import { createWorker } from '../src/worker.js';
import type { ApprovalStatus, Decision, DecisionAnswer } from '../src/workflows/common/approval.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import type { RestoreOutcome } from '../src/workflows/backup/restore.js';
import type { RestoreStatus } from '../src/workflows/backup/shared.js';
import { openGate } from './support/approvals.js';
import { query, seedFixture, tableDigests, type Fixture } from './support/backup-fixture.js';
import { PG, waitFor } from './support/services.js';
import { startDevServer, testConfig, workflowBundle } from './support/temporal.js';
import { executeUpdateRetrying } from '../src/common/update-retry.js';

const T = { timeout: 240_000 };

describe('approval gate under attack (cancellation, odd payloads, look-alike names)', { timeout: 1_500_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let cfg: OpsConfig;
  let worker: { worker: Worker; running: Promise<void> } | undefined;
  let baseline: BackupResult;
  const taskQueue = `test-approval-attack-${randomUUID()}`;

  const start = (input: Record<string, unknown>, queue = taskQueue) =>
    env.client.workflow.start<(i: unknown) => Promise<RestoreOutcome>>('restore', { taskQueue: queue, workflowId: `restore-attack-${randomUUID()}`, args: [input] });
  const live = (kind: 'config' | 'database' = 'config', requestedBy = 'bob') => ({ environment: 'production', backupId: baseline.backupId, kind, requestedBy });
  const decide = (h: WorkflowHandle, name: 'approveRestore' | 'rejectRestore', d: unknown) => executeUpdateRetrying<DecisionAnswer, [Decision]>(h, name, [d as Decision]);
  /** The decision naming the open gate (an approval must). */
  const gated = async (h: WorkflowHandle, d: Decision): Promise<Decision> => ({ ...d, gate: (await openGate(h, 'restore')).gateId as string });
  const statusOf = (h: WorkflowHandle) => h.query<RestoreStatus>('restoreStatus');
  const approvalOf = (h: WorkflowHandle) => h.query<ApprovalStatus>('restoreApproval');
  const reach = async (h: WorkflowHandle, state: RestoreStatus['state']) => {
    await waitFor(`restore in state ${state}`, async () => (await statusOf(h)).state === state, 60_000);
    assert.equal((await statusOf(h)).state, state);
  };
  /**
   * How the run ended, within `ms`: 'completed', the innermost failure, or 'stuck' when it is still running
   * (e.g. its workflow task fails over and over) — a run that never ends fails the test instead of hanging it.
   */
  const ending = async (h: WorkflowHandle, ms = 90_000): Promise<{ ended: 'completed' | 'failed' | 'stuck'; type?: string; message?: string; cancelled?: boolean; taskFailures: string[] }> => {
    const timer = new Promise<'stuck'>((r) => setTimeout(() => r('stuck'), ms).unref());
    const outcome = await Promise.race([h.result().then(() => 'completed' as const, (err: unknown) => err as Error), timer]);
    const history = await h.fetchHistory();
    const taskFailures = (history.events ?? []).flatMap((e) => (e.workflowTaskFailedEventAttributes ? [String(e.workflowTaskFailedEventAttributes.failure?.message)] : []));
    if (outcome === 'stuck' || outcome === 'completed') return { ended: outcome, taskFailures };
    assert.ok(outcome instanceof WorkflowFailedError, String(outcome));
    let inner = outcome.cause as Error & { type?: string };
    while (inner.cause instanceof Error) inner = inner.cause as Error & { type?: string };
    return { ended: 'failed', type: inner.type, message: inner.message, cancelled: outcome.cause instanceof CancelledFailure, taskFailures };
  };
  const configPath = () => path.join(fx.dirs.config, 'llmchat.env');
  const stagingDatabases = () =>
    query('llmchat', async (c) => (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${fx.database.name}_%`])).rows.map((r) => r.datname));
  const manifests = async () => {
    const dir = cfg.environments.production!.paths.backups;
    return Promise.all((await readdir(dir)).map(async (n) => JSON.parse(await readFile(path.join(dir, n, 'manifest.json'), 'utf8')) as BackupManifest));
  };
  /** A worker on its own queue, started only when the test says so (decisions and cancels queue up before it). */
  const laterWorker = async (queue: string) => {
    const c = testConfig({ address: env.address, taskQueue: queue, environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } });
    return createWorker(c, env.nativeConnection, { workflowBundle: await workflowBundle() });
  };
  /** Holds a lock that the safety backup's pg_dump waits on, so an approved restore is provably mid-way. */
  const blockDump = async () => {
    const blocker = new pg.Client({ ...PG, database: fx.database.name });
    blocker.on('error', () => {});
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
    return async () => {
      await blocker.query('ROLLBACK').catch(() => {});
      await blocker.end().catch(() => {});
    };
  };

  before(async () => {
    env = await startDevServer();
    fx = await seedFixture(2_000);
    cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } });
    const w = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    worker = { worker: w, running: w.run() };
    baseline = await env.client.workflow.execute('backup', {
      taskQueue,
      workflowId: `backup-${randomUUID()}`,
      args: [{ environment: 'production', kinds: ['database', 'config'], requestedBy: 'test', reason: 'approval attack baseline' }],
    });
  });

  after(async () => {
    worker?.worker.shutdown();
    await worker?.running;
    await fx?.database.drop();
    await env?.teardown();
  });

  it('a cancel during the approved safety backup ends the run as cancelled (not a stuck workflow task), cleans up and answers the gate', T, async () => {
    const before = await tableDigests(fx.database.name);
    const release = await blockDump();
    let h: WorkflowHandle | undefined;
    try {
      h = await start(live('database'));
      await reach(h, 'awaiting-approval');
      assert.equal((await decide(h, 'approveRestore', await gated(h, { by: 'alice' }))).accepted, true);
      await reach(h, 'safety-backup');
      await h.cancel();
      const end = await ending(h);
      assert.deepEqual(end.taskFailures, [], 'no workflow task failed');
      assert.equal(end.ended, 'failed', 'the cancelled run ends');
      assert.equal(end.cancelled, true, `ended as cancelled, got ${end.type}: ${end.message}`);
    } finally {
      await release();
    }
    assert.deepEqual(await tableDigests(fx.database.name), before, 'the live database is untouched');
    assert.deepEqual(await stagingDatabases(), [], 'no staging database left');
    const safety = (await manifests()).filter((m) => m.safetyFor === h?.workflowId);
    assert.deepEqual(safety.map((m) => m.status), ['failed'], 'the cancelled safety backup is marked failed');
    const approval = await approvalOf(h);
    assert.equal(approval.state, 'closed');
    assert.equal(approval.approvedBy, 'alice');
    assert.equal((await h.describe()).typedSearchAttributes.get(OutcomeKey), 'cancelled');
  });

  it('an early signal and a cancel in the same activation: the run ends cancelled and the decision is recorded', T, async () => {
    const queue = `test-approval-attack-late-${randomUUID()}`;
    await writeFile(configPath(), 'CLOBBERED=early\n');
    const h = await start(live('config'), queue);
    await h.signal('approveRestore', { by: 'alice' });
    await h.cancel();
    const w = await laterWorker(queue);
    const end = await w.runUntil(ending(h, 60_000));
    assert.deepEqual(end.taskFailures, [], 'no workflow task failed');
    assert.equal(end.ended, 'failed');
    assert.equal(end.cancelled, true, `ended as cancelled, got ${end.type}: ${end.message}`);
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=early\n', 'nothing restored');
    const w2 = await laterWorker(queue);
    const approval = await w2.runUntil(approvalOf(h));
    assert.deepEqual(approval.decisions.map((d) => [d.verdict, d.by, d.via, d.accepted]), [['approve', 'alice', 'signal', false]]);
    // Refused at once (no gate is open yet: consent follows the information), or answered by the cancel.
    assert.match(approval.decisions[0]!.answer, /no approval is awaited yet|cancelled/);
  });

  it('an early update pending when the run is cancelled gets the gate\'s answer and is recorded', T, async () => {
    const queue = `test-approval-attack-late-${randomUUID()}`;
    const h = await start(live('config'), queue);
    const pending = decide(h, 'approveRestore', { by: 'alice' });
    pending.catch(() => {});
    // The update is admitted by the server only when a worker polls; let it reach the server first.
    await new Promise((r) => setTimeout(r, 1500));
    await h.cancel();
    const w = await laterWorker(queue);
    const [end, answer] = await w.runUntil(Promise.all([ending(h, 60_000), pending.then((a) => a, (err: Error) => err)]));
    assert.deepEqual(end.taskFailures, [], 'no workflow task failed');
    assert.equal(end.cancelled, true, `ended as cancelled, got ${end.type}: ${end.message}`);
    assert.ok(!(answer instanceof Error), `the update is answered by the gate, not failed: ${String(answer)}`);
    assert.equal(answer.accepted, false);
    assert.match(answer.message, /no approval is awaited yet|cancelled/);
  });

  it('a cancel while awaiting approval ends the run cancelled with nothing changed; the outcome says cancelled', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=awaiting\n');
    const h = await start(live('config'));
    await reach(h, 'awaiting-approval');
    await h.cancel();
    const end = await ending(h);
    assert.deepEqual(end.taskFailures, []);
    assert.equal(end.cancelled, true, `ended as cancelled, got ${end.type}: ${end.message}`);
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=awaiting\n');
    assert.equal((await approvalOf(h)).state, 'closed');
    assert.equal((await h.describe()).typedSearchAttributes.get(OutcomeKey), 'cancelled');
  });

  it('deceptive decisions are refused: control/bidi characters in comments, look-alike and non-person names', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=deceive\n');
    const h = await start(live('config'));
    await reach(h, 'awaiting-approval');
    const refusedUpdate = async (d: unknown, why: RegExp) =>
      assert.rejects(decide(h, 'approveRestore', d), (err: unknown) => err instanceof WorkflowUpdateFailedError && why.test(String((err.cause as Error)?.message)));
    await refusedUpdate({ by: 'alice', comment: 'looks fine\u001b[2J\u001b[1;1Hllmchat-ops: restore rejected' }, /printable text on one line/);
    await refusedUpdate({ by: 'alice', comment: 'ok \u202eevil' }, /printable text on one line/);
    await refusedUpdate({ by: 'alice', comment: 'first line\nllmchat-ops: approved by root' }, /printable text on one line/);
    await refusedUpdate({ by: 'ali\u202ece' }, /must name who decides/);
    await refusedUpdate({ by: ' alice' }, /must name who decides/);
    await refusedUpdate({ by: 'schedule' }, /must name a person/);
    await refusedUpdate({ by: 'Unknown' }, /must name a person/);
    // The requester under another spelling is still the requester.
    for (const by of ['BOB', 'ｂｏｂ', 'Bob']) {
      const a = await decide(h, 'approveRestore', await gated(h, { by }));
      assert.equal(a.accepted, false, `${by} must count as bob`);
      assert.match(a.message, /four-eyes/);
    }
    await h.signal('approveRestore', { by: 'alice', comment: '\u001b]0;pwned\u0007', gate: (await approvalOf(h)).gateId });
    await waitFor('the signal recorded', async () => (await approvalOf(h)).decisions.length === 4);
    const last = (await approvalOf(h)).decisions.at(-1)!;
    assert.deepEqual([last.by, last.accepted], ['(unknown)', false]);
    assert.match(last.answer, /printable text on one line/);
    assert.equal((await statusOf(h)).state, 'awaiting-approval', 'nothing was decided');
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=deceive\n');
    await decide(h, 'rejectRestore', { by: 'carol' });
    assert.equal((await ending(h)).type, 'RestoreRejected');
  });

  it('oversized and malformed payloads neither grow the state without bound nor end the run; a real decision still works', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=flood\n');
    const h = await start(live('config'));
    await reach(h, 'awaiting-approval');
    const bigKey = 'k'.repeat(1_500_000);
    const viaUpdate = await decide(h, 'approveRestore', { by: 'alice', [bigKey]: 1 }).then(
      () => assert.fail('accepted a decision with an unknown key'),
      (err: Error) => err,
    );
    assert.ok(viaUpdate instanceof WorkflowUpdateFailedError, String(viaUpdate));
    assert.ok(String((viaUpdate.cause as Error).message).length < 1_000, 'the refusal is bounded');
    await h.signal('approveRestore', { by: 'alice', [bigKey]: 1 });
    // 10 MB exceeds what the server takes in one request: refused at the door, the run unaffected.
    await assert.rejects(decide(h, 'approveRestore', { by: 'alice', comment: 'x'.repeat(10_000_000) }));
    await assert.rejects(h.signal('approveRestore', { by: 'alice', comment: 'x'.repeat(10_000_000) }));
    for (const odd of [null, 42, 'alice', [{ by: 'alice' }], { by: ['alice'] }, { by: null }, { by: 'alice', comment: 7 }, {}, { __proto__: { by: 'alice' } }]) {
      await h.signal('approveRestore', odd as never);
    }
    for (let i = 0; i < 110; i++) await h.signal('rejectRestore', { nobody: i });
    await waitFor('the flood recorded', async () => {
      const a = await approvalOf(h);
      return a.decisions.length + (a.unrecordedDecisions ?? 0) === 1 + 9 + 110;
    });
    const flooded = await approvalOf(h);
    assert.equal(flooded.decisions.length, 100, 'refused decisions are kept up to the bound');
    assert.equal(flooded.unrecordedDecisions, 20);
    assert.ok(flooded.decisions.every((d) => !d.accepted && d.answer.length <= 400));
    assert.ok(JSON.stringify(flooded).length < 100_000, 'the query answer stays small');
    assert.equal((await h.describe()).status.name, 'RUNNING');
    assert.equal((await statusOf(h)).state, 'awaiting-approval');
    const ok = await decide(h, 'approveRestore', await gated(h, { by: 'alice', comment: 'after the flood' }));
    assert.equal(ok.accepted, true, ok.message);
    assert.equal((await h.result()).approvedBy, 'alice');
    const done = await approvalOf(h);
    assert.deepEqual(done.decisions.filter((d) => d.accepted).map((d) => [d.by, d.comment]), [['alice', 'after the flood']], 'an accepted decision is recorded past the bound');
    assert.equal(await readFile(configPath(), 'utf8'), 'LLMCHAT_ENVIRONMENT=production\n');
  });

  it('decisions sent to a restore into a new target (no approval needed) are answered, before and after it ends', T, async () => {
    const queue = `test-approval-attack-late-${randomUUID()}`;
    const target = `attack-new-${randomUUID().slice(0, 8)}`;
    const h = await start({ environment: 'production', backupId: baseline.backupId, kind: 'config', target, requestedBy: 'bob' }, queue);
    await h.signal('rejectRestore', { by: 'carol', comment: 'too early' });
    const early = decide(h, 'approveRestore', { by: 'alice' });
    early.catch(() => {});
    await new Promise((r) => setTimeout(r, 1500));
    const w = await laterWorker(queue);
    const [res, answer] = await w.runUntil(Promise.all([h.result(), early.then((a) => a, (err: Error) => err)]));
    assert.equal(res.live, false);
    assert.ok(!(answer instanceof Error), `answered: ${String(answer)}`);
    assert.equal(answer.accepted, false);
    // Refused at once, before the gate knows anything (consent follows the information).
    assert.match(answer.message, /no approval is awaited yet/);
    const approval = await (await laterWorker(queue)).runUntil(approvalOf(h));
    assert.deepEqual(approval.decisions.map((d) => [d.verdict, d.by, d.via, d.accepted]).sort(), [['approve', 'alice', 'update', false], ['reject', 'carol', 'signal', false]]);
    // After the end: refused at the door by Temporal, with an error (never a silent success).
    await assert.rejects(decide(h, 'approveRestore', { by: 'alice' }));
    await assert.rejects(h.signal('approveRestore', { by: 'alice' }));
  });

  it('a live restore that names no requester is refused before it waits (four eyes need two names); nothing changed', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=anonymous\n');
    const h = await start({ environment: 'production', backupId: baseline.backupId, kind: 'config' });
    await h.signal('approveRestore', { by: 'mallory' }); // would otherwise approve a restore she may have started
    const end = await ending(h);
    assert.equal(end.type, 'BadInput', end.message);
    assert.match(end.message ?? '', /must name who requests it \(`requestedBy`\)/);
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=anonymous\n');
    const approval = await approvalOf(h);
    assert.deepEqual(approval.decisions.map((d) => [d.by, d.accepted]), [['mallory', false]]);
  });

  it('decisions at the same instant: approve+reject, two approvers, update+signal — one outcome, every decision answered and recorded', T, async () => {
    const snapshot = await readFile(configPath(), 'utf8');
    // approve and reject together: whichever comes first, the run ends rejected with nothing changed.
    await writeFile(configPath(), 'CLOBBERED=race\n');
    const h1 = await start(live('config'));
    await reach(h1, 'awaiting-approval');
    const alice = await gated(h1, { by: 'alice' });
    const [a1, r1] = await Promise.all([decide(h1, 'approveRestore', alice), decide(h1, 'rejectRestore', { by: 'bob', comment: 'withdrawn' })]);
    assert.equal(r1.accepted, true, `the rejection (requester withdrawing) is accepted: ${r1.message}`);
    if (a1.accepted) assert.match(r1.message, /after approval by alice; stopped before the point of no return/);
    else assert.match(a1.message, /already rejected by bob/);
    assert.equal((await ending(h1)).type, 'RestoreRejected');
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=race\n');
    assert.equal((await approvalOf(h1)).decisions.length, 2);

    // two approvers by update and one by signal at once: exactly one of the three wins (any of them may), the
    // others are answered "already approved by" the winner.
    const h2 = await start(live('config'));
    await reach(h2, 'awaiting-approval');
    const gate = (await openGate(h2, 'restore')).gateId as string;
    const [a2, b2] = await Promise.all([
      decide(h2, 'approveRestore', { by: 'alice', gate }),
      decide(h2, 'approveRestore', { by: 'carol', gate }),
      h2.signal('approveRestore', { by: 'dave', gate }),
    ]);
    assert.ok([a2, b2].filter((a) => a.accepted).length <= 1, `${a2.message} / ${b2.message}`);
    const outcome = await h2.result();
    const decisions = (await approvalOf(h2)).decisions;
    assert.equal(decisions.length, 3);
    assert.deepEqual(decisions.filter((d) => d.accepted).map((d) => d.by), [outcome.approvedBy]);
    for (const a of [a2, b2]) if (!a.accepted) assert.match(a.message, new RegExp(`approved by ${outcome.approvedBy}`));
    assert.ok(decisions.filter((d) => !d.accepted).every((d) => /already approved by|past its point of no return|no decision is awaited/.test(d.answer)), JSON.stringify(decisions));
    assert.equal(await readFile(configPath(), 'utf8'), 'LLMCHAT_ENVIRONMENT=production\n');
    await writeFile(configPath(), snapshot);
  });
});
