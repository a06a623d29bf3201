/**
 * The weekly purge, ours vs the guide's, in one run on identical copies of a large database (the app's schema,
 * foreign keys and indexes: its own migrations). Seed (kept between runs; BENCH_RESEED=1 re-seeds): 1 M sessions
 * (60 % idle > 30 days) and 5 M messages (30 % of sessions that never existed, ages 0–365 days) — ≥ 6 M rows of which
 * ≥ 3 M are expired by the guide's rules. Each side runs on its own `CREATE DATABASE … TEMPLATE` copy with the
 * same concurrent writer (one connection inserting messages and updating session titles, like the app):
 *   total time of the purge (goal: ours ≤ 2× the guide's two DELETE statements),
 *   longest single transaction (goal: ours ≤ 100 ms; the guide's is each whole DELETE),
 *   p99 latency of the writer's statements during the purge vs idle (goal: ours ≤ 2×; the guide's reported too),
 *   table sizes and dead tuples afterwards, and the rows each side deleted (must be equal).
 * Then, on a third copy: the floor of an exact purge in key windows (read + one probe per old message, no deletes)
 * and the guide's messages DELETE as written, with the server's work_mem (BENCH_AS_WRITTEN_CAP_S, default 60; 0 skips).
 * The guide's side runs with work_mem = 512MB: with the default 4 MB its NOT IN subplan is not hashed and the
 * DELETE of messages does not finish (measured: still running after 3.5 min, cancelled).
 * Run: `npm run bench:maintenance` (PostgreSQL up first: scripts/services.sh up postgres).
 */
import pg from 'pg';
import { purgeExpired } from '../src/activities/maintenance/purge.js';

const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: 'llmchat',
  password: process.env.LLMCHAT_DB_PASSWORD ?? 'llmchat-demo',
};
const SEED = 'llmchat_bench_maint_seed';
const SESSIONS = Number(process.env.BENCH_SESSIONS ?? 1_000_000);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 5_000_000);
const IDLE_MS = 10_000;
/** The guide's DELETE as written (the server's work_mem) is cancelled after this many seconds; 0 skips that part. */
const AS_WRITTEN_CAP_S = Number(process.env.BENCH_AS_WRITTEN_CAP_S ?? 60);

async function withDb<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...PG, database, application_name: 'bench-maintenance' });
  c.on('error', () => {});
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

const log = (s: string) => console.log(`[${new Date().toISOString().slice(11, 19)}] ${s}`);

async function seed(): Promise<void> {
  const exists = await withDb('llmchat', async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [SEED])).rowCount === 1);
  if (exists && !process.env.BENCH_RESEED) {
    log(`seed ${SEED} kept from an earlier run`);
    return;
  }
  await withDb('llmchat', async (c) => {
    await c.query(`DROP DATABASE IF EXISTS ${SEED}`); // not WITH (FORCE): that fails for the app role while autovacuum is in it
    await c.query(`CREATE DATABASE ${SEED}`);
  });
  const { execa } = await import('execa');
  await execa('node', ['app/migrate.js', 'up'], { env: { DATABASE_URL: `postgres://${PG.user}@${PG.host}:${PG.port}/${SEED}`, PGPASSWORD: PG.password } });
  log(`seeding ${SESSIONS} sessions and ${MESSAGES} messages…`);
  await withDb(SEED, async (c) => {
    await c.query(
      `INSERT INTO chat_sessions (user_id, agent_id, title, created_at, updated_at)
       SELECT 'user-' || (g % 9973), 'default', 'session ' || g, now() - interval '400 days',
              CASE WHEN g % 5 < 3 THEN now() - (31 + g % 300) * interval '1 day' - interval '12 hours'
                   ELSE now() - (g % 28) * interval '1 day' - interval '1 hour' END
       FROM generate_series(1, $1::int) g`,
      [SESSIONS],
    );
    // Session by number through an indexed temp table (an array subscript would detoast the whole array per row).
    await c.query(`CREATE TEMP TABLE s AS SELECT row_number() OVER () AS n, id FROM chat_sessions`);
    await c.query(`CREATE UNIQUE INDEX ON s (n)`);
    await c.query('ANALYZE s');
    for (let done = 0; done < MESSAGES; done += 1_000_000) {
      const n = Math.min(1_000_000, MESSAGES - done);
      await c.query(
        `INSERT INTO messages (session_id, role, content, created_at)
         SELECT CASE WHEN g % 10 < 3 THEN gen_random_uuid() ELSE s.id END,
                CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END,
                md5(g::text) || ' message text of a realistic length, more or less ' || g,
                now() - ((g * 31) % 365) * interval '1 day' - interval '6 hours'
         FROM generate_series($1::int, $2::int) g JOIN s ON s.n = 1 + (g::bigint * 7919) % $3::int`,
        [done + 1, done + n, SESSIONS],
      );
      log(`  ${done + n} messages`);
    }
    await c.query('VACUUM ANALYZE');
  });
}

