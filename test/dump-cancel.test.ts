/**
 * Cancelling dumpDatabase while it cannot make progress: the app (here the test) holds `LOCK TABLE messages IN ACCESS
 * EXCLUSIVE MODE` in an open transaction, so pg_dump and our row count both wait on it. A cancellation must end the
 * activity promptly with the cancellation itself, whenever it lands: during the dump's first awaits (connect, BEGIN,
 * the snapshot — the signal has fired before the dump links it), while pg_dump waits on the lock (pg_dump killed), or
 * while our count waits on it (cancelled from a second session: its session would wait on after its client closed).
 * Once a run hung like this for ever, heartbeating, with both waiting on a test's lock. Each case has a 20 s limit,
 * so a hang fails. The activity runs in @temporalio/testing's MockActivityEnvironment against real PostgreSQL.
 */
import assert from 'node:assert/strict';
import { readdir, readFile, rm } from 'node:fs/promises';
import { after, afterEach, before, describe, it } from 'node:test';
import { CancelledFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { createActivities } from '../src/activities/index.js';
import { createBackupPostgresActivities } from '../src/activities/backup/backup-postgres.js';
import { makeBackupId } from '../src/activities/backup/ids.js';
import type { Artifact } from '../src/activities/backup/manifest.js';
import type { OpsConfig } from '../src/common/config/index.js';
import { seedFixture, query, type Fixture } from './support/backup-fixture.js';
import { PG, waitFor } from './support/services.js';
import { testConfig } from './support/temporal.js';

const CASE_MS = 20_000;
/** From the cancellation to the end of the activity. */
const PROMPT_MS = 5_000;

/** pids of pg_dump processes on this machine dumping `database`. */
async function pgDumpProcesses(database: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const args = await readFile(`/proc/${entry}/cmdline`, 'utf8').then((s) => s.split('\0'), (): string[] => []);
    if (args[0]?.endsWith('pg_dump') && args.includes(`--dbname=${database}`)) pids.push(Number(entry));
  }
  return pids;
}

