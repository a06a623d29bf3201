/**
 * Crash tests: the worker process is SIGKILLed in the middle of pg_dump and in the middle of a live restore,
 * then started again. Temporal notices the dead worker by its missing heartbeats and retries the step on the new
 * one; the result must be complete and correct, with no partial artifact or half-restored database left over.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pg from 'pg';
import type { BackupManifest } from '../src/activities/backup/manifest.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import type { RestoreOutcome } from '../src/workflows/backup/restore.js';
import type { RestoreStatus } from '../src/workflows/backup/shared.js';
import { approveAtGate } from './support/approvals.js';
import { query, seedFixture, tableDigests, type Fixture } from './support/backup-fixture.js';
import { freePort, PG, ROOT, waitFor } from './support/services.js';
import { startDevServer, testConfigYaml } from './support/temporal.js';

describe('crash tests: worker SIGKILLed mid-backup and mid-restore', () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let configFile: string;
  let worker: ChildProcess | undefined;
  const taskQueue = `test-crash-${randomUUID()}`;
  const backupsDir = () => path.join(fx.dirs.logs, 'backups');

  function startWorker(): Promise<ChildProcess> {
    const child = spawn('node', ['dist/src/worker.js', configFile], {
      cwd: ROOT,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, LLMCHAT_DB_PASSWORD: PG.password },
    });
    let output = '';
    child.stdout?.on('data', (c) => (output += c));
    child.stderr?.on('data', (c) => (output += c));
    worker = child;
    return waitFor('worker started', async () => output.includes('llmchat-ops worker started'), 60_000).then(() => child);
  }

  async function kill(child: ChildProcess): Promise<void> {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  /** Attempt number of the last start of an activity type in a run's history. */
  async function attemptOf(workflowId: string, activity: string): Promise<number> {
    const history = await env.client.workflow.getHandle(workflowId).fetchHistory();
    const scheduled = new Map<string, string>();
    let attempt = 0;
    for (const e of history.events ?? []) {
      const s = e.activityTaskScheduledEventAttributes;
      if (s) scheduled.set(String(e.eventId), s.activityType?.name ?? '');
      const st = e.activityTaskStartedEventAttributes;
      if (st && scheduled.get(String(st.scheduledEventId)) === activity) attempt = Math.max(attempt, st.attempt ?? 0);
    }
    return attempt;
  }

  async function leftovers(dir: string): Promise<string[]> {
    const out: string[] = [];
    for (const entry of await readdir(dir, { recursive: true })) if (String(entry).endsWith('.partial')) out.push(String(entry));
    return out;
  }

  before(async () => {
    env = await startDevServer();
    fx = await seedFixture(300_000); // ~60 MB: a restore that takes long enough to be interrupted
    configFile = path.join(fx.root, 'ops.config.yaml');
    // Its own metrics port: a worker of `npm start` may hold the default one.
    await writeFile(configFile, testConfigYaml({ address: env.address, taskQueue, metricsPort: await freePort(), environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } }));
    await startWorker();
  });

  after(async () => {
    if (worker && worker.exitCode === null) await kill(worker);
    await fx?.database.drop();
    await env?.teardown();
  });

  let backupId: string;

  it('backup: worker killed while pg_dump runs → restarted, the backup completes with one complete, verified artifact per kind', async () => {
    // Hold a lock pg_dump must wait for, so the kill lands while it is running (its .partial file exists).
    const blocker = new pg.Client({ ...PG, database: fx.database.name });
    await blocker.connect();
    await blocker.query('BEGIN');
    await blocker.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
    const workflowId = `crash-backup-${randomUUID()}`;
    const handle = await env.client.workflow.start('backup', { taskQueue, workflowId, args: [{ environment: 'production', kinds: ['database', 'uploads'], requestedBy: 'crash-test' }] });
    let dir = '';
    await waitFor('pg_dump writing its partial artifact', async () => {
      for (const name of await readdir(backupsDir()).catch(() => [] as string[])) {
        if ((await readdir(path.join(backupsDir(), name))).includes('database.dump.zst.partial')) dir = path.join(backupsDir(), name);
      }
      return dir !== '';
    });
    await kill(worker!);
    await blocker.query('COMMIT');
    await blocker.end();
    await startWorker();

    const result = (await handle.result()) as BackupResult;
    assert.ok(await attemptOf(workflowId, 'dumpDatabase') >= 2, 'dumpDatabase ran again after the crash');
    assert.equal(path.join(backupsDir(), result.backupId), dir);
    const files = (await readdir(dir)).sort();
    assert.deepEqual(files, ['database.dump.zst', 'manifest.json', 'uploads.tar.zst'], 'exactly one artifact per kind, no temporary files');
    const m = JSON.parse(await readFile(path.join(dir, 'manifest.json'), 'utf8')) as BackupManifest;
    assert.equal(m.status, 'complete');
    assert.equal(m.verification?.status, 'verified', JSON.stringify(m.verification));
    assert.equal(m.artifacts.database?.tables?.['public.messages'], 300_000);
    // The killed worker's pg_dump, blocked on the pipe its dead reader left, was released by the retry, not leaked.
    await waitFor('no pg_dump of the killed worker left', async () => {
      const { stdout } = await execa('pgrep', ['-f', `pg_dump .*--dbname=${fx.database.name}`], { reject: false });
      return stdout.trim() === '';
    }, 30_000);
    backupId = result.backupId;
  });

  it('restore: worker killed mid-restore over live data → restarted, the live database is the backup, nothing half-restored left', async () => {
    assert.ok(backupId, 'needs the backup of the previous test');
    const expected = await tableDigests(fx.database.name);
    await query(fx.database.name, (c) => c.query('DELETE FROM messages WHERE id % 3 = 0'));
    const workflowId = `crash-restore-${randomUUID()}`;
    const handle = await env.client.workflow.start('restore', { taskQueue, workflowId, args: [{ environment: 'production', backupId, kind: 'database', requestedBy: 'crash-test' }] });
    await waitFor('awaiting approval', async () => (await handle.query<RestoreStatus>('restoreStatus')).state === 'awaiting-approval');
    await approveAtGate(handle, 'restore', { by: 'alice' }, { via: 'signal' });
    // Kill as soon as the staging database exists: pg_restore is then filling it.
    await waitFor(
      'staging database created',
      async () => query('llmchat', async (c) => ((await c.query(`SELECT 1 FROM pg_database WHERE datname LIKE $1`, [`${fx.database.name}_restore_%`])).rowCount ?? 0) > 0),
      120_000,
      10,
    );
    await kill(worker!);
    await startWorker();

    const res = (await handle.result()) as RestoreOutcome;
    assert.ok(await attemptOf(workflowId, 'restoreDatabase') >= 2, 'restoreDatabase ran again after the crash');
    assert.deepEqual(res.mismatches, []);
    assert.deepEqual(await tableDigests(fx.database.name), expected, 'live database equals the backup, row for row');
    const stray = await query('llmchat', async (c) => (await c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE datname LIKE $1`, [`${fx.database.name}_%`])).rows);
    assert.deepEqual(stray, [], 'no staging or pre-restore database left');
    assert.deepEqual(await leftovers(backupsDir()), []);
    assert.deepEqual((await readdir(path.join(fx.dirs.logs, 'tmp'))).filter((f) => f.endsWith('.dump')), [], 'no decompressed archive left in temp');
  });
});
