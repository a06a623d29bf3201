/**
 * The guide's weekly purge, in short transactions. The guide runs
 *
 *   DELETE FROM chat_sessions WHERE updated_at < NOW() - INTERVAL '30 days';
 *   DELETE FROM messages WHERE created_at < NOW() - INTERVAL '90 days'
 *     AND session_id NOT IN (SELECT id FROM chat_sessions);
 *
 * as two statements: one long transaction per table that holds row locks on millions of rows and bloats them.
 * Here each phase walks its table in primary-key order in windows of N rows; one transaction deletes the rows of
 * one window that match the guide's predicate (re-checked at delete time, so a session the app touches meanwhile
 * survives) and, in the same transaction, records the window's end and the count in `llmchat_ops.purge_progress`.
 * A crash therefore loses nothing and repeats nothing: the next attempt reads the committed cursor and counts and
 * goes on from there. The window size adapts so one transaction takes about `targetMs`.
 *
 * Sessions go first, then messages, exactly in the guide's order: messages of sessions purged in phase 1 that are
 * older than the message window become orphans and go in phase 2. The cut-offs are fixed once per run (passed in),
 * so every batch of a run — and every retry of it — applies the same rule. Messages inserted after the messages
 * phase started (ids above its recorded upper bound) are new and not the guide's to purge.
 */
import pg from 'pg';
import {
  ensureProgressTable,
  loadOrStartPhase,
  pinRules,
  PROGRESS_TABLE,
  PurgeRulesError,
  toProgress,
  type PhaseProgress,
  type ProgressRow,
  type PurgePhase,
  type PurgeRules,
} from './purge-progress.js';

export { ensureProgressTable, PROGRESS_TABLE, pruneProgress, PurgeRulesError } from './purge-progress.js';
export type { PhaseProgress, PurgePhase, PurgeRules } from './purge-progress.js';

export interface PurgeOptions {
  /** Target duration of one transaction (default 40 ms: the tail of a loaded machine stays under 100 ms). */
  targetMs?: number;
  /** Rows examined by the first window (default 2000). */
  initialRows?: number;
  /** Called after every committed batch (heartbeats). */
  onBatch?: (progress: PhaseProgress) => void;
  /** Stops between batches; the committed work stays and a later call resumes it. */
  signal?: AbortSignal;
  /**
   * How long one batch waits for a row the app holds before it rolls back and tries a smaller window (default 500 ms).
   * Rows the batch already deleted stay locked while it waits, so this also bounds how long the app can wait on the
   * purge. Below PostgreSQL's deadlock_timeout (1 s by default), a deadlock with the app ends as our lock timeout.
   */
  lockTimeoutMs?: number;
  /**
   * How long the VACUUM between the phases waits for its lock before it is left to autovacuum (default 5 s; the
   * activity passes maintenance.lockTimeout, so it never queues the app's statements behind it for longer).
   */
  vacuumLockTimeoutMs?: number;
}

export interface VacuumOutcome {
  table: 'chat_sessions';
  /** 'done', or why it was left to autovacuum (the purge goes on either way). */
  result: 'done' | 'already done by this run' | `skipped: ${string}`;
  durationMs: number;
}

export interface PurgeResult {
  runKey: string;
  rules: PurgeRules;
  phases: PhaseProgress[];
  /** VACUUM of chat_sessions between the phases (when the sessions phase deleted rows). */
  vacuum?: VacuumOutcome;
}

const MIN_ROWS = 100;
const MAX_ROWS = 100_000;
/** A purge batch never waits long for a row the app holds: it gives up, backs off and tries a smaller window. */
const DEFAULT_LOCK_TIMEOUT_MS = 500;
const MAX_LOCK_RETRIES = 30;
/** What rolls a batch back and tries it again smaller: lock timeout, deadlock, serialization failure. */
const RETRIED: Record<string, string> = { '55P03': 'lock timeout', '40P01': 'deadlock', '40001': 'serialization failure' };

const ISO_UTC = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,6})?Z$/;