describe('a cancelled database dump ends promptly, even when the tables are locked', { timeout: 4 * CASE_MS + 60_000 }, () => {
  let fx: Fixture;
  let cfg: OpsConfig;
  let admin: pg.Client;
  let locker: pg.Client | undefined;
  let lockerPid = 0;
  let n = 0;

  /** Sessions on the fixture database, without ours (`admin`, `locker`). */
  const sessions = async (where: string, params: unknown[] = []) =>
    (
      await admin.query<{ pid: number; application_name: string; wait_event_type: string | null; query: string }>(
        `SELECT pid, application_name, wait_event_type, query FROM pg_stat_activity
         WHERE datname = $1 AND pid <> pg_backend_pid() AND pid <> $2 AND (${where})`,
        [fx.database.name, lockerPid, ...params],
      )
    ).rows;

  before(async () => {
    fx = await seedFixture(5_000);
    cfg = testConfig({ address: 'unused:7233', taskQueue: 'unused', environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } });
    admin = new pg.Client({ ...PG, database: fx.database.name, application_name: 'dump-cancel admin' });
    await admin.connect();
  });

  afterEach(async () => {
    // Released even when a case timed out: whatever still waited on the lock can then finish.
    await locker?.end().catch(() => {});
    locker = undefined;
  });

  after(async () => {
    await admin?.end().catch(() => {});
    await fx?.database.drop();
    await rm(fx.root, { recursive: true, force: true });
  });

  /** What the app does: an open transaction holding the strongest lock on `messages`. */
  async function lockMessages(): Promise<void> {
    locker = new pg.Client({ ...PG, database: fx.database.name, application_name: 'dump-cancel locker' });
    await locker.connect();
    lockerPid = (await locker.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]!.pid;
    await locker.query('BEGIN');
    await locker.query('LOCK TABLE messages IN ACCESS EXCLUSIVE MODE');
  }

  /** Starts the dump of a fresh backup in a mock activity context; `workflowId` names its sessions. */
  async function startDump(workflowId: string, through: 'registered' | 'bare') {
    const acts = createActivities(cfg);
    const backupId = makeBackupId('production', new Date(), `ca${String(++n).padStart(4, '0')}`);
    await acts.beginBackup({ environment: 'production', backupId, kinds: ['database'], requestedBy: 'test', reason: 'dump-cancel', workflowId, runId: 'run' });
    const env = new MockActivityEnvironment({ activityType: 'dumpDatabase', workflowExecution: { workflowId, runId: 'run' } });
    const dumpDatabase = through === 'registered' ? acts.dumpDatabase : createBackupPostgresActivities(cfg).dumpDatabase;
    const settled = (env.run(dumpDatabase, { environment: 'production', backupId }) as Promise<Artifact>).then(
      (artifact: Artifact) => ({ ok: true as const, artifact }),
      (err: unknown) => ({ ok: false as const, err }),
    );
    return { env, settled, ours: `application_name = 'llmchat-ops dumpDatabase ${workflowId}'` };
  }

  /** Waits up to 3 s for no session to match `where` (a backend ends a moment after its client); returns those left. */
  async function leftAfterwards(where: string): Promise<Awaited<ReturnType<typeof sessions>>> {
    await waitFor(where, async () => (await sessions(where)).length === 0, 3_000, 50).catch(() => {});
    return sessions(where);
  }

  async function cancelAndExpectPromptEnd(run: Awaited<ReturnType<typeof startDump>>): Promise<void> {
    const cancelledAt = Date.now();
    run.env.cancel();
    const outcome = await Promise.race([run.settled, new Promise<'hung'>((r) => setTimeout(() => r('hung'), CASE_MS / 2).unref())]);
    assert.notEqual(outcome, 'hung', 'the cancelled dump ended');
    const elapsed = Date.now() - cancelledAt;
    if (outcome === 'hung') return;
    assert.equal(outcome.ok, false, 'the dump did not complete after its cancellation');
    if (!outcome.ok) assert.ok(outcome.err instanceof CancelledFailure, `ends with the cancellation, not a consequence of it: ${String(outcome.err)}`);
    assert.ok(elapsed < PROMPT_MS, `ended ${elapsed} ms after the cancellation`);
  }

  it('a cancel landing during the dump\'s first awaits (before it links the signal) still stops it', { timeout: CASE_MS }, async () => {
    await lockMessages();
    // Cancelled at once, while the first steps are awaited: the bare activity's own (rm, connect, BEGIN, snapshot),
    // or, through the registered one, the data lock's — the signal has fired before the dump itself starts.
    for (const through of ['bare', 'registered'] as const) {
      const run = await startDump(`dump-cancel-early-${through}`, through);
      await cancelAndExpectPromptEnd(run);
      assert.deepEqual(await pgDumpProcesses(fx.database.name), [], `${through}: no pg_dump runs`);
      assert.deepEqual(await leftAfterwards(`application_name = 'pg_dump' OR ${run.ours}`), [], `${through}: no pg_dump session and none of ours`);
    }
  });

  it('a cancel while pg_dump waits on a table lock kills pg_dump', { timeout: CASE_MS }, async () => {
    await lockMessages();
    const run = await startDump('dump-cancel-pgdump', 'registered');
    await waitFor('pg_dump waiting on the lock', async () => (await sessions(`application_name = 'pg_dump' AND wait_event_type = 'Lock'`)).length > 0, CASE_MS / 2, 20);
    assert.equal((await pgDumpProcesses(fx.database.name)).length, 1, 'pg_dump runs');
    await cancelAndExpectPromptEnd(run);
    assert.deepEqual(await pgDumpProcesses(fx.database.name), [], 'pg_dump was killed');
    assert.deepEqual(await leftAfterwards(run.ours), [], 'none of our sessions is left');
    assert.deepEqual(await leftAfterwards(`application_name = 'pg_dump'`), [], 'nor the session of the killed pg_dump');
  });

  it('a cancel while our row count waits on a table lock cancels the count', { timeout: CASE_MS }, async () => {
    await lockMessages();
    const run = await startDump('dump-cancel-count', 'registered');
    await waitFor('our count waiting on the lock', async () => (await sessions(`${run.ours} AND wait_event_type = 'Lock' AND query LIKE 'SELECT count(*)%'`)).length > 0, CASE_MS / 2, 20);
    await cancelAndExpectPromptEnd(run);
    // The lock is still held: a count that was not cancelled would still be waiting on it (closing its client does
    // not stop it), and nothing of ours may be left behind.
    assert.deepEqual(await leftAfterwards(run.ours), [], 'none of our sessions is left (the count was cancelled)');
    assert.deepEqual(await pgDumpProcesses(fx.database.name), [], 'pg_dump was killed');
    const stillHeld = await query(fx.database.name, (c) => c.query(`SELECT 1 FROM pg_locks WHERE pid = $1 AND mode = 'AccessExclusiveLock' AND granted`, [lockerPid]));
    assert.equal(stillHeld.rowCount, 1, 'the app\'s lock was held throughout');
  });
});
