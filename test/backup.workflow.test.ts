/**
 * backup / restore workflows on the real dev server, PostgreSQL (pg_dump, pg_restore) and file system:
 * verified backups, restores into new targets and over live data (approval, safety backup), refusals.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { CancelledFailure, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import type { BackupManifest } from '../src/activities/backup/manifest.js';
import { signingKeys, signManifest } from '../src/activities/backup/signature.js';
import type { OpsConfig } from '../src/common/config/index.js';
import { dataWorkflowId } from '../src/common/names.js';
import type { BackupResult, ScheduledBackupResult } from '../src/workflows/backup/backup.js';
import type { RestoreOutcome } from '../src/workflows/backup/restore.js';
import type { RestoreStatus } from '../src/workflows/backup/shared.js';
import { approveAtGate } from './support/approvals.js';
import { databaseExists, query, tableDigests, treeDigest, type Fixture } from './support/backup-fixture.js';
import { startBackupStack, type BackupStack } from './support/backup-stack.js';
import { dropDatabaseOf, PG, waitFor } from './support/services.js';
import pg from 'pg';

async function connect(database: string): Promise<pg.Client> {
  const c = new pg.Client({ ...PG, database });
  await c.connect();
  return c;
}

describe('backup and restore workflows (real dev server, PostgreSQL, files)', () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let cfg: OpsConfig;
  let stack: BackupStack;
  let first: BackupResult;
  const taskQueue = `test-backup-${randomUUID()}`;
  const backups = () => cfg.environments.production!.paths.backups;

  const start = <T>(type: string, input: unknown, id = `${type}-${randomUUID()}`) =>
    env.client.workflow.start<(i: unknown) => Promise<T>>(type, { taskQueue, workflowId: id, args: [input] });
  const run = async <T>(type: string, input: unknown, id?: string) => (await start<T>(type, input, id)).result();
  /** The failure type (ApplicationFailure.type) a workflow run ended with. */
  const failureOf = async (p: Promise<unknown>): Promise<{ type?: string; message: string }> => {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      const cause = err.cause as { type?: string; message: string; cause?: { type?: string; message: string } };
      const inner = cause.cause && 'type' in cause.cause && cause.cause.type ? cause.cause : cause;
      return { type: inner.type, message: inner.message };
    }
    assert.fail('the workflow should have failed');
  };
  /** pg_dump sessions on the fixture database (pg_dump names itself in application_name). */
  const pgDumps = async () =>
    query('llmchat', async (c) => Number((await c.query(`SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = 'pg_dump' AND datname = $1`, [fx.database.name])).rows[0].n));
  const manifestOf = async (id: string) => JSON.parse(await readFile(path.join(backups(), id, 'manifest.json'), 'utf8')) as BackupManifest;

  before(async () => {
    stack = await startBackupStack(taskQueue, 5_000);
    ({ env, fx, cfg } = stack);
    first = await run<BackupResult>('backup', { environment: 'production', requestedBy: 'test', reason: 'baseline' });
  });

  after(async () => {
    await stack?.stop();
  });

  it('backs up database, application, config and uploads; verified by a restore test; artifacts match their manifest', async () => {
    const m = await manifestOf(first.backupId);
    assert.equal(m.status, 'complete');
    assert.deepEqual(Object.keys(m.artifacts).sort(), ['application', 'config', 'database', 'uploads']);
    assert.equal(m.verification?.status, 'verified');
    assert.equal(m.verification?.checksums, 'ok');
    assert.equal(m.verification?.archiveList, 'ok');
    const rt = m.verification?.restoreTest;
    assert.ok(rt && rt !== 'skipped' && rt.mismatches.length === 0 && rt.tables >= 3, JSON.stringify(rt));
    assert.equal(await databaseExists(rt.database), false, 'scratch database dropped');
    const live = await tableDigests(fx.database.name);
    for (const [t, d] of Object.entries(live)) assert.equal(m.artifacts.database?.tables?.[t], d.rows, `row count of ${t} at dump time`);
    assert.equal(m.artifacts.database?.tables?.['public.messages'], 5_000);
    for (const a of Object.values(m.artifacts)) {
      const { stdout } = await execa('sha256sum', [path.join(backups(), first.backupId, a.file)]);
      assert.equal(stdout.split(' ')[0], a.sha256, `${a.file} checksum`);
    }
    const files = await readdir(path.join(backups(), first.backupId));
    assert.deepEqual(files.sort(), ['application.tar.zst', 'config.tar.zst', 'database.dump.zst', 'manifest.json', 'uploads.tar.zst']);
    const { stdout: listing } = await execa('tar', ['--zstd', '-tf', path.join(backups(), first.backupId, 'application.tar.zst')]);
    assert.match(listing, /\.\/src\/server\.js/);
    assert.doesNotMatch(listing, /node_modules|\.git\//, 'excluded names left out');
    // The Web UI can find it: backup id and verification are search attributes.
    const desc = await env.client.workflow.getHandle(first.manifest.workflowId).describe();
    assert.deepEqual(desc.searchAttributes.LlmchatBackupId, [first.backupId]);
    assert.deepEqual(desc.searchAttributes.LlmchatVerification, ['verified']);
  });

  it('lists the catalogue, newest first, with kinds, sizes, checksums and verification', async () => {
    const list = await run<{ id: string; verification: string; kinds: string[]; bytes: number; artifacts: { sha256: string }[] }[]>('listBackups', { environment: 'production' });
    const entry = list.find((e) => e.id === first.backupId);
    assert.ok(entry);
    assert.equal(entry.verification, 'verified');
    assert.equal(entry.kinds.length, 4);
    assert.ok(entry.bytes > 0 && entry.artifacts.every((a) => /^[0-9a-f]{64}$/.test(a.sha256)));
  });

  it('restores the database into a new target with identical rows and content, without approval', async () => {
    const target = `insp_${Date.now().toString(36)}`;
    try {
      const res = await run<RestoreOutcome>('restore', { environment: 'production', backupId: first.backupId, kind: 'database', target, requestedBy: 'test' });
      assert.equal(res.live, false);
      assert.deepEqual(res.mismatches, []);
      assert.equal(res.approvedBy, undefined);
      assert.deepEqual(await tableDigests(target), await tableDigests(fx.database.name));
      // A second restore into the same (now existing) name is refused, not overwritten.
      const again = await failureOf(run('restore', { environment: 'production', backupId: first.backupId, kind: 'database', target, requestedBy: 'test' }));
      assert.equal(again.type, 'TargetExists');
    } finally {
      await query('llmchat', (c) => dropDatabaseOf(c, target));
    }
  });

  it('restores over the live database only after approveRestore, taking a safety backup first', async () => {
    const before = await tableDigests(fx.database.name);
    await query(fx.database.name, (c) => c.query(`DELETE FROM messages WHERE id % 10 = 0`)); // the "accident"
    const damaged = await tableDigests(fx.database.name);
    assert.notEqual(damaged['public.messages']?.rows, before['public.messages']?.rows);

    const id = `restore-live-${randomUUID()}`;
    const handle = await start<RestoreOutcome>('restore', { environment: 'production', backupId: first.backupId, kind: 'database', requestedBy: 'bob' }, id);
    let status: RestoreStatus | undefined;
    for (let i = 0; i < 100 && status?.state !== 'awaiting-approval'; i++) {
      await new Promise((r) => setTimeout(r, 100));
      status = await handle.query<RestoreStatus>('restoreStatus');
    }
    assert.equal(status?.state, 'awaiting-approval');
    assert.equal(status?.plan?.live, true);
    assert.deepEqual(await tableDigests(fx.database.name), damaged, 'nothing touched while waiting');

    await approveAtGate(handle, 'restore', { by: 'alice', comment: 'restore after the bad delete' }, { via: 'signal' });
    const res = await handle.result();
    assert.equal(res.approvedBy, 'alice');
    assert.deepEqual(res.mismatches, []);
    assert.deepEqual(await tableDigests(fx.database.name), before, 'live database is the backup again');

    assert.ok(res.safetyBackupId);
    const safety = await manifestOf(res.safetyBackupId);
    assert.equal(safety.safetyFor, id);
    assert.deepEqual(safety.kinds, ['database']);
    assert.equal(safety.verification?.status, 'verified');
    assert.equal(safety.artifacts.database?.tables?.['public.messages'], damaged['public.messages']?.rows, 'the safety backup holds what was overwritten');
    const names = await query('llmchat', async (c) => (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${fx.database.name}_%`])).rows);
    assert.deepEqual(names, [], 'no staging or pre-restore database left behind');
  });

  it('a rejected restore changes nothing', async () => {
    // The restore is of uploads, so the uploads tree is what must stay as it is (with a change the backup lacks).
    await writeFile(path.join(fx.dirs.uploads, 'new since the backup.txt'), 'kept\n');
    const before = await treeDigest(fx.dirs.uploads);
    const handle = await start<RestoreOutcome>('restore', { environment: 'production', backupId: first.backupId, kind: 'uploads', requestedBy: 'bob' });
    await waitFor('awaiting approval', async () => (await handle.query<RestoreStatus>('restoreStatus')).state === 'awaiting-approval');
    await handle.signal('approveRestore', { by: '' }); // malformed: recorded as refused, changes nothing
    await handle.signal('rejectRestore', { by: 'carol', comment: 'wrong backup' });
    const f = await failureOf(handle.result());
    assert.equal(f.type, 'RestoreRejected');
    assert.match(f.message, /rejected by carol: wrong backup/);
    assert.deepEqual(await treeDigest(fx.dirs.uploads), before);
    const siblings = (await readdir(path.dirname(fx.dirs.uploads))).filter((n) => n.includes('restore'));
    assert.deepEqual(siblings, [], 'no staging directory made');
    await rm(path.join(fx.dirs.uploads, 'new since the backup.txt'));
  });

  it('restores uploads and application files over live ones; excluded node_modules and .git are kept', async () => {
    const uploadsBefore = await treeDigest(fx.dirs.uploads);
    const appBefore = await treeDigest(fx.dirs.app);
    await writeFile(path.join(fx.dirs.uploads, 'avatars', 'a.png'), 'overwritten by mistake');
    await writeFile(path.join(fx.dirs.app, 'src', 'server.js'), 'broken();\n');
    for (const kind of ['uploads', 'application'] as const) {
      const handle = await start<RestoreOutcome>('restore', { environment: 'production', backupId: first.backupId, kind, requestedBy: 'bob' });
      await waitFor('awaiting approval', async () => (await handle.query<RestoreStatus>('restoreStatus')).state === 'awaiting-approval');
      await approveAtGate(handle, 'restore', { by: 'alice' }, { via: 'signal' });
      const res = await handle.result();
      assert.equal(res.live, true);
      assert.ok(res.safetyBackupId);
    }
    assert.deepEqual(await treeDigest(fx.dirs.uploads), uploadsBefore);
    assert.deepEqual(await treeDigest(fx.dirs.app), appBefore, 'application restored, node_modules and .git carried over');
    const siblings = (await readdir(path.dirname(fx.dirs.uploads))).filter((n) => n.includes('restore'));
    assert.deepEqual(siblings, [], 'no staging or pre-restore directories left');
  });

  it('a cancelled backup kills pg_dump, leaves no partial artifact and is marked failed in its manifest', async () => {
    const blocker = await connect(fx.database.name);
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE'); // pg_dump waits here, mid-run
    const handle = await start<BackupResult>('backup', { environment: 'production', kinds: ['database'], requestedBy: 'test' });
    let dir = '';
    try {
      await waitFor('pg_dump running', async () => {
        for (const name of await readdir(backups())) {
          if ((await readdir(path.join(backups(), name))).includes('database.dump.zst.partial')) dir = path.join(backups(), name);
        }
        return dir !== '' && (await pgDumps()) > 0;
      });
      await handle.cancel();
      await assert.rejects(handle.result(), (err: unknown) => err instanceof WorkflowFailedError && err.cause instanceof CancelledFailure);
    } finally {
      await blocker.query('ROLLBACK');
      await blocker.end();
    }
    assert.deepEqual(await readdir(dir), ['manifest.json'], 'no partial or complete dump left');
    const m = await manifestOf(path.basename(dir));
    assert.equal(m.status, 'failed');
    assert.equal(m.error, 'cancelled');
    await waitFor('pg_dump gone', async () => (await pgDumps()) === 0, 5_000);
    const list = await run<{ id: string; status: string }[]>('listBackups', { environment: 'production' });
    assert.equal(list.find((e) => e.id === m.id)?.status, 'failed', 'the catalogue shows it as failed, not usable');
  });

  it('refuses a corrupted artifact (one byte flipped) before touching anything, and verification fails', async () => {
    const b = await run<BackupResult>('backup', { environment: 'production', kinds: ['database', 'config'], requestedBy: 'test', verify: 'checksums' });
    const file = path.join(backups(), b.backupId, 'database.dump.zst');
    const bytes = await readFile(file);
    const at = Math.floor(bytes.length / 2);
    bytes.writeUInt8(bytes.readUInt8(at) ^ 0x01, at);
    await writeFile(file, bytes);
    const target = `never_${Date.now().toString(36)}`;
    const f = await failureOf(run('restore', { environment: 'production', backupId: b.backupId, kind: 'database', target, requestedBy: 'test' }));
    assert.equal(f.type, 'ChecksumMismatch');
    assert.equal(await databaseExists(target), false);
    const verify = await failureOf(run('verifyBackup', { environment: 'production', backupId: b.backupId, restoreTest: false }));
    assert.equal(verify.type, 'VerificationFailed');
    const m = await manifestOf(b.backupId);
    assert.equal(m.verification?.status, 'failed');
    assert.equal(m.verification?.checksums, 'mismatch');
    const refused = await failureOf(run('restore', { environment: 'production', backupId: b.backupId, kind: 'uploads', requestedBy: 'test' }));
    assert.equal(refused.type, 'KindNotInBackup');
    assert.match(refused.message, /has no uploads artifact/);
  });

  it('refuses an unknown backup id', async () => {
    const f = await failureOf(run('restore', { environment: 'production', backupId: 'production-20200101T000000Z-abcdef', kind: 'database', requestedBy: 'test' }));
    assert.equal(f.type, 'BackupNotFound');
  });

  for (const [label, type, input] of [
    ['a path as backup id', 'restore', { environment: 'production', backupId: '../../etc/passwd', kind: 'database' }],
    ['an absolute path as backup id', 'restore', { environment: 'production', backupId: '/etc/passwd', kind: 'database' }],
    ['shell metacharacters in the id', 'restore', { environment: 'production', backupId: 'production-20261126T000000Z-abc;rm', kind: 'database' }],
    ['another environment\'s backup', 'restore', { environment: 'production', backupId: 'staging-20261126T000000Z-abcdef', kind: 'database' }],
    ['an unknown restore kind', 'restore', { environment: 'production', backupId: 'production-20261126T000000Z-abcdef', kind: 'secrets' }],
    ['a path as database target', 'restore', { environment: 'production', backupId: 'production-20261126T000000Z-abcdef', kind: 'database', target: '../x' }],
    ['SQL in the database target', 'restore', { environment: 'production', backupId: 'production-20261126T000000Z-abcdef', kind: 'database', target: 'x; DROP DATABASE llmchat' }],
    ['a path as directory target', 'restore', { environment: 'production', backupId: 'production-20261126T000000Z-abcdef', kind: 'uploads', target: '/etc' }],
    ['an unknown backup kind', 'backup', { environment: 'production', kinds: ['database', 'secrets'] }],
    ['an empty kinds list', 'backup', { environment: 'production', kinds: [] }],
    ['a bad environment name', 'backup', { environment: '../prod' }],
    ['a bad verify mode', 'backup', { environment: 'production', verify: 'none' }],
    ['a multi-line reason', 'backup', { environment: 'production', reason: 'a\nb' }],
    ['an unknown key (a typo of kinds)', 'backup', { environment: 'production', kindz: ['database'] }],
    ['a non-boolean restoreTest', 'verifyBackup', { environment: 'production', backupId: 'production-20261126T000000Z-abcdef', restoreTest: 'yes' }],
  ] as const) {
    it(`rejects ${label} before any activity runs`, async () => {
      const id = `bad-${randomUUID()}`;
      const f = await failureOf(run(type, input, id));
      assert.equal(f.type, 'BadInput', f.message);
      const history = await env.client.workflow.getHandle(id).fetchHistory();
      assert.equal(history.events?.some((e) => e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes), false);
    });
  }

  it('an unknown environment is refused by the first activity without retries', async () => {
    const id = `unknown-env-${randomUUID()}`;
    const f = await failureOf(run('backup', { environment: 'prod' }, id));
    assert.match(f.message, /Unknown environment "prod"; known environments: production/);
    const history = await env.client.workflow.getHandle(id).fetchHistory();
    const starts = history.events?.filter((e) => e.activityTaskStartedEventAttributes) ?? [];
    assert.deepEqual(starts.map((e) => e.activityTaskStartedEventAttributes?.attempt), [1]);
  });

  it('the nightly scheduledBackup makes a verified backup, then applies retention to what llmchat-ops made only', async () => {
    // An old backup of ours (40 days), and things that are not ours: retention must remove only the former.
    const old = 'production-20200101T020000Z-0a0b0c';
    const oldManifest: BackupManifest = { ...(await manifestOf(first.backupId)), id: old, startedAt: '2020-01-01T02:00:00.000Z', workflowId: 'old', runId: 'old' };
    await mkdir(path.join(backups(), old), { recursive: true });
    // Ours means signed with the worker's key (retention leaves unsigned manifests alone).
    await writeFile(path.join(backups(), old, 'manifest.json'), JSON.stringify(signManifest(oldManifest, signingKeys(cfg.backup))));
    await mkdir(path.join(backups(), 'production-20200101T020000Z-ffffff'), { recursive: true }); // no manifest: not ours
    await writeFile(path.join(backups(), 'README.txt'), 'hands off\n');

    const res = await run<ScheduledBackupResult>('scheduledBackup', { environment: 'production' });
    assert.equal(res.backup?.manifest.verification?.status, 'verified');
    assert.deepEqual(res.retention?.remove.map((r) => r.id), [old]);
    const left = await readdir(backups());
    assert.ok(!left.includes(old), 'the 40-day-old backup is gone');
    assert.ok(left.includes('README.txt') && left.includes('production-20200101T020000Z-ffffff'), 'foreign entries untouched');
    assert.ok(left.includes(first.backupId) && left.includes(res.backup.backupId));
  });

  it('never runs two backups or restores of one environment at once (workflow id is the business key)', async () => {
    const handle = await start('restore', { environment: 'production', backupId: first.backupId, kind: 'config', requestedBy: 'bob' }, dataWorkflowId('production'));
    try {
      await assert.rejects(start('backup', { environment: 'production' }, dataWorkflowId('production')), WorkflowExecutionAlreadyStartedError);
      // A restore waiting for approval holds no data lock: the nightly backup is not suppressed by it (issue 7 §4;
      // a restore actually replacing data refuses it — see backup-robustness.test.ts).
      await waitFor('awaiting approval', async () => (await handle.query<RestoreStatus>('restoreStatus')).state === 'awaiting-approval');
      const nightly = await run<ScheduledBackupResult>('scheduledBackup', { environment: 'production' });
      assert.equal(nightly.skipped, undefined);
      assert.equal(nightly.backup?.manifest.verification?.status, 'verified');
    } finally {
      await handle.signal('rejectRestore', { by: 'test' });
      await handle.result().catch(() => {});
    }
  });
});
