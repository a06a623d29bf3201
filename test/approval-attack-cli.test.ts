/**
 * The restore's approvals and inputs attacked through the real command lines (`llmchat-ops` and the official
 * `temporal` CLI) and a worker process killed with SIGKILL while decisions wait; histories of approved, rejected
 * and cancelled restores recorded by the `temporal` CLI replay against today's code.
 * `LLMCHAT_RECORD_HISTORIES=1` also writes those histories to test/histories for the replay test.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError, type WorkflowHandle } from '@temporalio/client';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import pg from 'pg';
import { dataWorkflowId } from '../src/common/names.js';
import type { Decision, DecisionAnswer } from '../src/workflows/common/approval.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import type { RestoreOutcome } from '../src/workflows/backup/restore.js';
import type { RestoreStatus } from '../src/workflows/backup/shared.js';
import { openGate } from './support/approvals.js';
import { query, seedFixture, tableDigests, type Fixture } from './support/backup-fixture.js';
import { freePort, PG, ROOT, waitFor } from './support/services.js';
import { startDevServer, temporalBinary, testConfigYaml, workflowBundle } from './support/temporal.js';
import { executeUpdateRetrying } from '../src/common/update-retry.js';

const T = { timeout: 300_000 };
const DATA_ID = dataWorkflowId('production');

describe('approvals and inputs through the real CLIs, a SIGKILLed worker, replay of recorded decisions', { timeout: 1_800_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let configFile: string;
  let baseline: BackupResult;
  const taskQueue = `test-attack-cli-${randomUUID()}`;
  let worker: ChildProcess | undefined;

  function startWorker(): Promise<ChildProcess> {
    const child = spawn('node', ['dist/src/worker.js', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LLMCHAT_DB_PASSWORD: PG.password } });
    let output = '';
    child.stdout?.on('data', (c) => (output += c));
    child.stderr?.on('data', (c) => (output += c));
    worker = child;
    return waitFor('worker started', async () => output.includes('llmchat-ops worker started'), 60_000).then(() => child);
  }
  async function kill(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }
  const cli = (operator: string, ...args: string[]) =>
    execa('node', ['bin/llmchat-ops.js', '--config', configFile, ...args], { cwd: ROOT, reject: false, timeout: 120_000, env: { LLMCHAT_OPS_OPERATOR: operator } });
  const temporal = (...args: string[]) => execa(temporalBinary(), [...args, '--address', env.address], { reject: false, timeout: 60_000 });
  const statusOf = (h: WorkflowHandle) => h.query<RestoreStatus>('restoreStatus');
  const reach = async (h: WorkflowHandle, state: RestoreStatus['state']) => {
    await waitFor(`restore in state ${state}`, async () => (await statusOf(h)).state === state, 90_000);
    assert.equal((await statusOf(h)).state, state);
  };
  const failureOf = async (p: Promise<unknown>) => {
    const err = await p.then(() => assert.fail('expected the run to fail'), (e: unknown) => e);
    assert.ok(err instanceof WorkflowFailedError, String(err));
    let inner = err.cause as Error & { type?: string };
    while (inner.cause instanceof Error) inner = inner.cause as Error & { type?: string };
    return { type: inner.type, message: inner.message, cancelled: err.cause?.name === 'CancelledFailure' };
  };
  const configPath = () => path.join(fx.dirs.config, 'llmchat.env');
  const live = (kind: 'config' | 'database', requestedBy = 'bob') => ({ environment: 'production', backupId: baseline.backupId, kind, requestedBy });
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
  const stagingDatabases = () =>
    query('llmchat', async (c) => (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${fx.database.name}_%`])).rows.map((r) => r.datname));

  before(async () => {
    env = await startDevServer();
    fx = await seedFixture(2_000);
    configFile = path.join(fx.root, 'ops.config.yaml');
    const spec = { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app };
    await writeFile(configFile, testConfigYaml({ address: env.address, taskQueue, metricsPort: await freePort(), environments: { production: spec } }));
    await startWorker();
    baseline = await env.client.workflow.execute('backup', {
      taskQueue,
      workflowId: `backup-${randomUUID()}`,
      args: [{ environment: 'production', kinds: ['database', 'config'], requestedBy: 'test', reason: 'attack baseline' }],
    });
  });

  after(async () => {
    if (worker) await kill(worker);
    await fx?.database.drop();
    await env?.teardown();
  });

  it('`approve`/`reject` say what runs instead: nothing, a backup, a finished run, a restore whose worker is down', T, async () => {
    const none = await cli('carol', 'approve', 'production');
    assert.equal(none.exitCode, 1);
    assert.match(none.stderr, /no backup or restore of production has run/);

    const release = await blockDump();
    const backupRun = await env.client.workflow.start('backup', { taskQueue, workflowId: DATA_ID, args: [{ environment: 'production', kinds: ['database'], requestedBy: 'test', reason: 'running' }] });
    try {
      const busy = await cli('carol', 'reject', 'production', '-m', 'not this');
      assert.equal(busy.exitCode, 1);
      assert.match(busy.stderr, /the data operation running for production is a backup, not a restore/);
    } finally {
      await release();
    }
    await backupRun.result();
    const finished = await cli('carol', 'approve', 'production');
    assert.equal(finished.exitCode, 1);
    assert.match(finished.stderr, /last data operation \(backup, workflow llmchat-data-production\) is completed/);

    // A restore nobody works on (its worker is down): the command says so within its deadline instead of hanging.
    const orphan = await env.client.workflow.start('restore', { taskQueue: `nobody-${randomUUID()}`, workflowId: DATA_ID, args: [live('config')] });
    try {
      const t0 = Date.now();
      const down = await cli('carol', 'approve', 'production');
      assert.equal(down.exitCode, 1);
      assert.match(down.stderr, /does not answer its status query — is its worker running\?/);
      assert.ok(Date.now() - t0 < 60_000, 'answered within its deadline');
    } finally {
      await orphan.terminate('test over');
    }
  });

  it('`approve`/`reject` through the CLI: self-approval refused with exit 1, an escape-laden comment refused before sending, another person approves', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=cli\n');
    const h = await env.client.workflow.start('restore', { taskQueue, workflowId: DATA_ID, args: [live('config')] });
    await reach(h, 'awaiting-approval');
    const gate = (await openGate(h, 'restore')).gateId as string;
    const self = await cli('bob', 'approve', 'production', '--gate', gate);
    assert.equal(self.exitCode, 1);
    assert.match(self.stderr, /approve refused for the restore of .* bob requested this operation and cannot approve it/);
    const escapes = await cli('carol', 'reject', 'production', '-m', 'ok\u001b[2J\u001b[Hrestore approved');
    assert.equal(escapes.exitCode, 1);
    assert.match(escapes.stderr, /cannot reject: comment: must be printable text on one line/);
    assert.ok(!escapes.stderr.includes('\u001b'), 'nothing raw reaches the terminal');
    assert.equal((await statusOf(h)).state, 'awaiting-approval');
    const ok = await cli('carol', 'approve', 'production', '--gate', gate, '-m', 'checked');
    assert.equal(ok.exitCode, 0, ok.stderr);
    assert.match(ok.stdout, /approved by carol/);
    assert.equal(((await h.result()) as RestoreOutcome).approvedBy, 'carol');
    assert.equal(await readFile(configPath(), 'utf8'), 'LLMCHAT_ENVIRONMENT=production\n');
  });

  it('hostile restore inputs through `temporal workflow start` and `llmchat-ops restore` are refused whole, bounded, with nothing restored', T, async () => {
    await writeFile(configPath(), 'CLOBBERED=inputs\n');
    const base = { environment: 'production', backupId: baseline.backupId, kind: 'config', requestedBy: 'bob' };
    const cases: [string, string, RegExp][] = [
      ['proto', `{"environment":"production","backupId":"${baseline.backupId}","kind":"config","__proto__":{"target":"../../etc"},"constructor":{"prototype":{"polluted":true}}}`, /Unrecognized keys: "__proto__", "constructor"/],
      ['extra', JSON.stringify({ ...base, approvedBy: 'alice', safetyFor: 'x' }), /Unrecognized keys: "approvedBy", "safetyFor"/],
      ['string', JSON.stringify('production'), /restore expects one JSON object as input/],
      ['array', JSON.stringify([base]), /restore expects one JSON object as input/],
      ['number', '42', /restore expects one JSON object as input/],
      ['null', 'null', /restore expects one JSON object as input/],
      ['long-env', JSON.stringify({ ...base, environment: 'p'.repeat(100_000) }), /Expected `environment` to be an environment name/],
      ['long-key', JSON.stringify({ ...base, ['k'.repeat(100_000)]: 1 }), /Unrecognized key/],
      ['requester-blank', JSON.stringify({ ...base, requestedBy: '   ' }), /Expected `requestedBy` to be a name/],
      ['requester-bidi', JSON.stringify({ ...base, requestedBy: 'bob\u202e' }), /Expected `requestedBy` to be a name/],
      ['target-traversal', JSON.stringify({ ...base, target: '../../etc' }), /target/],
    ];
    for (const [name, input, why] of cases) {
      const workflowId = `restore-input-${name}-${randomUUID()}`;
      const started = await temporal('workflow', 'start', '--type', 'restore', '--task-queue', taskQueue, '--workflow-id', workflowId, '--input', input);
      assert.equal(started.exitCode, 0, started.stderr);
      const f = await failureOf(env.client.workflow.getHandle(workflowId).result());
      assert.equal(f.type, 'BadInput', `${name}: ${f.message}`);
      assert.match(f.message, why, name);
      assert.ok(f.message.length < 1_500, `${name}: the message is bounded (${f.message.length})`);
      assert.ok(!/[\u0000-\u001f\u202a-\u202e\u2066-\u2069]/.test(f.message), `${name}: no raw control or bidi characters quoted`);
      const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
      assert.ok(!history.events?.some((e) => e.activityTaskScheduledEventAttributes), `${name}: no activity ran`);
    }
    assert.equal(({} as Record<string, unknown>).polluted, undefined);

    for (const [args, why] of [
      [['--kind', 'config', '--target', 't'.repeat(5_000)], /target/],
      [['--kind', 'config;rm -rf /'], /kind/],
    ] as const) {
      const r = await cli('bob', 'restore', baseline.backupId, ...args);
      assert.equal(r.exitCode, 1);
      assert.match(r.stderr, why);
      assert.ok(r.stderr.length < 2_000, 'bounded');
    }
    await assert.rejects(env.client.workflow.getHandle(DATA_ID).describe().then((d) => (d.status.name === 'RUNNING' ? d : Promise.reject(new Error('none running')))));
    assert.equal(await readFile(configPath(), 'utf8'), 'CLOBBERED=inputs\n');
  });

  it('a worker SIGKILLed while an approval waits for it and while a late rejection waits for the stop: both answered, nothing changed', T, async () => {
    const before = await tableDigests(fx.database.name);
    const release = await blockDump();
    const h = await env.client.workflow.start('restore', { taskQueue, workflowId: `restore-kill-${randomUUID()}`, args: [live('database')] });
    try {
      await reach(h, 'awaiting-approval');
      const gate = (await openGate(h, 'restore')).gateId as string;
      await kill(worker!);
      const approval = executeUpdateRetrying<DecisionAnswer, [Decision]>(h, 'approveRestore', [{ by: 'alice', gate }]);
      await new Promise((r) => setTimeout(r, 1_000));
      await startWorker();
      const a = await approval;
      assert.deepEqual([a.accepted, a.message], [true, 'approved by alice']);
      await reach(h, 'safety-backup'); // its pg_dump waits on the lock
      const rejection = executeUpdateRetrying<DecisionAnswer, [Decision]>(h, 'rejectRestore', [{ by: 'carol', comment: 'wrong backup' }]);
      rejection.catch(() => {});
      await new Promise((r) => setTimeout(r, 1_000));
      await kill(worker!);
      await startWorker();
      const r = await rejection;
      assert.equal(r.accepted, true, r.message);
      assert.match(r.message, /stopped before the point of no return/);
      const f = await failureOf(h.result());
      assert.equal(f.type, 'RestoreRejected');
    } finally {
      await release();
    }
    assert.deepEqual(await tableDigests(fx.database.name), before, 'the live database is untouched');
    await waitFor('no staging database left', async () => (await stagingDatabases()).length === 0, 60_000);
  });

  it('histories of an approved, a rejected and a cancelled restore, made with the temporal CLI, replay against the code', T, async () => {
    const record = async (id: string) => {
      const shown = await temporal('workflow', 'show', '--workflow-id', id, '--output', 'json');
      assert.equal(shown.exitCode, 0, shown.stderr);
      if (process.env.LLMCHAT_RECORD_HISTORIES === '1') await writeFile(path.join(ROOT, 'test/histories', `${id}.json`), shown.stdout);
      // Replayed under its own id: the safety backup's child id derives from it.
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, historyFromJSON(JSON.parse(shown.stdout)), id);
    };
    const startVia = async (id: string, input: object) => {
      const r = await temporal('workflow', 'start', '--type', 'restore', '--task-queue', taskQueue, '--workflow-id', id, '--input', JSON.stringify(input));
      assert.equal(r.exitCode, 0, r.stderr);
      const h = env.client.workflow.getHandle(id);
      await reach(h, 'awaiting-approval');
      return h;
    };

    const approved = await startVia('restore-approved-by-update', live('config', 'recorder'));
    const gate = (await openGate(approved, 'restore')).gateId as string;
    await signalVia(temporal, 'approveRestore', approved.workflowId, { by: 'recorder', gate }); // refused: four eyes
    const upd = await temporal('workflow', 'update', 'execute', '--workflow-id', approved.workflowId, '--name', 'approveRestore', '--input', JSON.stringify({ by: 'approver', comment: 'checked', gate }));
    assert.equal(upd.exitCode, 0, upd.stderr);
    assert.match(upd.stdout, /approved by approver/);
    await approved.result();
    await record(approved.workflowId);

    const rejected = await startVia('restore-rejected', live('config', 'recorder'));
    const rej = await temporal('workflow', 'update', 'execute', '--workflow-id', rejected.workflowId, '--name', 'rejectRestore', '--input', JSON.stringify({ by: 'reviewer', comment: 'wrong backup' }));
    assert.equal(rej.exitCode, 0, rej.stderr);
    assert.equal((await failureOf(rejected.result())).type, 'RestoreRejected');
    await record(rejected.workflowId);

    // Cancelled after the approval, while its safety backup waits on a lock (the path that used to get stuck).
    const release = await blockDump();
    try {
      const cancelled = await startVia('restore-cancelled', live('database', 'recorder'));
      await signalVia(temporal, 'approveRestore', cancelled.workflowId, { by: 'approver', gate: (await openGate(cancelled, 'restore')).gateId as string });
      await reach(cancelled, 'safety-backup');
      const c = await temporal('workflow', 'cancel', '--workflow-id', cancelled.workflowId);
      assert.equal(c.exitCode, 0, c.stderr);
      assert.equal((await failureOf(cancelled.result())).cancelled, true);
      await record(cancelled.workflowId);
    } finally {
      await release();
    }
  });
});

async function signalVia(temporal: (...args: string[]) => Promise<{ exitCode?: number; stderr: string }>, name: string, workflowId: string, input: object): Promise<void> {
  const r = await temporal('workflow', 'signal', '--workflow-id', workflowId, '--name', name, '--input', JSON.stringify(input));
  assert.equal(r.exitCode, 0, r.stderr);
}