/** Both cut-offs must be ISO 8601 UTC instants not later than the database's now(): refused before anything else runs. */
async function checkRules(client: pg.Client, rules: PurgeRules): Promise<void> {
  for (const [name, value] of Object.entries({ sessionCutoff: rules?.sessionCutoff, messageCutoff: rules?.messageCutoff })) {
    if (typeof value !== 'string' || !ISO_UTC.test(value) || Number.isNaN(Date.parse(value))) {
      throw new PurgeRulesError(`purge ${name} must be an ISO 8601 UTC instant (…Z), got ${JSON.stringify(value)}; nothing was deleted`);
    }
  }
  let row: { s_future: boolean; m_future: boolean; now: string };
  try {
    row = (await client.query(`SELECT $1::timestamptz > now() AS s_future, $2::timestamptz > now() AS m_future, now()::text AS now`, [rules.sessionCutoff, rules.messageCutoff])).rows[0];
  } catch (err) {
    const code = (err as { code?: string }).code;
    if (code === '22007' || code === '22008') throw new PurgeRulesError(`purge cut-offs ${JSON.stringify(rules)} are not valid instants (${(err as Error).message}); nothing was deleted`);
    throw err;
  }
  if (row.s_future || row.m_future) {
    throw new PurgeRulesError(`purge cut-offs must not be later than the database's now() (${row.now}), got ${JSON.stringify(rules)}: that would purge live rows; nothing was deleted`);
  }
}

// One window of each walk, in two statements of the batch's transaction: an index-only scan of the primary key
// finds where the window of N rows ends, then the key range is deleted where the guide's rule still holds at delete
// time (a session the app touches meanwhile survives). Key ranges, never ctids: a row the app updates meanwhile keeps
// its key but gets a new ctid, and a ctid walk could pass it by (the benchmark's concurrent writer caught a ctid join
// skipping rows once). And never a join of a window list back to its table: measured on 6 M rows, the planner turns
// that into a hash join over the whole table once the window grows (300–500 ms a batch: the old long transactions).
// The window's end is a constant in the DELETE, so the planner sees the real range and keeps to the index.
// A NULL cursor (the phase's first window) folds away when the statement is planned with its parameters.
const WINDOW = {
  // (uuid has no max(): the window's last key is its last row.)
  sessions: `WITH w AS MATERIALIZED (SELECT id FROM chat_sessions WHERE $1::uuid IS NULL OR id > $1::uuid ORDER BY id LIMIT $2)
             SELECT (SELECT id::text FROM w ORDER BY id DESC LIMIT 1) AS hi, (SELECT count(*) FROM w)::int AS n`,
  // Messages inserted after the phase started (keys above its recorded bound) are new and not the guide's to purge.
  messages: `SELECT max(id)::text AS hi, count(*)::int AS n
               FROM (SELECT id FROM messages WHERE ($1::bigint IS NULL OR id > $1::bigint) AND id <= $3::bigint ORDER BY id LIMIT $2) x`,
};
const DELETE = {
  sessions: `DELETE FROM chat_sessions WHERE ($1::uuid IS NULL OR id > $1::uuid) AND id <= $2::uuid AND updated_at < $3::timestamptz`,
  // The orphan test probes chat_sessions' primary key once per old message (cost linear in the window, so the window
  // adapts smoothly). It is a subplan run per row, not an anti-join (OFFSET 0 keeps the planner from pulling it up):
  // when the app changes a message's session_id while this DELETE waits for the row, PostgreSQL re-checks the new
  // row version, and only a subplan probes again for the new session — an anti-join re-uses its first answer and
  // would delete a message that by then belongs to a live session (the guide's NOT IN keeps it). Bitmap scans are off
  // for the batch: the planner would otherwise AND the key range with idx_messages_created_at, reading that index's
  // entries for all old messages in every transaction.
  messages: `DELETE FROM messages m WHERE ($1::bigint IS NULL OR m.id > $1::bigint) AND m.id <= $2::bigint AND m.created_at < $3::timestamptz
               AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = m.session_id OFFSET 0)`,
};

interface BatchRow {
  last: string | null;
  examined: number;
  deleted: number;
}

async function runBatch(client: pg.Client, phase: PurgePhase, row: ProgressRow, rules: PurgeRules, rows: number): Promise<BatchRow> {
  // No messages at all when the phase started: nothing to walk.
  if (phase === 'messages' && row.upper_bound === null) return { last: null, examined: 0, deleted: 0 };
  const windowParams = phase === 'sessions' ? [row.cursor, rows] : [row.cursor, rows, row.upper_bound];
  const { hi, n } = (await client.query<{ hi: string | null; n: number }>(WINDOW[phase], windowParams)).rows[0]!;
  if (n === 0 || hi === null) return { last: null, examined: 0, deleted: 0 };
  if (phase === 'messages') await client.query(`SET LOCAL enable_bitmapscan = off`);
  const cutoff = phase === 'sessions' ? rules.sessionCutoff : rules.messageCutoff;
  const res = await client.query(DELETE[phase], [row.cursor, hi, cutoff]);
  return { last: hi, examined: n, deleted: res.rowCount ?? 0 };
}

