/**
 * The batched purge itself (src/activities/maintenance/purge.ts) on real PostgreSQL, at the edges of its key walks: the nil and
 * the highest uuid, message ids that are negative, zero, far apart or near the top of bigint, a message written after
 * the messages phase fixed its bound, a run stopped between batches and resumed, a run called again after it
 * finished, and empty tables. The expected result is always the guide's two DELETE statements run on an identical
 * copy of the data.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { purgeExpired, type PurgeRules } from '../src/activities/maintenance/purge.js';
import { copyDatabase, dropDb, runGuidePurge, withDb } from './support/maintenance-fixture.js';
import { PG, scratchDatabase } from './support/services.js';

const DAY = 86_400_000;
const rulesAt = (now: number): PurgeRules => ({
  sessionCutoff: new Date(now - 30 * DAY).toISOString(),
  messageCutoff: new Date(now - 90 * DAY).toISOString(),
});

const NIL = '00000000-0000-0000-0000-000000000000';
const MAX = 'ffffffff-ffff-ffff-ffff-ffffffffffff';

/** Sessions at both ends of the uuid order plus ordinary ones; messages with awkward ids, old and new, orphaned or not. */
async function seedEdges(database: string): Promise<void> {
  await withDb(database, async (c) => {
    await c.query(
      `INSERT INTO chat_sessions (id, user_id, title, updated_at) VALUES
         ($1, 'u', 'nil, idle', now() - interval '40 days'),
         ($2, 'u', 'max, idle', now() - interval '40 days'),
         ('11111111-1111-1111-1111-111111111111', 'u', 'alive', now() - interval '2 days'),
         ('22222222-2222-2222-2222-222222222222', 'u', 'idle', now() - interval '31 days')`,
      [NIL, MAX],
    );
    await c.query(
      `INSERT INTO chat_sessions (user_id, title, updated_at)
       SELECT 'u' || g, 's' || g, now() - CASE WHEN g % 3 = 0 THEN interval '45 days' ELSE interval '3 days' END
       FROM generate_series(1, 3000) g`,
    );
    // Explicit ids: the walk must neither start at 1 nor assume dense keys.
    await c.query(
      `INSERT INTO messages (id, session_id, role, content, created_at) VALUES
         (-9223372036854775808, gen_random_uuid(), 'user', 'lowest id, old orphan', now() - interval '100 days'),
         (-5, gen_random_uuid(), 'user', 'negative id, old orphan', now() - interval '100 days'),
         (0, '11111111-1111-1111-1111-111111111111', 'user', 'old, session alive', now() - interval '100 days'),
         (1000000000000, '22222222-2222-2222-2222-222222222222', 'user', 'far id, old, session purged', now() - interval '100 days'),
         (1000000000001, '22222222-2222-2222-2222-222222222222', 'user', 'far id, new, session purged', now() - interval '10 days'),
         (9223372036854775806, gen_random_uuid(), 'user', 'near the top, old orphan', now() - interval '100 days')`,
    );
    await c.query(
      `WITH a AS (SELECT array_agg(id ORDER BY id) AS ids FROM chat_sessions)
       INSERT INTO messages (id, session_id, role, content, created_at)
       SELECT 5000 + g * 7, CASE WHEN g % 4 = 0 THEN gen_random_uuid() ELSE a.ids[1 + (g * 31) % 3004] END, 'assistant', 'm' || g,
              now() - ((g * 13) % 200) * interval '1 day' - interval '6 hours'
       FROM generate_series(1, 20000) g, a`,
    );
    await c.query('ANALYZE');
  });
}

const rowsOf = (database: string) =>
  withDb(database, async (c) => ({
    sessions: (await c.query('SELECT id::text FROM chat_sessions ORDER BY chat_sessions.id')).rows.map((r) => r.id as string),
    messages: (await c.query('SELECT id::text FROM messages ORDER BY messages.id')).rows.map((r) => r.id as string),
  }));

