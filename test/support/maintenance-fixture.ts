/**
 * A scratch LLMChat database seeded for the weekly purge: sessions idle for more or less than 30 days, messages
 * older or newer than 90 days, of live sessions, of sessions the purge removes, and of sessions that never
 * existed — every timestamp at least a day away from a cut-off, so the guide's NOW() and ours agree. An identical
 * copy gets the guide's own two DELETE statements, and is the expected result.
 */
import pg from 'pg';
import { dropDatabaseOf, PG, scratchDatabase } from './services.js';

export interface PurgeFixture {
  name: string;
  /** The same data after the guide's single DELETE statements. */
  expected: string;
  seededMaxMessageId: number;
  drop: () => Promise<void>;
}

export async function withDb<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...PG, database });
  c.on('error', () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/**
 * `sessions` sessions (40 % idle > 30 d) and `messages` messages spread over them and over non-existent
 * sessions, ages from 0 to 200 days.
 */
export async function seedPurgeDatabase(database: string, sessions: number, messages: number): Promise<number> {
  return withDb(database, async (c) => {
    await c.query(
      `INSERT INTO chat_sessions (user_id, agent_id, title, created_at, updated_at)
       SELECT 'user-' || (g % 97), 'default', 'session ' || g, now() - interval '200 days',
              CASE WHEN g % 5 < 2 THEN now() - (31 + g % 150) * interval '1 day' - interval '12 hours'
                   ELSE now() - (g % 28) * interval '1 day' - interval '1 hour' END
       FROM generate_series(1, $1::int) g`,
      [sessions],
    );
    // Messages: 80 % belong to a seeded session (picked by row number), 20 % to sessions that never existed.
    await c.query(
      `WITH a AS (SELECT array_agg(id ORDER BY id) AS ids FROM chat_sessions)
       INSERT INTO messages (session_id, role, content, created_at)
       SELECT CASE WHEN g % 5 = 0 THEN gen_random_uuid() ELSE a.ids[1 + (g * 7919) % $2::int] END,
              CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END,
              md5(g::text) || ' message ' || g,
              now() - ((g * 31) % 200) * interval '1 day' - interval '6 hours'
       FROM generate_series(1, $1::int) g, a`,
      [messages, sessions],
    );
    await c.query('ANALYZE');
    return Number((await c.query('SELECT max(id) AS m FROM messages')).rows[0].m);
  });
}

/** The guide's weekly-maintenance.sql steps 2 and 3, verbatim. */
export async function runGuidePurge(database: string): Promise<{ sessions: number; messages: number }> {
  return withDb(database, async (c) => {
    const s = await c.query(`DELETE FROM chat_sessions WHERE updated_at < NOW() - INTERVAL '30 days'`);
    const m = await c.query(`DELETE FROM messages WHERE created_at < NOW() - INTERVAL '90 days' AND session_id NOT IN (SELECT id FROM chat_sessions)`);
    return { sessions: s.rowCount ?? 0, messages: m.rowCount ?? 0 };
  });
}

export async function copyDatabase(source: string, target: string): Promise<void> {
  await withDb('llmchat', (c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(target)} TEMPLATE ${pg.escapeIdentifier(source)}`));
}

export async function dropDb(name: string): Promise<void> {
  // Not WITH (FORCE): for the app role that fails when an autovacuum worker is in the database (seen in a full run,
  // after the purge left dead tuples); the shared helper ends our own sessions and retries while it is in use.
  await withDb('llmchat', (c) => dropDatabaseOf(c, name));
}

export async function purgeFixture(sessions: number, messages: number, prefix = 'llmchat_mt'): Promise<PurgeFixture> {
  process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
  const db = await scratchDatabase(prefix);
  const seededMaxMessageId = await seedPurgeDatabase(db.name, sessions, messages);
  const expected = `${db.name}_exp`;
  await copyDatabase(db.name, expected);
  await runGuidePurge(expected);
  return {
    name: db.name,
    expected,
    seededMaxMessageId,
    drop: async () => {
      await dropDb(expected);
      await dropDb(db.name);
    },
  };
}

/** Ids of the sessions and of the seeded messages (ids ≤ max) that are left. */
export async function survivors(database: string, maxMessageId: number): Promise<{ sessions: string[]; messages: number[] }> {
  return withDb(database, async (c) => ({
    sessions: (await c.query('SELECT id::text FROM chat_sessions ORDER BY id')).rows.map((r) => r.id as string),
    messages: (await c.query('SELECT id FROM messages WHERE id <= $1 ORDER BY id', [maxMessageId])).rows.map((r) => Number(r.id)),
  }));
}

/**
 * The app's writes during a purge: inserts messages and updates session titles (never updated_at, so the
 * expected result stays the guide's) as fast as one connection allows; records every statement's latency.
 */
export function concurrentWriter(database: string): { stop: () => Promise<{ statements: number; maxMs: number; latencies: number[] }> } {
  let running = true;
  const latencies: number[] = [];
  const done = withDb(database, async (c) => {
    const ids = (await c.query('SELECT id FROM chat_sessions')).rows.map((r) => r.id as string);
    let i = 0;
    while (running) {
      const id = ids[(i * 7919) % ids.length]!;
      const t0 = performance.now();
      if (i % 2 === 0) await c.query(`INSERT INTO messages (session_id, role, content) VALUES ($1, 'user', 'written during the purge')`, [id]);
      else await c.query(`UPDATE chat_sessions SET title = 'touched ' || $2 WHERE id = $1`, [id, i]);
      latencies.push(performance.now() - t0);
      i++;
    }
  });
  return {
    stop: async () => {
      running = false;
      await done;
      return { statements: latencies.length, maxMs: Math.max(0, ...latencies), latencies };
    },
  };
}
