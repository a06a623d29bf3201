/**
 * The purge's durable progress (`llmchat_ops.purge_progress`): the table, the rule a run pinned at its start, each
 * phase's committed cursor and counts, and their pruning after 90 days. A batch commits its window's end here in
 * its own transaction, so a retried purge goes on from the last committed window (purge.ts walks the windows).
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
  /** The last committed transaction's duration, BEGIN to COMMIT, in ms (progress reports only). */
  lastTransactionMs?: number;
  /**
   * Batches of this attempt rolled back and tried again smaller: a row the app held past the lock timeout, a deadlock
   * with the app, a serialization failure (a measure of contention; nothing of a rolled-back batch was kept).
   */
  retriedBatches?: number;
}

export const PROGRESS_TABLE = 'llmchat_ops.purge_progress';

export async function ensureProgressTable(client: pg.Client): Promise<void> {
  // Present already (the usual case): nothing to create. CREATE … IF NOT EXISTS would still demand the right to
  // create (on the database, on the schema) and fail for a role that may only use the table.
  if ((await client.query<{ present: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS present`, [PROGRESS_TABLE])).rows[0]?.present) return;
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

/** Rules no workflow sends (a cut-off in the future would purge live sessions; 'infinity' all of them). */
export class PurgeRulesError extends Error {
  override readonly name = 'BadInput';
}

/**
 * A run applies one rule from its first batch to its last: the cut-offs are stored with the run key when the run
 * starts, and a later call of the same run key with other cut-offs (a hand-made activity input, a bug) is refused
 * before it deletes anything, naming both.
 */
export async function pinRules(client: pg.Client, runKey: string, rules: PurgeRules): Promise<void> {
  const wanted = JSON.stringify({ sessionCutoff: rules.sessionCutoff, messageCutoff: rules.messageCutoff });
  await client.query(`INSERT INTO ${PROGRESS_TABLE} (run_key, phase, cursor, done) VALUES ($1, 'rules', $2, true) ON CONFLICT DO NOTHING`, [runKey, wanted]);
  const stored = (await client.query<{ cursor: string | null }>(`SELECT cursor FROM ${PROGRESS_TABLE} WHERE run_key = $1 AND phase = 'rules'`, [runKey])).rows[0]?.cursor ?? null;
  let same = false;
  try {
    const was = JSON.parse(stored ?? 'null') as Partial<PurgeRules> | null;
    if (typeof was?.sessionCutoff === 'string' && typeof was.messageCutoff === 'string') {
      // Compared as the database compares them (to the microsecond), whatever the spelling.
      same = (await client.query<{ same: boolean }>(
        `SELECT $1::timestamptz = $2::timestamptz AND $3::timestamptz = $4::timestamptz AS same`,
        [was.sessionCutoff, rules.sessionCutoff, was.messageCutoff, rules.messageCutoff],
      )).rows[0]!.same;
    }
  } catch (err) {
    // Unreadable (not JSON) or not instants (a data exception, SQLSTATE class 22): a tampered record, refused below.
    // Anything else — the connection lost, the server restarting — is not about the rules: it stays retryable.
    const code = (err as { code?: unknown }).code;
    if (!(err instanceof SyntaxError) && !(typeof code === 'string' && code.startsWith('22'))) throw err;
    same = false;
  }
  if (!same) {
    throw new PurgeRulesError(
      `purge run ${runKey} was started with the cut-offs ${stored ?? '(unreadable)'}; this call asks for ${wanted}. ` +
        `A run applies one rule throughout (start a new run for other cut-offs); nothing was deleted by this call`,
    );
  }
}

/** Two runs creating the schema at once: the loser's "already exists" is fine. */
export function ignoreDuplicate(err: unknown): void {
  const code = (err as { code?: string }).code;
  if (code !== '42P06' && code !== '42P07' && code !== '23505') throw err;
}

export interface ProgressRow {
  cursor: string | null;
  upper_bound: string | null;
  examined: string;
  deleted: string;
  batches: number;
  max_tx_ms: number;
  done: boolean;
}

export async function loadOrStartPhase(client: pg.Client, runKey: string, phase: PurgePhase): Promise<ProgressRow> {
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

export function toProgress(phase: PurgePhase, row: ProgressRow): PhaseProgress {
  return {
    phase,
    examined: Number(row.examined),
    deleted: Number(row.deleted),
    batches: row.batches,
    maxTransactionMs: Math.round(row.max_tx_ms * 10) / 10,
    done: row.done,
  };
}

/** Progress of older runs is kept 90 days for audit, then dropped. */
export async function pruneProgress(client: pg.Client): Promise<number> {
  await ensureProgressTable(client);
  const { rowCount } = await client.query(`DELETE FROM ${PROGRESS_TABLE} WHERE updated_at < now() - interval '90 days'`);
  return rowCount ?? 0;
}