async function copyOf(name: string): Promise<void> {
  await dropDb(name);
  await withDb('llmchat', (c) => c.query(`CREATE DATABASE ${name} TEMPLATE ${SEED}`));
  await withDb(name, (c) => c.query('ANALYZE'));
}

/** The app's writes: one connection, insert a message / update a session title, as fast as it can. */
function writer(database: string) {
  let running = true;
  const lat: number[] = [];
  const done = withDb(database, async (c) => {
    const ids = (await c.query(`SELECT id FROM chat_sessions TABLESAMPLE SYSTEM (2) LIMIT 20000`)).rows.map((r) => r.id as string);
    let i = 0;
    while (running) {
      const id = ids[(i * 7919) % ids.length]!;
      const t0 = performance.now();
      if (i % 2 === 0) await c.query(`INSERT INTO messages (session_id, role, content) VALUES ($1, 'user', 'during the purge')`, [id]);
      else await c.query(`UPDATE chat_sessions SET title = 'touched' WHERE id = $1`, [id]);
      lat.push(performance.now() - t0);
      i++;
    }
  });
  return {
    stop: async () => {
      running = false;
      await done;
      return lat;
    },
  };
}

const max = (xs: number[]) => xs.reduce((m, x) => (x > m ? x : m), -Infinity);
const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? NaN;
};

async function after(database: string) {
  await new Promise((r) => setTimeout(r, 1500)); // stats flush
  return withDb(database, async (c) => {
    const { rows } = await c.query(
      `SELECT relname, pg_total_relation_size(relid) AS bytes, n_dead_tup AS dead, n_live_tup AS live FROM pg_stat_user_tables WHERE relname IN ('messages', 'chat_sessions') ORDER BY relname`,
    );
    return rows.map((r) => `${r.relname} ${(Number(r.bytes) / 2 ** 20).toFixed(0)} MB, dead ${r.dead}, live ${r.live}`).join('; ');
  });
}

