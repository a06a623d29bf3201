/**
 * Hostile tests of the batched purge (src/activities/maintenance/purge.ts) on real PostgreSQL: the app writing while it runs
 * (titles, updated_at bumps held in open transactions, its own deletes, new messages for idle sessions, created_at
 * edits, updates that move rows to other pages), the purge's session terminated mid-batch and mid-VACUUM and the run
 * stopped between the phases, the VACUUM's skip paths (a conflicting lock, a concurrent CREATE INDEX CONCURRENTLY, a
 * role that does not own the table), rows the app holds past the lock timeout, two attempts of one run at once,
 * and cut-offs no workflow would send. Every end state is checked against the guide's rules, and every count
 * against what really disappeared.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import pg from 'pg';
import { createPostgresMaintenanceActivities } from '../src/activities/maintenance/postgres-maintenance.js';
import { purgeExpired, type PurgeOptions, type PurgeResult, type PurgeRules } from '../src/activities/maintenance/purge.js';
import { purgeFixture, survivors, withDb } from './support/maintenance-fixture.js';
import { PG, tempDir, waitFor } from './support/services.js';
import { testConfig } from './support/temporal.js';

const DAY = 86_400_000;
const rulesAt = (now: number): PurgeRules => ({
  sessionCutoff: new Date(now - 30 * DAY).toISOString(),
  messageCutoff: new Date(now - 90 * DAY).toISOString(),
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function connect(database: string): Promise<pg.Client> {
  const c = new pg.Client({ ...PG, database });
  c.on('error', () => {});
  await c.connect();
  return c;
}

/** A purge on its own connection whose backend pid is known before it starts (so a test can terminate it). */
async function purgeWithPid(database: string, runKey: string, rules: PurgeRules, opts: PurgeOptions = {}, setup?: (c: pg.Client) => Promise<void>) {
  const c = await connect(database);
  const pid = Number((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p);
  if (setup) await setup(c);
  const run = purgeExpired(c, runKey, rules, opts).finally(() => c.end().catch(() => {}));
  run.catch(() => {});
  return { pid, run };
}

/** `c` with a pause before each transaction it begins. */
function paced(c: pg.Client, ms: number): pg.Client {
  const query = c.query.bind(c) as (...a: unknown[]) => Promise<unknown>;
  (c as unknown as { query: unknown }).query = async (...a: unknown[]) => {
    if (a[0] === 'BEGIN') await sleep(ms);
    return query(...a);
  };
  return c;
}

const terminate = (database: string, pid: number) => withDb(database, (c) => c.query('SELECT pg_terminate_backend($1)', [pid]));

/** Waits until backend `pid` runs a statement starting with `prefix` and waits for a lock. */
const waitingOnLock = (database: string, pid: number, prefix: string) =>
  waitFor(`pid ${pid} waiting on a lock in ${prefix}`, () =>
    withDb(database, async (c) => {
      const { rows } = await c.query(`SELECT query, wait_event_type FROM pg_stat_activity WHERE pid = $1`, [pid]);
      return rows[0]?.wait_event_type === 'Lock' && String(rows[0].query).trimStart().startsWith(prefix);
    }),
    30_000,
    20,
  );

/** A fresh seeded database and an identical copy that ran the guide's two DELETEs (the shared purge fixture). */
async function seeded(prefix: string, sessions = 3000, messages = 15_000) {
  const fx = await purgeFixture(sessions, messages, prefix);
  return { ...fx, sessions, messages, maxMessageId: fx.seededMaxMessageId };
}
type Seeded = Awaited<ReturnType<typeof seeded>>;

/** Exactly the guide's survivors, and the counts of the result add up to what disappeared. */
async function assertGuideResult(fx: Seeded, result: PurgeResult): Promise<void> {
  const ours = await survivors(fx.name, fx.maxMessageId);
  const guide = await survivors(fx.expected, fx.maxMessageId);
  assert.deepEqual(ours.sessions, guide.sessions, 'the guide\'s sessions survive');
  assert.deepEqual(ours.messages, guide.messages, 'the guide\'s messages survive');
  const [s, m] = result.phases;
  assert.equal(s!.deleted, fx.sessions - ours.sessions.length, 'sessions deleted add up');
  assert.equal(m!.deleted, fx.messages - ours.messages.length, 'messages deleted add up');
  assert.ok(s!.done && m!.done);
}

describe('purge under attack (real PostgreSQL)', { timeout: 600_000 }, () => {
  it('the app writes while the purge runs: exactly the rules at delete time, counts that add up', async () => {
    const fx = await seeded('llmchat_pa_conc', 4000, 20_000);
    try {
      const rules = rulesAt(Date.now());
      const q = (sql: string, p: unknown[] = []) => withDb(fx.name, (c) => c.query(sql, p));
      const idle = (await q(`SELECT id::text FROM chat_sessions WHERE updated_at < $1 ORDER BY id DESC`, [rules.sessionCutoff])).rows.map((r) => r.id as string);
      const live = (await q(`SELECT id::text FROM chat_sessions WHERE updated_at >= $1 ORDER BY id DESC`, [rules.sessionCutoff])).rows.map((r) => r.id as string);
      const before = (await q(`SELECT id::text, session_id::text, created_at < $1 AS old FROM messages`, [rules.messageCutoff])).rows as { id: string; session_id: string; old: boolean }[];
      const oldOrphans = (await q(`SELECT m.id::text FROM messages m WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = m.session_id) ORDER BY id DESC`, [rules.messageCutoff])).rows.map((r) => r.id as string);

      // The app's work, walked from the top of the key order down (the purge walks up): most lands before the purge
      // gets there, some meets it in the middle, where the purge's DELETE waits for the app's open transaction.
      const bump = idle.filter((_, i) => i % 40 === 0); // bumped updated_at: must survive
      const title = idle.filter((_, i) => i % 40 === 1); // title only: must go
      const appDeletes = [...idle.filter((_, i) => i % 40 === 2), ...live.filter((_, i) => i % 80 === 3)];
      const touchMsg = oldOrphans.filter((_, i) => i % 25 === 0); // created_at set to now: must survive
      const newForIdle = idle.filter((_, i) => i % 30 === 4); // new messages for sessions about to go: survive

      const bumped = new Set<string>();
      const touched = new Set<string>();
      const newMessages: string[] = [];
      let appDeleted = 0;
      let maxWaitMs = 0;
      let running = true;
      const timed = async <T>(p: Promise<T>) => {
        const t0 = performance.now();
        const r = await p;
        maxWaitMs = Math.max(maxWaitMs, performance.now() - t0);
        return r;
      };
      const app = withDb(fx.name, async (c) => {
        const held = async (sql: string, p: unknown[]) => {
          await c.query('BEGIN');
          const r = await timed(c.query(sql, p));
          await sleep(60); // the row stays locked a while: the purge's DELETE may wait for it and re-check
          await c.query('COMMIT');
          return r.rowCount ?? 0;
        };
        let i = 0;
        while (running && i < 400) {
          const k = i++;
          if (k < bump.length && (await held(`UPDATE chat_sessions SET updated_at = now() WHERE id = $1`, [bump[k]]))) bumped.add(bump[k]!);
          if (k < title.length) await held(`UPDATE chat_sessions SET title = 'renamed ' || $2 WHERE id = $1`, [title[k], k]);
          if (k < appDeletes.length) appDeleted += (await timed(c.query(`DELETE FROM chat_sessions WHERE id = $1`, [appDeletes[k]]))).rowCount ?? 0;
          if (k < touchMsg.length && (await held(`UPDATE messages SET created_at = now() WHERE id = $1`, [touchMsg[k]]))) touched.add(touchMsg[k]!);
          if (k < newForIdle.length) {
            const r = await timed(c.query(`INSERT INTO messages (session_id, role, content) VALUES ($1, 'user', 'for an idle session') RETURNING id::text`, [newForIdle[k]]));
            newMessages.push(r.rows[0].id as string);
          }
          // Rows moved to other pages: every session and message in a stretch of keys gets a longer row version.
          if (k % 10 === 0) {
            await timed(c.query(`UPDATE chat_sessions SET title = repeat('y', 300) WHERE id IN (SELECT id FROM chat_sessions ORDER BY id OFFSET $1 LIMIT 100)`, [(k * 37) % 3900]));
            await timed(c.query(`UPDATE messages SET content = content || repeat('x', 400) WHERE id IN (SELECT id FROM messages ORDER BY id OFFSET $1 LIMIT 300)`, [(k * 211) % 19_000]));
          }
        }
      });
      await sleep(100);
      // The purge paced (a pause before each batch) so the app's work meets it throughout the walk.
      const result = await withDb(fx.name, (c) => purgeExpired(paced(c, 120), `conc-${Date.now()}`, rules, { initialRows: 100, targetMs: 2 }));
      running = false;
      await app;

      const left = await withDb(fx.name, async (c) => ({
        sessions: new Set((await c.query(`SELECT id::text FROM chat_sessions`)).rows.map((r) => r.id as string)),
        messages: new Set((await c.query(`SELECT id::text FROM messages`)).rows.map((r) => r.id as string)),
        idleLeft: (await c.query(`SELECT id::text FROM chat_sessions WHERE updated_at < $1`, [rules.sessionCutoff])).rows.length,
        orphansLeft: (await c.query(
          `SELECT id::text, session_id::text FROM messages m WHERE id <= $2 AND created_at < $1 AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = m.session_id)`,
          [rules.messageCutoff, fx.maxMessageId],
        )).rows as { id: string; session_id: string }[],
      }));
      // Nothing skipped: no session idle by the rule, no old orphan among the messages the run walked.
      assert.equal(left.idleLeft, 0, 'idle sessions left');
      // (Except messages of live sessions the app deleted itself after the walk had passed them: they were not
      // orphans when the purge looked, and the guide's one DELETE would have kept them as well.)
      const appDeleteSet = new Set(appDeletes);
      assert.deepEqual(left.orphansLeft.filter((m) => !appDeleteSet.has(m.session_id)), [], 'old orphans left');
      // Nothing over-deleted.
      assert.ok(bumped.size >= 5 && appDeleted >= 5 && touched.size >= 5, 'the app\'s writes met the purge');
      for (const id of bumped) assert.ok(left.sessions.has(id), `bumped session ${id} survives`);
      for (const id of live) if (!appDeleteSet.has(id)) assert.ok(left.sessions.has(id), `live session ${id} survives`);
      for (const id of title) assert.ok(!left.sessions.has(id), `renamed idle session ${id} goes`);
      for (const id of touched) assert.ok(left.messages.has(id), `message ${id} whose created_at the app set to now survives`);
      for (const id of newMessages) assert.ok(left.messages.has(id), `new message ${id} of an idle session survives`);
      for (const m of before) {
        if (left.messages.has(m.id)) continue;
        assert.ok(m.old && !left.sessions.has(m.session_id), `message ${m.id} went only as an old orphan`);
      }
      // Counts: what the purge says it deleted plus what the app deleted is what disappeared.
      const [s, mp] = result.phases;
      assert.equal(s!.deleted + appDeleted, fx.sessions - left.sessions.size, 'sessions add up');
      assert.equal(mp!.deleted, before.filter((m) => !left.messages.has(m.id)).length, 'messages add up');
      console.log(`bumped ${bumped.size}, app deleted ${appDeleted}, touched ${touched.size} messages; the app's longest statement ${maxWaitMs.toFixed(0)} ms; purge ${s!.batches}+${mp!.batches} batches, longest tx ${Math.max(s!.maxTransactionMs, mp!.maxTransactionMs)} ms`);
    } finally {
      await fx.drop();
    }
  });

  it('an old orphan the app moves to a live session while the purge\'s DELETE waits for it survives (as with the guide\'s NOT IN)', async () => {
    const fx = await seeded('llmchat_pa_move', 1000, 6000);
    try {
      const rules = rulesAt(Date.now());
      const app = await connect(fx.name);
      const liveSession = (await app.query(`SELECT id FROM chat_sessions WHERE updated_at >= $1 LIMIT 1`, [rules.sessionCutoff])).rows[0].id;
      const orphans = (await app.query(`SELECT id::text FROM messages m WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = m.session_id) ORDER BY id`, [rules.messageCutoff])).rows.map((r) => r.id as string);
      const moved = orphans[Math.floor(orphans.length / 2)]!;
      // The app moves the message into a live session, in a transaction still open when the purge gets there.
      await app.query('BEGIN');
      await app.query(`UPDATE messages SET session_id = $2 WHERE id = $1`, [moved, liveSession]);
      const run = await purgeWithPid(fx.name, `move-${Date.now()}`, rules, { initialRows: 200, targetMs: 2 });
      await waitingOnLock(fx.name, run.pid, 'DELETE FROM messages');
      await app.query('COMMIT');
      const result = await run.run;
      await app.end();
      const left = await survivors(fx.name, fx.maxMessageId);
      assert.ok(left.messages.includes(Number(moved)), `message ${moved}, in a live session at delete time, survives`);
      // Every other old orphan went, and the counts add up.
      for (const id of orphans) if (id !== moved) assert.ok(!left.messages.includes(Number(id)), `orphan ${id} purged`);
      assert.equal(result.phases[1]!.deleted, fx.messages - left.messages.length);
    } finally {
      await fx.drop();
    }
  });

  it('terminated mid-batch (sessions, then messages): the re-run resumes, nothing twice, nothing skipped', async () => {
    const fx = await seeded('llmchat_pa_kill');
    try {
      const rules = rulesAt(Date.now());
      const runKey = `kill-${Date.now()}`;
      const opts = { initialRows: 100, targetMs: 2 };
      // 1. The app holds an idle session in the middle of the key order: the purge's DELETE waits on it, and dies there.
      const holder = await connect(fx.name);
      const mid = (await holder.query(`SELECT id FROM chat_sessions WHERE updated_at < $1 ORDER BY id OFFSET 600 LIMIT 1`, [rules.sessionCutoff])).rows[0].id;
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM chat_sessions WHERE id = $1 FOR UPDATE', [mid]);
      const first = await purgeWithPid(fx.name, runKey, rules, opts);
      await waitingOnLock(fx.name, first.pid, 'DELETE FROM chat_sessions');
      await terminate(fx.name, first.pid);
      await assert.rejects(first.run);
      await holder.query('ROLLBACK');
      const p1 = await withDb(fx.name, async (c) => (await c.query(`SELECT phase, batches, done FROM llmchat_ops.purge_progress WHERE run_key = $1 AND phase <> 'rules'`, [runKey])).rows);
      assert.deepEqual(p1.map((r) => [r.phase, r.done]), [['sessions', false]]);
      assert.ok(p1[0].batches > 0, 'some batches committed before the kill');

      // 2. Then an old orphan message in the middle of the messages walk.
      const msg = (await holder.query(`SELECT id FROM messages m WHERE created_at < $1 AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = m.session_id) ORDER BY id OFFSET 1500 LIMIT 1`, [rules.messageCutoff])).rows[0].id;
      await holder.query('BEGIN');
      await holder.query('SELECT 1 FROM messages WHERE id = $1 FOR UPDATE', [msg]);
      const second = await purgeWithPid(fx.name, runKey, rules, opts);
      await waitingOnLock(fx.name, second.pid, 'DELETE FROM messages');
      await terminate(fx.name, second.pid);
      await assert.rejects(second.run);
      await holder.query('ROLLBACK');
      await holder.end();

      const result = await withDb(fx.name, (c) => purgeExpired(c, runKey, rules, opts));
      assert.ok(result.phases[1]!.resumedAtBatch! > 0, 'the messages phase resumed');
      assert.equal(result.vacuum?.result, 'already done by this run');
      await assertGuideResult(fx, result);
    } finally {
      await fx.drop();
    }
  });

  it('terminated mid-VACUUM and stopped between the phases: the re-runs finish it, the vacuum runs once to the end', async () => {
    const fx = await seeded('llmchat_pa_vac');
    try {
      const rules = rulesAt(Date.now());
      const runKey = `vac-${Date.now()}`;
      // A conflicting lock keeps the VACUUM waiting (well under its 5 s), and it is terminated there.
      const holder = await connect(fx.name);
      await holder.query('BEGIN');
      await holder.query('LOCK chat_sessions IN SHARE UPDATE EXCLUSIVE MODE');
      const first = await purgeWithPid(fx.name, runKey, rules, { initialRows: 500 });
      await waitingOnLock(fx.name, first.pid, 'VACUUM');
      await terminate(fx.name, first.pid);
      await assert.rejects(first.run);
      await holder.query('ROLLBACK');
      await holder.end();
      const phases = await withDb(fx.name, async (c) => (await c.query(`SELECT phase, done FROM llmchat_ops.purge_progress WHERE run_key = $1 ORDER BY phase`, [runKey])).rows);
      assert.deepEqual(phases.map((r) => [r.phase, r.done]), [['rules', true], ['sessions', true]], 'no vacuum recorded, messages not started');

      // Stopped right after the sessions phase: the VACUUM runs (now free), the messages phase is not walked.
      const stop = new AbortController();
      await assert.rejects(
        withDb(fx.name, (c) => purgeExpired(c, runKey, rules, { signal: stop.signal, onBatch: (p) => p.phase === 'messages' && stop.abort(new Error('stop')) })),
        /stop/,
      );
      const second = await withDb(fx.name, async (c) => (await c.query(`SELECT phase, done, batches FROM llmchat_ops.purge_progress WHERE run_key = $1 ORDER BY phase`, [runKey])).rows);
      assert.deepEqual(second.map((r) => [r.phase, r.done]), [['messages', false], ['rules', true], ['sessions', true], ['vacuum:chat_sessions', true]]);

      const result = await withDb(fx.name, (c) => purgeExpired(c, runKey, rules));
      assert.equal(result.vacuum?.result, 'already done by this run');
      await assertGuideResult(fx, result);
    } finally {
      await fx.drop();
    }
  });

  it('VACUUM skipped, said so, after at most ~5 s: a held SHARE UPDATE EXCLUSIVE lock; a concurrent CREATE INDEX CONCURRENTLY', async () => {
    const fx = await seeded('llmchat_pa_skip');
    try {
      const rules = rulesAt(Date.now());
      const holder = await connect(fx.name);
      await holder.query('BEGIN');
      await holder.query('LOCK chat_sessions IN SHARE UPDATE EXCLUSIVE MODE');
      const t0 = Date.now();
      const result = await withDb(fx.name, (c) => purgeExpired(c, `skip-${Date.now()}`, rules));
      const took = Date.now() - t0;
      await holder.query('ROLLBACK');
      assert.match(result.vacuum!.result, /^skipped: /);
      assert.ok(result.vacuum!.durationMs >= 4500 && result.vacuum!.durationMs < 7000, `vacuum waited ${result.vacuum!.durationMs} ms`);
      assert.ok(took < 20_000, `the purge took ${took} ms`);
      await assertGuideResult(fx, result);

      // A concurrent CREATE INDEX CONCURRENTLY holds the same lock while it waits for an open writer.
      await withDb(fx.name, (c) => c.query(`UPDATE chat_sessions SET updated_at = now() - interval '60 days' WHERE id IN (SELECT id FROM chat_sessions LIMIT 50)`));
      await holder.query('BEGIN');
      await holder.query(`UPDATE chat_sessions SET title = title WHERE false`);
      const cic = await connect(fx.name);
      const cicPid = Number((await cic.query('SELECT pg_backend_pid() AS p')).rows[0].p);
      const building = cic.query(`CREATE INDEX CONCURRENTLY idx_attack_cic ON chat_sessions (title)`).catch((e: Error) => e);
      await waitFor('CREATE INDEX CONCURRENTLY waiting', () => withDb(fx.name, async (c) => (await c.query(`SELECT wait_event_type FROM pg_stat_activity WHERE pid = $1`, [cicPid])).rows[0]?.wait_event_type === 'Lock'));
      const second = await withDb(fx.name, (c) => purgeExpired(c, `skip-cic-${Date.now()}`, rules));
      assert.equal(second.phases[0]!.deleted, 50);
      assert.match(second.vacuum!.result, /^skipped: /);
      assert.ok(second.vacuum!.durationMs < 7000);
      await withDb(fx.name, (c) => c.query('SELECT pg_cancel_backend($1)', [cicPid]));
      await building;
      await cic.end();
      await holder.query('ROLLBACK');
      await holder.end();
      await withDb(fx.name, (c) => c.query('DROP INDEX IF EXISTS idx_attack_cic'));
    } finally {
      await fx.drop();
    }
  });

  it('a role that does not own chat_sessions: the VACUUM is not reported done', async () => {
    const fx = await seeded('llmchat_pa_role', 500, 2000);
    try {
      const role = 'llmchat_restore_test'; // the app role is a member of it; it owns nothing here
      await withDb(fx.name, async (c) => {
        // The progress table exists (an earlier run by the owner); the role may use it, and may read and delete the app's rows.
        await purgeExpired(c, 'bootstrap', { sessionCutoff: '1970-01-01T00:00:00Z', messageCutoff: '1970-01-01T00:00:00Z' });
        await c.query(`GRANT USAGE ON SCHEMA llmchat_ops TO ${role}`);
        await c.query(`GRANT SELECT, INSERT, UPDATE, DELETE ON llmchat_ops.purge_progress TO ${role}`);
        await c.query(`GRANT SELECT, DELETE ON chat_sessions, messages TO ${role}`);
      });
      const rules = rulesAt(Date.now());
      const result = await withDb(fx.name, async (c) => {
        await c.query(`SET ROLE ${role}`);
        return purgeExpired(c, `role-${Date.now()}`, rules);
      });
      assert.ok(result.phases[0]!.deleted > 0);
      assert.notEqual(result.vacuum?.result, 'done', 'VACUUM as a non-owner does nothing (a WARNING): not done');
      assert.match(result.vacuum!.result, /^skipped: .*own/);
      const vacuumed = await withDb(fx.name, async (c) => (await c.query(`SELECT vacuum_count FROM pg_stat_user_tables WHERE relname = 'chat_sessions'`)).rows[0].vacuum_count);
      assert.equal(Number(vacuumed), 0, 'and indeed nothing was vacuumed');
    } finally {
      await fx.drop();
    }
  });

  it('a row held past the lock timeout: retried smaller and finished; held for good: a clear error naming the phase, nothing half-done', async () => {
    const fx = await seeded('llmchat_pa_lock', 2000, 8000);
    try {
      const rules = rulesAt(Date.now());
      const holder = await connect(fx.name);
      const pick = async (offset: number) => (await holder.query(`SELECT id FROM chat_sessions WHERE updated_at < $1 ORDER BY id OFFSET $2 LIMIT 1`, [rules.sessionCutoff, offset])).rows[0].id;
      // Held 3 s (three lock timeouts) by the app, then renamed and released.
      const a = await pick(300);
      await holder.query('BEGIN');
      await holder.query(`UPDATE chat_sessions SET title = 'held' WHERE id = $1`, [a]);
      const release = sleep(3000).then(() => holder.query('COMMIT'));
      const result = await withDb(fx.name, (c) => purgeExpired(c, `lock-${Date.now()}`, rules, { initialRows: 200 }));
      await release;
      await assertGuideResult(fx, result);

      // Held for good: the purge gives up with an error saying what happened, where.
      const fx2 = await seeded('llmchat_pa_lock2', 2000, 8000);
      try {
        const h2 = await connect(fx2.name);
        const b = (await h2.query(`SELECT id FROM chat_sessions WHERE updated_at < $1 ORDER BY id OFFSET 300 LIMIT 1`, [rules.sessionCutoff])).rows[0].id;
        await h2.query('BEGIN');
        await h2.query('SELECT 1 FROM chat_sessions WHERE id = $1 FOR UPDATE', [b]);
        const runKey = `lock-forever-${Date.now()}`;
        const t0 = Date.now();
        const err = (await withDb(fx2.name, (c) => purgeExpired(c, runKey, rules, { initialRows: 200 })).then(() => undefined, (e: Error) => e))!;
        const took = Date.now() - t0;
        await h2.query('ROLLBACK');
        await h2.end();
        assert.ok(err, 'the purge gave up');
        assert.match(err.message, /sessions/, err.message);
        assert.match(err.message, /lock/i, err.message);
        assert.match(err.message, /another (transaction|session)/i, err.message);
        assert.equal((err as { code?: string }).code, '55P03');
        assert.ok(took < 60_000, `gave up after ${took} ms`);
        // What was committed before is consistent: the re-run finishes to the guide's result.
        const again = await withDb(fx2.name, (c) => purgeExpired(c, runKey, rules));
        assert.ok(again.phases[0]!.resumedAtBatch! > 0);
        await assertGuideResult(fx2, again);
      } finally {
        await fx2.drop();
      }
      await holder.end();
    } finally {
      await fx.drop();
    }
  });

  it('two attempts of the same run at once (a stale attempt still running): exact result, counts that add up', async () => {
    const fx = await seeded('llmchat_pa_twice', 4000, 20_000);
    try {
      const rules = rulesAt(Date.now());
      const runKey = `twice-${Date.now()}`;
      const opts = { initialRows: 100, targetMs: 2 };
      const [a, b] = await Promise.all([withDb(fx.name, (c) => purgeExpired(c, runKey, rules, opts)), withDb(fx.name, (c) => purgeExpired(c, runKey, rules, opts))]);
      const final = await withDb(fx.name, (c) => purgeExpired(c, runKey, rules));
      await assertGuideResult(fx, final);
      // Every row examined once per phase: the sessions walk saw each session exactly once.
      assert.equal(final.phases[0]!.examined, fx.sessions, `sessions examined ${final.phases[0]!.examined}`);
      assert.equal(final.phases[1]!.examined, fx.messages, `messages examined ${final.phases[1]!.examined}`);
      for (const r of [a, b]) assert.deepEqual(r.phases.map((p) => p.deleted), final.phases.map((p) => p.deleted));
    } finally {
      await fx.drop();
    }
  });

  it('cut-offs no workflow sends are refused before anything is deleted (function and activity)', async () => {
    const fx = await seeded('llmchat_pa_cut', 300, 1000);
    try {
      const future = new Date(Date.now() + DAY).toISOString();
      const bad: PurgeRules[] = [
        { sessionCutoff: 'infinity', messageCutoff: 'infinity' },
        { sessionCutoff: future, messageCutoff: rulesAt(Date.now()).messageCutoff },
        { sessionCutoff: rulesAt(Date.now()).sessionCutoff, messageCutoff: '2999-01-01T00:00:00Z' },
        { sessionCutoff: '2024-01-01 00:00:00', messageCutoff: '2024-01-01T00:00:00Z' },
        { sessionCutoff: 'now', messageCutoff: 'now' },
      ];
      for (const rules of bad) {
        await assert.rejects(withDb(fx.name, (c) => purgeExpired(c, `cut-${Date.now()}`, rules)), (e: Error) => e.name === 'BadInput', JSON.stringify(rules));
      }
      const acts = createPostgresMaintenanceActivities(
        testConfig({ address: '127.0.0.1:1', taskQueue: 'unused', environments: { production: { url: 'http://127.0.0.1:1', logs: tempDir('pa-cut'), database: fx.name } } }),
      );
      await assert.rejects(
        acts.purgeExpiredRows({ environment: 'production', runKey: `cut-act-${Date.now()}`, sessionCutoff: future, messageCutoff: future }),
        (e: { type?: string; nonRetryable?: boolean }) => e.type === 'BadInput' && e.nonRetryable === true,
      );
      const left = await survivors(fx.name, fx.maxMessageId);
      assert.equal(left.sessions.length, 300);
      assert.equal(left.messages.length, 1000);
      // The far past is a valid rule: nothing is old enough.
      const none = await withDb(fx.name, (c) => purgeExpired(c, `cut-past-${Date.now()}`, { sessionCutoff: '1970-01-01T00:00:00Z', messageCutoff: '1970-01-01T00:00:00.000Z' }));
      assert.deepEqual(none.phases.map((p) => p.deleted), [0, 0]);
    } finally {
      await fx.drop();
    }
  });

  it('a run applies one rule: the same run key with other cut-offs (or a tampered record of them) is refused, nothing deleted', async () => {
    const fx = await seeded('llmchat_pa_rules', 2000, 8000);
    try {
      const rules = rulesAt(Date.now());
      const runKey = `rules-${Date.now()}`;
      const stop = new AbortController();
      await assert.rejects(
        withDb(fx.name, (c) => purgeExpired(c, runKey, rules, { initialRows: 200, signal: stop.signal, onBatch: (p) => p.batches >= 2 && stop.abort(new Error('stop')) })),
        /stop/,
      );
      const count = () => withDb(fx.name, async (c) => (await c.query(`SELECT (SELECT count(*) FROM chat_sessions)::int AS s, (SELECT count(*) FROM messages)::int AS m, (SELECT batches FROM llmchat_ops.purge_progress WHERE run_key = $1 AND phase = 'sessions') AS b`, [runKey])).rows[0]);
      const stopped = await count();
      assert.ok(stopped.s < fx.sessions, 'two batches of sessions went before the stop');
      // A later attempt of the same run asks for a later message cut-off (more messages would qualify).
      const other = { ...rules, messageCutoff: new Date(Date.parse(rules.messageCutoff) + 30 * DAY).toISOString() };
      const err = (await withDb(fx.name, (c) => purgeExpired(c, runKey, other)).then(() => undefined, (e: Error) => e))!;
      assert.equal(err?.name, 'BadInput', String(err));
      assert.match(err.message, new RegExp(`started with the cut-offs .*${rules.messageCutoff}.*asks for .*${other.messageCutoff}`));
      assert.deepEqual(await count(), stopped, 'nothing deleted, nothing recorded');
      // One microsecond apart is another rule too.
      const oneMicro = { ...rules, sessionCutoff: rules.sessionCutoff.replace(/Z$/, '001Z') };
      await assert.rejects(withDb(fx.name, (c) => purgeExpired(c, runKey, oneMicro)), (e: Error) => e.name === 'BadInput');
      assert.deepEqual(await count(), stopped);
      // The same instants written differently are the same rule.
      const sameInstants = { sessionCutoff: rules.sessionCutoff.replace(/Z$/, '000Z'), messageCutoff: rules.messageCutoff };
      assert.notEqual(sameInstants.sessionCutoff, rules.sessionCutoff);
      // A tampered record of the rules (not JSON, or other instants) is refused too.
      await withDb(fx.name, (c) => c.query(`UPDATE llmchat_ops.purge_progress SET cursor = 'not json' WHERE run_key = $1 AND phase = 'rules'`, [runKey]));
      await assert.rejects(withDb(fx.name, (c) => purgeExpired(c, runKey, rules)), (e: Error) => e.name === 'BadInput' && /not json/.test(e.message));
      assert.deepEqual(await count(), stopped);
      await withDb(fx.name, (c) => c.query(`UPDATE llmchat_ops.purge_progress SET cursor = $2 WHERE run_key = $1 AND phase = 'rules'`, [runKey, JSON.stringify(rules)]));
      const result = await withDb(fx.name, (c) => purgeExpired(c, runKey, sameInstants));
      assert.equal(result.phases[0]!.resumedAtBatch, stopped.b, 'resumed where the first attempt stopped');
      await assertGuideResult(fx, result);
    } finally {
      await fx.drop();
    }
  });

  it('the connection lost while the stored cut-offs are compared: a retryable error, not BadInput; the retry finishes the run', async () => {
    const fx = await seeded('llmchat_pa_rulesconn', 1000, 4000);
    try {
      const rules = rulesAt(Date.now());
      const runKey = `rulesconn-${Date.now()}`;
      // The first attempt pins the rules and does two batches.
      const stop = new AbortController();
      await assert.rejects(
        withDb(fx.name, (c) => purgeExpired(c, runKey, rules, { initialRows: 200, signal: stop.signal, onBatch: (p) => p.batches >= 2 && stop.abort(new Error('stop')) })),
        /stop/,
      );
      // The next attempt's session is terminated (a server restart, a network cut, a DBA) just as it compares the rules.
      const c = await connect(fx.name);
      const pid = Number((await c.query('SELECT pg_backend_pid() AS p')).rows[0].p);
      const query = c.query.bind(c) as (...a: unknown[]) => Promise<unknown>;
      (c as unknown as { query: unknown }).query = async (...a: unknown[]) => {
        if (typeof a[0] === 'string' && /::timestamptz = \$2::timestamptz/.test(a[0])) await terminate(fx.name, pid);
        return query(...a);
      };
      const err = (await purgeExpired(c, runKey, rules).then(() => undefined, (e: Error) => e).finally(() => c.end().catch(() => {})))!;
      assert.ok(err, 'the attempt failed');
      assert.notEqual(err.name, 'BadInput', `a lost connection is not a tampered rule (it would not be retried): ${err.message}`);
      const result = await withDb(fx.name, (d) => purgeExpired(d, runKey, rules));
      await assertGuideResult(fx, result);
    } finally {
      await fx.drop();
    }
  });

  it('a deadlock with the app (the purge its victim): the batch is rolled back and tried again, the app goes on, exact result', async () => {
    const fx = await seeded('llmchat_pa_deadlock', 2000, 8000);
    try {
      const rules = rulesAt(Date.now());
      // Two messages the guide deletes, near the start of the first messages window: X first in key order, then Y.
      const gone = await withDb(fx.name, async (c) => (await c.query(`SELECT id FROM messages ORDER BY id`)).rows.map((r) => Number(r.id)));
      const kept = new Set((await survivors(fx.expected, fx.maxMessageId)).messages);
      const deleted = gone.filter((id) => !kept.has(id));
      const [x, y] = [deleted[0]!, deleted[40]!];
      const app = await connect(fx.name);
      await app.query('BEGIN');
      await app.query(`UPDATE messages SET content = content || ' (edited)' WHERE id = $1`, [y]);
      // The purge's own lock timeout above deadlock_timeout (1 s), so that PostgreSQL's deadlock check ends the wait.
      const purge = await purgeWithPid(fx.name, `deadlock-${Date.now()}`, rules, { initialRows: 2000, lockTimeoutMs: 5000 });
      await waitingOnLock(fx.name, purge.pid, 'DELETE FROM messages');
      // The purge holds X (deleted, uncommitted) and waits for Y; the app now wants X: a cycle.
      const t0 = Date.now();
      await app.query(`UPDATE messages SET content = content || ' (edited)' WHERE id = $1`, [x]);
      const appWaited = Date.now() - t0;
      await app.query('COMMIT');
      await app.end();
      const result = await purge.run;
      assert.ok(appWaited < 4000, `the app's statement went on after the deadlock check (${appWaited} ms), not after the purge's 5 s lock timeout`);
      assert.ok(result.phases[1]!.retriedBatches! >= 1, `the messages batch was retried: ${JSON.stringify(result.phases[1])}`);
      await assertGuideResult(fx, result);
    } finally {
      await fx.drop();
    }
  });

  it('no messages at all but sessions to purge: sessions go, the messages phase finishes at once', async () => {
    const fx = await seeded('llmchat_pa_nomsg', 1000, 0);
    try {
      const result = await withDb(fx.name, (c) => purgeExpired(c, `nomsg-${Date.now()}`, rulesAt(Date.now())));
      assert.ok(result.phases[0]!.deleted > 0);
      assert.deepEqual([result.phases[1]!.deleted, result.phases[1]!.done], [0, true]);
      assert.equal(result.vacuum?.result, 'done');
      await assertGuideResult(fx, result);
    } finally {
      await fx.drop();
    }
  });
});

// Keep the unused-import checker quiet where a helper is only used by some tests.
void before;
void after;
