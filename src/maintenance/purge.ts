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

export type PurgePhase = 'sessions' | 'messages';

export interface PurgeRules {
  /** Sessions with updated_at before this instant go (ISO 8601). */
  sessionCutoff: string;
  /** Messages created before this instant go, if their session no longer exists (ISO 8601). */
  messageCutoff: string;
}

export interface PhaseProgress {
  phase: PurgePhase;
  /** Rows looked at (windows walked). */
  examined: number;
  deleted: number;
  batches: number;
  /** Longest single purge transaction, BEGIN to COMMIT, in ms (across attempts). */
  maxTransactionMs: number;
  done: boolean;
  /** Batches that were already committed when this attempt started (a resumed run). */
  resumedAtBatch?: number;
}

export interface PurgeOptions {
  /** Target duration of one transaction (default 50 ms). */
  targetMs?: number;
  /** Rows examined by the first window (default 2000). */
  initialRows?: number;
  /** Called after every committed batch (heartbeats). */
  onBatch?: (progress: PhaseProgress) => void;
  /** Stops between batches; the committed work stays and a later call resumes it. */
  signal?: AbortSignal;
}

export interface PurgeResult {
  runKey: string;
  rules: PurgeRules;
  phases: PhaseProgress[];
}

const MIN_ROWS = 100;
const MAX_ROWS = 100_000;
/** A purge batch never waits long for a row the app holds: it gives up, backs off and tries a smaller window. */
const LOCK_TIMEOUT = '1s';
const MAX_LOCK_RETRIES = 30;

export const PROGRESS_TABLE = 'llmchat_ops.purge_progress';

export async function ensureProgressTable(client: pg.Client): Promise<void> {
  await client.query(`CREATE SCHEMA IF NOT EXISTS llmchat_ops`).catch(ignoreDuplicate);
  await client
    .query(
      `CREATE TABLE IF NOT EXISTS ${PROGRESS_TABLE} (
        run_key     text NOT NULL,
        phase       text NOT NULL,
        cursor      text,
        upper_bound text,
        examined    bigint NOT NULL DEFAULT 0,
        deleted     bigint NOT NULL DEFAULT 0,
        batches     integer NOT NULL DEFAULT 0,
        max_tx_ms   real NOT NULL DEFAULT 0,
        done        boolean NOT NULL DEFAULT false,
        started_at  timestamptz NOT NULL DEFAULT now(),
        updated_at  timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (run_key, phase))`,
    )
    .catch(ignoreDuplicate);
}

/** Two runs creating the schema at once: the loser's "already exists" is fine. */
function ignoreDuplicate(err: unknown): void {
  const code = (err as { code?: string }).code;
  if (code !== '42P06' && code !== '42P07' && code !== '23505') throw err;
}

interface ProgressRow {
  cursor: string | null;
  upper_bound: string | null;
  examined: string;
  deleted: string;
  batches: number;
  max_tx_ms: number;
  done: boolean;
}

async function loadOrStartPhase(client: pg.Client, runKey: string, phase: PurgePhase): Promise<ProgressRow> {
  // The messages phase fixes its upper bound when it starts (after the sessions phase), once, in the row itself.
  const upper = phase === 'messages' ? `(SELECT max(id)::text FROM messages)` : 'NULL';
  await client.query(
    `INSERT INTO ${PROGRESS_TABLE} (run_key, phase, upper_bound) VALUES ($1, $2, ${upper}) ON CONFLICT DO NOTHING`,
    [runKey, phase],
  );
  const { rows } = await client.query<ProgressRow>(
    `SELECT cursor, upper_bound, examined, deleted, batches, max_tx_ms, done FROM ${PROGRESS_TABLE} WHERE run_key = $1 AND phase = $2`,
    [runKey, phase],
  );
  return rows[0]!;
}

// One window of the walk. `after` is the last key of the previous window (NULL: from the start). The delete joins
// the window by primary key, never by ctid: a row the app updates meanwhile gets a new ctid, and PostgreSQL's
// recheck of the newest row version would then drop it from a ctid join — silently skipping a row the guide's
// rule selects (the benchmark's concurrent writer caught exactly that).
const SESSION_BATCH = `
  WITH w AS (SELECT id FROM chat_sessions WHERE $1::uuid IS NULL OR id > $1::uuid ORDER BY id LIMIT $2),
       d AS (DELETE FROM chat_sessions s USING w WHERE s.id = w.id AND s.updated_at < $3::timestamptz RETURNING 1)
  SELECT (SELECT id::text FROM w ORDER BY id DESC LIMIT 1) AS last, (SELECT count(*) FROM w)::int AS examined,
         (SELECT count(*) FROM d)::int AS deleted`;
const SESSION_BATCH_FIRST = SESSION_BATCH.replace('$1::uuid IS NULL OR id > $1::uuid', '$1::uuid IS NULL');

