/**
 * Consent follows the information (issue 15, point 2), for the restore's gate, on the real dev server,
 * PostgreSQL, backup files and the `llmchat-ops` command line: an approval (update or signal) sent before the gate
 * opens is refused and answered — never kept for later; the open gate says what would be approved (the backup,
 * when it was taken, the rows written and deleted since: live row counts against the manifest) under a gate id;
 * an approval naming no gate or another gate is refused; `llmchat-ops approve` requires --gate and shows the
 * subject. (The database-rollback gate of a deploy: test/deploy-rollback.workflow.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { dataWorkflowId } from '../src/common/names.js';
import { createWorker } from '../src/worker.js';
import type { ApprovalStatus } from '../src/workflows/common/approval.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import type { RestoreOutcome } from '../src/workflows/backup/restore.js';
import type { RestoreStatus } from '../src/workflows/backup/shared.js';
import { decideAt, gateOf, openGate } from './support/approvals.js';
import { query, seedFixture, tableDigests, type Fixture } from './support/backup-fixture.js';
import { freePort, ROOT, waitFor } from './support/services.js';
import { alertReceiver, startDevServer, testConfig, testConfigYaml, workflowBundle } from './support/temporal.js';

const T = { timeout: 240_000 };
const DATA_ID = dataWorkflowId('production');

describe('consent follows the information: the restore gate', { timeout: 900_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let configFile: string;
  let baseline: BackupResult;
  const taskQueue = `test-consent-${randomUUID()}`;
  const workers: { worker: Worker; running: Promise<void> }[] = [];

  const spec = () => ({ url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app });
  const startWorker = async (queue: string) => {
    const worker = await createWorker(testConfig({ address: env.address, taskQueue: queue, environments: { production: spec() } }), env.nativeConnection, { workflowBundle: await workflowBundle() });
    workers.push({ worker, running: worker.run() });
  };
  const start = (queue: string, workflowId = `restore-${randomUUID()}`) =>
    env.client.workflow.start<(i: unknown) => Promise<RestoreOutcome>>('restore', {
      taskQueue: queue,
      workflowId,
      args: [{ environment: 'production', backupId: baseline.backupId, kind: 'database', requestedBy: 'bob' }],
    });
  const cli = (operator: string, ...args: string[]) =>
    execa('node', ['bin/llmchat-ops.js', '--config', configFile, ...args], { cwd: ROOT, reject: false, timeout: 120_000, env: { LLMCHAT_OPS_OPERATOR: operator } });
  const statusOf = (h: WorkflowHandle) => h.query<RestoreStatus>('restoreStatus');
  /** Rows written and deleted after the baseline backup: what a restore of it would take away. */
  const writeAfterBackup = () =>
    query(fx.database.name, async (c) => {
      await c.query("INSERT INTO chat_sessions (user_id, agent_id, title) SELECT 'after-' || g, 'default', 'written after the backup' FROM generate_series(1, 3) g");
      await c.query('DELETE FROM messages WHERE id IN (SELECT id FROM messages ORDER BY id LIMIT 5)');
    });

  before(async () => {
    env = await startDevServer();
    fx = await seedFixture(500);
    configFile = path.join(fx.root, 'ops.config.yaml');
    await writeFile(configFile, testConfigYaml({ address: env.address, taskQueue, metricsPort: await freePort(), environments: { production: spec() } }));
    await startWorker(taskQueue);
    baseline = await env.client.workflow.execute('backup', {
      taskQueue,
      workflowId: `backup-${randomUUID()}`,
      args: [{ environment: 'production', kinds: ['database'], requestedBy: 'test', reason: 'consent baseline' }],
    });
    await writeAfterBackup();
  });

  after(async () => {
    for (const w of workers) w.worker.shutdown();
    await Promise.all(workers.map((w) => w.running));
    await fx?.database.drop();
    await env?.teardown();
  });

  it('an approval sent before the gate opens is refused and answered (update) or recorded as refused (signal), never kept; the gate then shows the rows that would be lost', T, async () => {
    const before = await tableDigests(fx.database.name);
    // A queue whose worker starts only after the early decisions are in: the gate cannot be open when they arrive.
    const queue = `${taskQueue}-later`;
    const h = await start(queue);
    await h.signal('approveRestore', { by: 'alice', comment: 'pre-approved by signal' });
    const early = decideAt(h, 'restore', 'approve', { by: 'carol', comment: 'pre-approved by update' });
    await startWorker(queue);
    const answer = await early;
    assert.equal(answer?.accepted, false, 'an early approval (update) is refused');
    assert.equal(answer?.state, 'not-open');
    assert.match(answer?.message ?? '', /refused: no approval is awaited yet .* nothing is decided in advance/);

    // The gate opens, and it is open: neither early approval was kept for it.
    const gate = await openGate(h, 'restore');
    assert.equal((await statusOf(h)).state, 'awaiting-approval');
    await new Promise((r) => setTimeout(r, 2_000)); // room for a kept approval to act
    assert.equal((await gateOf(h, 'restore')).state, 'open', 'still open: nothing was approved in advance');
    assert.deepEqual(await tableDigests(fx.database.name), before, 'nothing restored');
    const refused = (await gateOf(h, 'restore')).decisions;
    assert.deepEqual(refused.map((d) => [d.by, d.via, d.accepted]).sort(), [['alice', 'signal', false], ['carol', 'update', false]]);
    assert.ok(refused.every((d) => /no approval is awaited yet/.test(d.answer)), JSON.stringify(refused));

    // What the gate says it would approve: the backup, when it was taken, and the writes made since.
    assert.match(gate.gateId ?? '', /^restore-[0-9a-f]{8}$/);
    const b = gate.details?.backup;
    assert.equal(b?.id, baseline.backupId);
    assert.equal(b?.kind, 'database');
    assert.ok(b?.takenAt && Date.parse(b.takenAt) > 0, `takenAt ${b?.takenAt}`);
    const lost = b?.writesLost;
    assert.ok(lost, 'the gate counts the writes that would be lost');
    assert.equal(lost.error, undefined);
    assert.equal(lost.rowsAdded, 3);
    assert.equal(lost.rowsRemoved, 5);
    assert.deepEqual(lost.changed.map((c) => [c.table, c.backup, c.live]).sort(), [['public.chat_sessions', 200, 203], ['public.messages', 500, 495]]);
    assert.match(gate.subject ?? '', new RegExp(`restore database of backup ${baseline.backupId} over database ${fx.database.name} .*\\(backup taken 20.*\\): every write made since the backup is LOST: 3 row\\(s\\) written since the backup go and 5 row\\(s\\) deleted since come back .*public\\.chat_sessions 200 → 203`));

    // A real approval, naming the gate, after it opened.
    const ok = await decideAt(h, 'restore', 'approve', { by: 'alice', comment: 'read the loss', gate: gate.gateId });
    assert.equal(ok?.accepted, true, ok?.message);
    const res = await h.result();
    assert.equal(res.approvedBy, 'alice');
    const rows = await query(fx.database.name, async (c) => Number((await c.query('SELECT count(*) AS n FROM chat_sessions')).rows[0].n));
    assert.equal(rows, 200, 'the backup is back: the rows written after it are gone');
    await writeAfterBackup();
    // The history (early refusals, the gate id, the approval naming it) replays against the code; with
    // LLMCHAT_RECORD_HISTORIES=1 it is kept in test/histories for the replay test.
    const history = await h.fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, h.workflowId);
    if (process.env.LLMCHAT_RECORD_HISTORIES === '1') await writeFile(path.join(ROOT, 'test/histories', `restore-consent--${h.workflowId}.json`), historyToJSON(history));
  });

  it('an approval naming no gate or another gate is refused (update and signal); a rejection may omit it', T, async () => {
    const h = await start(taskQueue);
    const gate = await openGate(h, 'restore');
    const none = await decideAt(h, 'restore', 'approve', { by: 'alice' });
    assert.equal(none?.accepted, false);
    assert.match(none?.message ?? '', new RegExp(`refused: an approval must name the gate it approves \\("gate"\\); the open gate is ${gate.gateId}: restore database of backup`));
    const other = await decideAt(h, 'restore', 'approve', { by: 'alice', gate: 'restore-00000000' });
    assert.equal(other?.accepted, false);
    assert.match(other?.message ?? '', new RegExp(`refused: this approval names gate restore-00000000, which is not open here; the open gate is ${gate.gateId}`));
    const stale = await decideAt(h, 'restore', 'approve', { by: 'alice', gate: 'db-rollback-0a0b0c0d' }, 'signal');
    assert.equal(stale, undefined);
    const malformed = await decideAt(h, 'restore', 'approve', { by: 'alice', gate: 'anything goes' }).then(() => 'accepted', (e: Error) => e.cause instanceof Error ? e.cause.message : e.message);
    assert.match(malformed, /gate: must be a gate id like restore-1a2b3c4d/);
    await waitFor('the signal recorded', async () => (await gateOf(h, 'restore')).decisions.length === 3);
    const after = await gateOf(h, 'restore');
    assert.equal(after.state, 'open', 'none of them approved anything');
    assert.deepEqual(after.decisions.map((d) => [d.via, d.accepted]), [['update', false], ['update', false], ['signal', false]]);
    assert.match(after.decisions[2]?.answer ?? '', /names gate db-rollback-0a0b0c0d, which is not open here/);
    // A rejection naming another gate was meant for something else; one naming none is fine.
    const wrongReject = await decideAt(h, 'restore', 'reject', { by: 'carol', gate: 'restore-00000000' });
    assert.equal(wrongReject?.accepted, false);
    const reject = await decideAt(h, 'restore', 'reject', { by: 'carol', comment: 'not now' });
    assert.equal(reject?.accepted, true, reject?.message);
    await assert.rejects(h.result(), /Workflow execution failed/);
  });

  it('the open gate is announced by an alert that names it, says what it would approve and how to approve it', T, async () => {
    const inbox = await alertReceiver();
    const queue = `${taskQueue}-alerts`;
    const worker = await createWorker(testConfig({ address: env.address, taskQueue: queue, webhookUrl: inbox.url, environments: { production: spec() } }), env.nativeConnection, { workflowBundle: await workflowBundle() });
    workers.push({ worker, running: worker.run() });
    try {
      const h = await start(queue);
      const gate = await openGate(h, 'restore');
      const id = gate.gateId as string;
      await waitFor('the restore gate alert', async () => inbox.received.some((r) => r.body.type === 'restore_waiting'), 60_000);
      const alerts = inbox.received.filter((r) => r.body.type === 'restore_waiting');
      assert.equal(alerts.length, 1, 'one alert for the gate');
      const a = alerts[0]!.body as { severity: string; environment: string; title: string; message: string };
      assert.equal(a.severity, 'warning');
      assert.equal(a.environment, 'production');
      assert.match(a.title, new RegExp(`Restore over live data in production waits for approval \\(gate ${id}\\)`));
      assert.ok(a.message.startsWith(gate.subject as string), `the alert carries the gate's subject: ${a.message}`);
      assert.match(a.message, /every write made since the backup is LOST: 3 row\(s\) written since the backup go and 5 row\(s\) deleted since come back/);
      assert.match(a.message, new RegExp(`npx llmchat-ops approve production --gate ${id} .*must name gate ${id}`));
      assert.match(a.message, /Requested by bob/);
      const reject = await decideAt(h, 'restore', 'reject', { by: 'carol', comment: 'only the alert was under test' });
      assert.equal(reject?.accepted, true, reject?.message);
      await assert.rejects(h.result(), /Workflow execution failed/);
    } finally {
      await inbox.close();
    }
  });

  it('`llmchat-ops approve` requires --gate, showing the gate and its subject; a wrong --gate is refused; the right one approves and prints the subject', T, async () => {
    const h = await start(taskQueue, DATA_ID);
    const gate = await openGate(h, 'restore');
    const id = gate.gateId as string;
    const bare = await cli('carol', 'approve', 'production', '-m', 'looks fine');
    assert.equal(bare.exitCode, 1);
    assert.match(bare.stderr, new RegExp(`name the gate you approve with --gate: the restore of production waits at gate ${id}:`));
    assert.match(bare.stderr, /every write made since the backup is LOST: 3 row\(s\) written since the backup go and 5 row\(s\) deleted since come back/);
    assert.match(bare.stderr, new RegExp(`llmchat-ops approve production --gate ${id} -m "why"`));
    const wrong = await cli('carol', 'approve', 'production', '--gate', 'restore-00000000');
    assert.equal(wrong.exitCode, 1);
    assert.match(wrong.stderr, new RegExp(`gate restore-00000000 is not the open gate: the restore of production waits at gate ${id}`));
    assert.equal((await gateOf(h, 'restore')).state, 'open');
    const ok = await cli('carol', 'approve', 'production', '--gate', id, '-m', 'read the loss');
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, new RegExp(`gate ${id} — restore database of backup ${baseline.backupId} .*LOST: 3 row\\(s\\).*: approved by carol`));
    assert.equal((await h.result()).approvedBy, 'carol');
    const final = await h.query<ApprovalStatus>('restoreApproval');
    assert.deepEqual(final.decisions.map((d) => [d.by, d.accepted]), [['carol', true]], 'the refused tries never reached the workflow');
  });
});