async function run(): Promise<void> {
  await seed();
  const ours = `${SEED.replace('_seed', '')}_ours`;
  const guide = `${SEED.replace('_seed', '')}_guide`;
  log('copying the seed twice…');
  await copyOf(ours);
  await copyOf(guide);
  const rows = await withDb(ours, async (c) => (await c.query(`SELECT (SELECT count(*) FROM chat_sessions) + (SELECT count(*) FROM messages) AS n`)).rows[0].n);
  log(`${rows} rows in each copy`);

  // Idle baseline of the writer (on our copy, before the purge).
  let w = writer(ours);
  await new Promise((r) => setTimeout(r, IDLE_MS));
  const idle = await w.stop();

  // Ours: the cut-offs fixed once, as the workflow does.
  const now = Date.now();
  const rules = { sessionCutoff: new Date(now - 30 * 86_400_000).toISOString(), messageCutoff: new Date(now - 90 * 86_400_000).toISOString() };
  log('ours: batched purge with the writer running…');
  w = writer(ours);
  let t0 = performance.now();
  const phaseEnd: Record<string, number> = {};
  const txMs: number[] = [];
  const slow: string[] = [];
  const result = await withDb(ours, (c) => purgeExpired(c, `bench-${now}`, rules, { onBatch: (p) => { phaseEnd[p.phase] = performance.now(); txMs.push(p.lastTransactionMs ?? 0); if ((p.lastTransactionMs ?? 0) > 100) slow.push(`${p.phase} #${p.batches}: ${p.lastTransactionMs} ms`); } }));
  const oursMs = performance.now() - t0;
  const sessionsMs = (phaseEnd.sessions ?? t0) - t0;
  const messagesMs = (phaseEnd.messages ?? t0) - (phaseEnd.sessions ?? t0) - (result.vacuum?.durationMs ?? 0);
  const oursLat = await w.stop();
  const oursDeleted = result.phases.reduce((n, p) => n + p.deleted, 0);
  const oursMaxTx = Math.max(...result.phases.map((p) => p.maxTransactionMs));

  log("guide: the two DELETE statements with the writer running…");
  w = writer(guide);
  t0 = performance.now();
  const stmt: number[] = [];
  let guideDeleted = 0;
  await withDb(guide, async (c) => {
    // With the default work_mem (4 MB) the guide's `NOT IN (SELECT id FROM chat_sessions)` cannot hash the
    // sessions and falls back to a rescan per row, which does not finish on this data. The guide gets its best
    // case instead: enough work_mem for the hashed subplan.
    await c.query(`SET work_mem = '512MB'`);
    let s = performance.now();
    guideDeleted += (await c.query(`DELETE FROM chat_sessions WHERE updated_at < $1::timestamptz`, [rules.sessionCutoff])).rowCount ?? 0;
    stmt.push(performance.now() - s);
    s = performance.now();
    guideDeleted += (await c.query(`DELETE FROM messages WHERE created_at < $1::timestamptz AND session_id NOT IN (SELECT id FROM chat_sessions)`, [rules.messageCutoff])).rowCount ?? 0;
    stmt.push(performance.now() - s);
  });
  const guideMs = performance.now() - t0;
  const guideLat = await w.stop();

  const line = (k: string, a: string, b: string, ratio: string, goal: string) => console.log(`${k.padEnd(34)} ${a.padStart(14)} ${b.padStart(14)} ${ratio.padStart(8)}  ${goal}`);
  console.log('');
  console.log(`weekly purge on ${rows} rows (${SESSIONS} sessions + ${MESSAGES} messages); deleted: ours ${oursDeleted}, guide ${guideDeleted}${oursDeleted === guideDeleted ? ' (equal)' : ' (DIFFERENT!)'}`);
  line('figure', 'ours', 'guide', 'ratio', 'goal');
  const met = (ok: boolean) => (ok ? 'MET' : 'NOT MET');
  line('total purge time', `${(oursMs / 1000).toFixed(1)} s`, `${(guideMs / 1000).toFixed(1)} s`, `${(oursMs / guideMs).toFixed(2)}×`, `≤ 2×: ${met(oursMs <= 2 * guideMs)}`);
  line('longest transaction', `${oursMaxTx.toFixed(0)} ms`, `${Math.max(...stmt).toFixed(0)} ms`, '', `ours ≤ 100 ms: ${met(oursMaxTx <= 100)}`);
  line('  ours: transactions p50 / p99', `${pct(txMs, 50).toFixed(0)} / ${pct(txMs, 99).toFixed(0)} ms`, '', '', `${txMs.filter((t) => t > 100).length} of ${txMs.length} over 100 ms${slow.length ? ` (${slow.join(', ')})` : ''}`);
  line('writer p99 idle', `${pct(idle, 99).toFixed(1)} ms`, '', '', `(${idle.length} statements in ${IDLE_MS / 1000} s)`);
  line('writer p99 during the purge', `${pct(oursLat, 99).toFixed(1)} ms`, `${pct(guideLat, 99).toFixed(1)} ms`, `${(pct(oursLat, 99) / pct(idle, 99)).toFixed(2)}×`, `ours ≤ 2× idle: ${met(pct(oursLat, 99) <= 2 * pct(idle, 99))}; guide ${(pct(guideLat, 99) / pct(idle, 99)).toFixed(1)}× idle`);
  line('writer max during the purge', `${max(oursLat).toFixed(0)} ms`, `${max(guideLat).toFixed(0)} ms`, '', '');
  line('  sessions phase / vacuum / messages', `${(sessionsMs / 1000).toFixed(1)} / ${((result.vacuum?.durationMs ?? 0) / 1000).toFixed(1)} / ${(messagesMs / 1000).toFixed(1)} s`, `${(stmt[0]! / 1000).toFixed(1)} / - / ${(stmt[1]! / 1000).toFixed(1)} s`, '', `vacuum: ${result.vacuum?.result ?? 'none'}`);
  line('batches (sessions + messages)', `${result.phases.map((p) => p.batches).join(' + ')}`, '2 statements', '', '');
  console.log(`after, ours:  ${await after(ours)}`);
  console.log(`after, guide: ${await after(guide)}`);
  console.log(`load average: ${(await import('node:os')).loadavg().map((l) => l.toFixed(2)).join(' ')}`);
  await dropDb(ours);
  await dropDb(guide);
  if (AS_WRITTEN_CAP_S > 0) await asWrittenAndFloor(rules, oursMs, guideMs);
}