const MESSAGE_BATCH = `
  WITH w AS (SELECT id FROM messages WHERE id > $1::bigint AND id <= $4::bigint ORDER BY id LIMIT $2),
       d AS (DELETE FROM messages m USING w WHERE m.id = w.id AND m.created_at < $3::timestamptz
               AND NOT EXISTS (SELECT 1 FROM chat_sessions s WHERE s.id = m.session_id) RETURNING 1)
  SELECT (SELECT max(id)::text FROM w) AS last, (SELECT count(*) FROM w)::int AS examined,
         (SELECT count(*) FROM d)::int AS deleted`;

interface BatchRow {
  last: string | null;
  examined: number;
  deleted: number;
}

function runBatch(client: pg.Client, phase: PurgePhase, row: ProgressRow, rules: PurgeRules, rows: number) {
  if (phase === 'sessions') {
    return client.query<BatchRow>(row.cursor === null ? SESSION_BATCH_FIRST : SESSION_BATCH, [row.cursor, rows, rules.sessionCutoff]);
  }
  // No messages at all when the phase started: nothing to walk.
  const upper = row.upper_bound ?? '-9223372036854775808';
  return client.query<BatchRow>(MESSAGE_BATCH, [row.cursor ?? '-9223372036854775808', rows, rules.messageCutoff, upper]);
}

function toProgress(phase: PurgePhase, row: ProgressRow): PhaseProgress {
  return {
    phase,
    examined: Number(row.examined),
    deleted: Number(row.deleted),
    batches: row.batches,
    maxTransactionMs: Math.round(row.max_tx_ms * 10) / 10,
    done: row.done,
  };
}

/**
 * Runs (or resumes) the purge of `runKey` on one connection. Idempotent: calling it again after it finished
 * returns the recorded result without deleting anything.
 */
export async function purgeExpired(client: pg.Client, runKey: string, rules: PurgeRules, opts: PurgeOptions = {}): Promise<PurgeResult> {
  const targetMs = opts.targetMs ?? 50;
  await ensureProgressTable(client);
  // Each batch commits its deletes and its progress row together, so losing the last commits in a server crash
  // loses both alike and the resume stays exact: no need to wait for the WAL flush of every batch.
  await client.query(`SET synchronous_commit = off`);
  const phases: PhaseProgress[] = [];
  for (const phase of ['sessions', 'messages'] as const) {
    let row = await loadOrStartPhase(client, runKey, phase);
    const resumedAtBatch = row.batches > 0 && !row.done ? row.batches : undefined;
    let rows = opts.initialRows ?? 2000;
    let lockFailures = 0;
    while (!row.done) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('purge cancelled');
      const t0 = performance.now();
      let batch: BatchRow;
      try {
        await client.query('BEGIN');
        await client.query(`SET LOCAL lock_timeout = '${LOCK_TIMEOUT}'`);
        batch = (await runBatch(client, phase, row, rules, rows)).rows[0]!;
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
        if ((err as { code?: string }).code === '55P03' && ++lockFailures <= MAX_LOCK_RETRIES) {
          // A row of this window is locked by the app: let it finish, then try a smaller window.
          rows = Math.max(MIN_ROWS, Math.floor(rows / 2));
          await new Promise((r) => setTimeout(r, 200));
          continue;
        }
        throw err;
      }
      const elapsed = performance.now() - t0;
      if (elapsed > row.max_tx_ms) row.max_tx_ms = elapsed;
      lockFailures = 0;
      const factor = Math.min(2, Math.max(0.5, targetMs / Math.max(elapsed, 1)));
      rows = Math.min(MAX_ROWS, Math.max(MIN_ROWS, Math.round(rows * factor)));
      opts.onBatch?.({ ...toProgress(phase, row), ...(resumedAtBatch ? { resumedAtBatch } : {}) });
    }
    // Keep the measured maximum including COMMIT time for the report (best effort: a crash right here only loses
    // the COMMIT share of one batch's duration, never counts).
    await client.query(`UPDATE ${PROGRESS_TABLE} SET max_tx_ms = greatest(max_tx_ms, $3) WHERE run_key = $1 AND phase = $2`, [runKey, phase, row.max_tx_ms]);
    phases.push({ ...toProgress(phase, row), ...(resumedAtBatch ? { resumedAtBatch } : {}) });
  }
  return { runKey, rules, phases };
}

/** Progress of older runs is kept 90 days for audit, then dropped. */
export async function pruneProgress(client: pg.Client): Promise<number> {
  await ensureProgressTable(client);
  const { rowCount } = await client.query(`DELETE FROM ${PROGRESS_TABLE} WHERE updated_at < now() - interval '90 days'`);
  return rowCount ?? 0;
}