/**
 * Runs (or resumes) the purge of `runKey` on one connection. Idempotent: calling it again after it finished
 * returns the recorded result without deleting anything.
 */
export async function purgeExpired(client: pg.Client, runKey: string, rules: PurgeRules, opts: PurgeOptions = {}): Promise<PurgeResult> {
  const targetMs = opts.targetMs ?? 40;
  const lockTimeoutMs = opts.lockTimeoutMs ?? DEFAULT_LOCK_TIMEOUT_MS;
  if (!Number.isInteger(lockTimeoutMs) || lockTimeoutMs < 1 || lockTimeoutMs > 60_000) throw new PurgeRulesError(`purge lockTimeoutMs must be an integer 1–60000, got ${lockTimeoutMs}`);
  await checkRules(client, rules);
  await ensureProgressTable(client);
  await pinRules(client, runKey, rules);
  // Each batch commits its deletes and its progress row together, so losing the last commits in a server crash
  // loses both alike and the resume stays exact: no need to wait for the WAL flush of every batch.
  await client.query(`SET synchronous_commit = off`);
  // A window whose estimated cost crosses jit_above_cost (from ~25 k messages on) would be compiled by LLVM first:
  // 10–30 ms more for that one transaction, measured, and nothing gained for statements this short.
  await client.query(`SET jit = off`);
  const phases: PhaseProgress[] = [];
  let vacuum: VacuumOutcome | undefined;
  for (const phase of ['sessions', 'messages'] as const) {
    let row = await loadOrStartPhase(client, runKey, phase);
    const resumedAtBatch = row.batches > 0 && !row.done ? row.batches : undefined;
    let rows = opts.initialRows ?? 2000;
    let lockFailures = 0;
    let retriedBatches = 0;
    let costPerRow: number | undefined;
    while (!row.done) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('purge cancelled');
      const t0 = performance.now();
      let batch: BatchRow;
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = '${lockTimeoutMs}ms'`);
        // The committed cursor, locked for this batch: another attempt of the same run still at work (a worker
        // that lost its heartbeat but not its connection) then takes turns with this one on one cursor, and neither
        // walks a window twice, moves the cursor back or undoes a finished phase.
        const current = (await client.query<ProgressRow>(
          `SELECT cursor, upper_bound, examined, deleted, batches, max_tx_ms, done FROM ${PROGRESS_TABLE} WHERE run_key = $1 AND phase = $2 FOR UPDATE`,
          [runKey, phase],
        )).rows[0]!;
        if (current.done) {
          await client.query('COMMIT');
          row = { ...current, max_tx_ms: Math.max(current.max_tx_ms, row.max_tx_ms) };
          break;
        }
        batch = await runBatch(client, phase, current, rules, rows);
        const done = batch.examined < rows;
        const { rows: updated } = await client.query<ProgressRow>(
          `UPDATE ${PROGRESS_TABLE} SET cursor = coalesce($3, cursor), examined = examined + $4, deleted = deleted + $5,
             batches = batches + 1, done = $6, updated_at = now(), max_tx_ms = greatest(max_tx_ms, $7)
           WHERE run_key = $1 AND phase = $2
           RETURNING cursor, upper_bound, examined, deleted, batches, max_tx_ms, done`,
          // The duration written here is up to the UPDATE; the COMMIT's share is added to the in-memory max below.
          [runKey, phase, batch.last, batch.examined, batch.deleted, done, performance.now() - t0],
        );
        await client.query('COMMIT');
        row = updated[0]!;
      } catch (err) {
        await client.query('ROLLBACK').catch(() => {});
        const code = (err as { code?: string }).code ?? '';
        const why = RETRIED[code];
        if (why) {
          retriedBatches++;
          if (++lockFailures <= MAX_LOCK_RETRIES) {
            // A row of this window is held by the app (or the app and this batch waited on each other): let it
            // finish, then try a smaller window. Nothing of the rolled-back batch was kept.
            rows = Math.max(MIN_ROWS, Math.floor(rows / 2));
            await new Promise((r) => setTimeout(r, 200));
            continue;
          }
          throw Object.assign(
            new Error(
              `purge ${phase} phase: gave up after ${MAX_LOCK_RETRIES} ${why}s in a row (lock timeout ${lockTimeoutMs} ms) on a row after key ${row.cursor ?? '(the start)'} ` +
                `held by another transaction; the ${row.batches} committed batches stay and a retry resumes after them (${(err as Error).message})`,
              { cause: err },
            ),
            { code },
          );
        }
        throw err;
      }
      const elapsed = performance.now() - t0;
      if (elapsed > row.max_tx_ms) row.max_tx_ms = elapsed;
      lockFailures = 0;
      // The window follows the cost per row: at once when a batch was dearer than expected (autovacuum starting on the
      // table, a checkpoint, the app's burst: the benchmark's slow transactions came in pairs while the window was
      // smoothed), slowly when it was cheaper, so one quick batch does not double it into a long transaction; it
      // grows by at most a half per batch.
      const perRow = Math.max(elapsed, 1) / Math.max(batch.examined, 1);
      costPerRow = costPerRow === undefined || perRow > costPerRow ? perRow : 0.7 * costPerRow + 0.3 * perRow;
      const next = targetMs / costPerRow;
      rows = Math.min(MAX_ROWS, Math.max(MIN_ROWS, Math.round(Math.min(next, rows * 1.5))));
      opts.onBatch?.({ ...toProgress(phase, row), ...(resumedAtBatch ? { resumedAtBatch } : {}), retriedBatches, lastTransactionMs: Math.round(elapsed * 10) / 10 });
    }
    // Keep the measured maximum including COMMIT time for the report (best effort: a crash right here only loses
    // the COMMIT share of one batch's duration, never counts).
    await client.query(`UPDATE ${PROGRESS_TABLE} SET max_tx_ms = greatest(max_tx_ms, $3) WHERE run_key = $1 AND phase = $2`, [runKey, phase, row.max_tx_ms]);
    phases.push({ ...toProgress(phase, row), ...(resumedAtBatch ? { resumedAtBatch } : {}), retriedBatches });
    if (phase === 'sessions' && Number(row.deleted) > 0) vacuum = await vacuumSessions(client, runKey, opts.vacuumLockTimeoutMs);
  }
  return { runKey, rules, phases, ...(vacuum ? { vacuum } : {}) };
}

/**
 * Between the phases: VACUUM chat_sessions, so that the messages phase's orphan probes are index-only scans of an
 * index without the purged sessions' entries (measured on 1 M sessions: 600 k purged; each probe otherwise visits the
 * heap and finds a dead row). VACUUM takes no row locks and blocks no reads or writes of the app; TRUNCATE false keeps
 * it from taking the exclusive lock that shortening the file would need. If another maintenance command holds the
 * table (lock wait over maintenance.lockTimeout; 5 s when called directly), it is left to autovacuum and the purge goes on. Done once per run: a resumed run that
 * already vacuumed (recorded in the progress table) does not again.
 */
async function vacuumSessions(client: pg.Client, runKey: string, lockTimeoutMs = 5000): Promise<VacuumOutcome> {
  const t0 = performance.now();
  const { rowCount } = await client.query(`SELECT 1 FROM ${PROGRESS_TABLE} WHERE run_key = $1 AND phase = 'vacuum:chat_sessions'`, [runKey]);
  if (rowCount) return { table: 'chat_sessions', result: 'already done by this run', durationMs: 0 };
  // VACUUM by a role that may not vacuum the table does not fail: it prints a WARNING and does nothing. Ask first.
  const { rows: may } = await client.query<{ may: boolean; who: string }>(
    `SELECT CASE WHEN current_setting('server_version_num')::int >= 170000 THEN has_table_privilege(c.oid, 'MAINTAIN')
                 ELSE pg_has_role(current_user, c.relowner, 'USAGE') OR pg_has_role(current_user, d.datdba, 'USAGE') END AS may,
            current_user::text AS who
       FROM pg_class c, pg_database d WHERE c.oid = 'chat_sessions'::regclass AND d.datname = current_database()`,
  );
  if (!may[0]?.may) {
    return { table: 'chat_sessions', result: `skipped: role ${may[0]?.who ?? '?'} neither owns chat_sessions nor may maintain it (VACUUM would only warn and do nothing)`, durationMs: Math.round(performance.now() - t0) };
  }
  try {
    await client.query(`SET lock_timeout = ${Math.max(1, Math.floor(lockTimeoutMs))}`);
    await client.query(`VACUUM (ANALYZE, TRUNCATE false) chat_sessions`);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    if (e.code !== '55P03' && e.code !== '42501') throw err;
    return { table: 'chat_sessions', result: `skipped: ${e.message ?? e.code}`, durationMs: Math.round(performance.now() - t0) };
  } finally {
    await client.query(`RESET lock_timeout`).catch(() => {});
  }
  await client.query(`INSERT INTO ${PROGRESS_TABLE} (run_key, phase, done) VALUES ($1, 'vacuum:chat_sessions', true) ON CONFLICT DO NOTHING`, [runKey]);
  return { table: 'chat_sessions', result: 'done', durationMs: Math.round(performance.now() - t0) };
}