/**
 * On a third copy, after the comparison (no writer): (1) where the time of any exact batched purge in key order must
 * go — the messages walked in windows of their primary key (the heap order a short transaction must follow) with one
 * probe of chat_sessions' primary key per old message, read-only, no deletes — and (2) the guide's messages DELETE as
 * the guide writes it, with the server's own work_mem, cancelled after AS_WRITTEN_CAP_S.
 */
async function asWrittenAndFloor(rules: { sessionCutoff: string; messageCutoff: string }, oursMs: number, guideMs: number): Promise<void> {
  const name = `${SEED.replace('_seed', '')}_aswritten`;
  await copyOf(name);
  try {
    await withDb(name, async (c) => {
      const workMem = (await c.query(`SHOW work_mem`)).rows[0].work_mem as string;
      await c.query(`DELETE FROM chat_sessions WHERE updated_at < $1::timestamptz`, [rules.sessionCutoff]);
      await c.query(`VACUUM (ANALYZE) chat_sessions`);
      await c.query(`SET jit = off`);
      await c.query(`SET enable_bitmapscan = off`);
      const maxId = Number((await c.query(`SELECT max(id) AS m FROM messages`)).rows[0].m);
      let probes = 0;
      const t0 = performance.now();
      for (let lo = 0; lo < maxId; lo += 20_000) {
        probes += Number((await c.query(
          `SELECT count(*) AS n FROM messages m WHERE m.id > $1 AND m.id <= $2 AND m.created_at < $3::timestamptz
             AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = m.session_id OFFSET 0)`,
          [lo, lo + 20_000, rules.messageCutoff],
        )).rows[0].n);
      }
      const floorMs = performance.now() - t0;
      console.log(`floor: reading the messages in key windows of 20,000 with a probe per old message, no deletes: ${(floorMs / 1000).toFixed(1)} s ` +
        `(${probes} orphans found) = ${(floorMs / guideMs).toFixed(2)}× the guide's whole purge; ours spent ${(oursMs / 1000).toFixed(1)} s in all`);
      await c.query(`RESET enable_bitmapscan`);
      await c.query(`SET statement_timeout = '${AS_WRITTEN_CAP_S}s'`);
      const s = performance.now();
      try {
        const n = (await c.query(`DELETE FROM messages WHERE created_at < $1::timestamptz AND session_id NOT IN (SELECT id FROM chat_sessions)`, [rules.messageCutoff])).rowCount;
        console.log(`the guide as written (work_mem ${workMem}, the server's): messages DELETE finished in ${((performance.now() - s) / 1000).toFixed(1)} s (${n} rows)`);
      } catch (err) {
        if ((err as { code?: string }).code !== '57014') throw err;
        console.log(`the guide as written (work_mem ${workMem}, the server's): messages DELETE cancelled unfinished after ${AS_WRITTEN_CAP_S} s ` +
          `(its NOT IN list of sessions does not fit work_mem, so it is scanned for every old message); ours, whole purge: ${(oursMs / 1000).toFixed(1)} s`);
      }
    });
  } finally {
    await dropDb(name);
  }
}

/** DROP without FORCE (autovacuum may be in there, and only a superuser may terminate it), retried a few times. */
async function dropDb(name: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      await withDb('llmchat', (c) => c.query(`DROP DATABASE IF EXISTS ${name}`));
      return;
    } catch (err) {
      if (i >= 20) throw err;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
}

run().catch((err) => {
  console.error(err);
  process.exit(1);
});