describe('purgeExpired (real PostgreSQL)', () => {
  let db: { name: string; drop: () => Promise<void> };
  const expected = () => `${db.name}_exp`;

  before(async () => {
    process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
    db = await scratchDatabase('llmchat_purge');
    await seedEdges(db.name);
    await copyDatabase(db.name, expected());
    await runGuidePurge(expected());
  });

  after(async () => {
    await dropDb(expected()).catch(() => {});
    await db?.drop();
  });

  it('stopped between batches and resumed, removes exactly the guide\'s rows, whatever the keys; a later message survives', async () => {
    const rules = rulesAt(Date.now());
    const runKey = `purge-test-${Date.now()}`;
    const stop = new AbortController();
    // Stop after the third committed batch of the messages phase.
    let messageBatches = 0;
    await assert.rejects(
      withDb(db.name, (c) =>
        purgeExpired(c, runKey, rules, {
          initialRows: 100,
          targetMs: 1,
          signal: stop.signal,
          onBatch: (p) => {
            if (p.phase === 'messages' && ++messageBatches === 3) stop.abort(new Error('stopped by the test'));
          },
        }),
      ),
      /stopped by the test/,
    );
    const mid = await withDb(db.name, async (c) => (await c.query(`SELECT phase, batches, done, deleted FROM llmchat_ops.purge_progress WHERE run_key = $1 ORDER BY phase`, [runKey])).rows);
    assert.deepEqual(mid.map((r) => [r.phase, r.done]), [['messages', false], ['rules', true], ['sessions', true], ['vacuum:chat_sessions', true]]);

    // Written after the phase fixed its bound: old and orphaned, but not the guide's to purge in this run.
    await withDb(db.name, (c) => c.query(`INSERT INTO messages (id, session_id, role, content, created_at) VALUES (9223372036854775807, gen_random_uuid(), 'user', 'written later', now() - interval '100 days')`));

    const result = await withDb(db.name, (c) => purgeExpired(c, runKey, rules, { initialRows: 100, targetMs: 1 }));
    const [sessions, messages] = result.phases;
    assert.equal(messages!.resumedAtBatch, 3);
    assert.equal(result.vacuum?.result, 'already done by this run');

    const got = await rowsOf(db.name);
    const want = await rowsOf(expected());
    assert.deepEqual(got.sessions, want.sessions);
    assert.deepEqual(got.messages, [...want.messages, '9223372036854775807']);
    for (const id of ['-9223372036854775808', '-5', '1000000000000', '9223372036854775806']) assert.ok(!got.messages.includes(id), `message ${id} purged`);
    for (const id of ['0', '1000000000001']) assert.ok(got.messages.includes(id), `message ${id} kept`);
    assert.ok(!got.sessions.includes(NIL) && !got.sessions.includes(MAX), 'the nil and the highest uuid were walked');

    // The counts add up across the two attempts: what the run says it deleted is what is gone.
    const seeded = { sessions: 3004, messages: 20006 };
    assert.equal(sessions!.deleted, seeded.sessions - got.sessions.length);
    assert.equal(messages!.deleted, seeded.messages - (got.messages.length - 1));
    assert.ok(sessions!.batches > 5 && messages!.batches > 5, `many batches: ${sessions!.batches} + ${messages!.batches}`);

    // Called again after it finished: the recorded result, nothing more deleted.
    const again = await withDb(db.name, (c) => purgeExpired(c, runKey, rules));
    assert.deepEqual(again.phases.map((p) => p.deleted), [sessions!.deleted, messages!.deleted]);
    assert.deepEqual((await rowsOf(db.name)).messages, got.messages);
  });

  it('empty tables: both phases finish at once and nothing is vacuumed', async () => {
    const empty = await scratchDatabase('llmchat_purge_empty');
    try {
      await withDb(empty.name, (c) => c.query('DELETE FROM messages; DELETE FROM chat_sessions'));
      const result = await withDb(empty.name, (c) => purgeExpired(c, `empty-${Date.now()}`, rulesAt(Date.now())));
      assert.deepEqual(result.phases.map((p) => [p.phase, p.deleted, p.done]), [['sessions', 0, true], ['messages', 0, true]]);
      assert.equal(result.vacuum, undefined);
    } finally {
      await empty.drop();
    }
  });
});
