/**
 * Index work that never blocks the app's writes: REINDEX / CREATE INDEX CONCURRENTLY, with the clean-up the
 * concurrent forms need. An interrupted `REINDEX INDEX CONCURRENTLY x` leaves an invalid `x_ccnew` (or, late in
 * the swap, `x_ccold`) that PostgreSQL still maintains on every write and never uses; an interrupted
 * `CREATE INDEX CONCURRENTLY x` leaves an invalid `x` that `IF NOT EXISTS` would happily keep forever.
 */
import pg from 'pg';

const ident = (name: string) => pg.escapeIdentifier(name);

export interface IndexState {
  name: string;
  table: string;
  valid: boolean;
  bytes: number;
}

async function indexStates(c: pg.Client, where: string, params: unknown[]): Promise<IndexState[]> {
  const { rows } = await c.query<{ name: string; table: string; valid: boolean; bytes: string }>(
    `SELECT ic.relname AS name, tc.relname AS table, i.indisvalid AS valid, pg_relation_size(ic.oid) AS bytes
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid
     JOIN pg_namespace n ON n.oid = ic.relnamespace
     WHERE n.nspname = 'public' AND ${where} ORDER BY ic.relname`,
    params,
  );
  return rows.map((r) => ({ name: r.name, table: r.table, valid: r.valid, bytes: Number(r.bytes) }));
}

/** Schemas of user objects (not the catalogs, not TOAST, not temporary schemas). */
const USER_SCHEMAS = `n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_(toast|temp)'`;
const LEFTOVER = /_cc(new|old)[0-9]*$/;

export interface InvalidIndex {
  /** The index, schema-qualified unless in public. */
  name: string;
  table: string;
  bytes: number;
  action: 'dropped' | 'reported' | 'in-progress';
  why: string;
}

export interface LeftoverCleanup {
  /** The `_ccnew`/`_ccold` leftovers dropped. */
  removed: string[];
  /** Every invalid index found, whatever its name, and what was done with it. */
  invalid: InvalidIndex[];
}

/**
 * Finds every invalid index of the user's schemas. Those named `<index>_ccnew[N]` / `<index>_ccold[N]` are what an
 * interrupted REINDEX CONCURRENTLY leaves — never used, yet maintained on every write — and are dropped
 * concurrently, whichever index they belong to. Any other invalid index (an interrupted CREATE INDEX
 * CONCURRENTLY) is reported: the optimization rebuilds its own, others are the owner's to drop or build again.
 * An index whose table has a build in progress right now is left alone (it is invalid because it is being built).
 * `drop` runs each DROP (with the caller's lock-timeout retry).
 */
export async function dropInvalidLeftovers(c: pg.Client, drop: (qualified: string, name: string) => Promise<void> = async (q) => void (await c.query(`DROP INDEX CONCURRENTLY IF EXISTS ${q}`))): Promise<LeftoverCleanup> {
  const { rows } = await c.query<{ schema: string; name: string; table: string; bytes: string; building: number | null }>(
    `SELECT n.nspname AS schema, ic.relname AS name, tc.relname AS table, pg_relation_size(ic.oid) AS bytes,
            (SELECT p.pid FROM pg_stat_progress_create_index p WHERE p.relid = i.indrelid AND p.pid <> pg_backend_pid() LIMIT 1) AS building
     FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_class tc ON tc.oid = i.indrelid
     JOIN pg_namespace n ON n.oid = ic.relnamespace
     WHERE NOT i.indisvalid AND ${USER_SCHEMAS} ORDER BY n.nspname, ic.relname`,
  );
  const out: LeftoverCleanup = { removed: [], invalid: [] };
  for (const r of rows) {
    const name = r.schema === 'public' ? r.name : `${r.schema}.${r.name}`;
    const base = { name, table: r.table, bytes: Number(r.bytes) };
    if (r.building !== null) {
      out.invalid.push({ ...base, action: 'in-progress', why: `an index build on ${r.table} is running now (pid ${r.building}): left alone` });
    } else if (LEFTOVER.test(r.name)) {
      await drop(`${ident(r.schema)}.${ident(r.name)}`, name);
      out.removed.push(name);
      out.invalid.push({ ...base, action: 'dropped', why: `left by an interrupted REINDEX CONCURRENTLY of ${r.name.replace(LEFTOVER, '')}: dropped` });
    } else {
      out.invalid.push({ ...base, action: 'reported', why: `left by an interrupted CREATE INDEX CONCURRENTLY: not used by queries, still maintained on every write; drop it or build it again` });
    }
  }
  return out;
}

export interface ReindexResult {
  name: string;
  status: 'rebuilt' | 'missing';
  bytesBefore?: number;
  bytesAfter?: number;
  durationMs?: number;
  /** Times the reindex gave up on a lock (maintenance.lockTimeout) and was tried again. */
  lockRetries?: number;
}

export interface ReindexOutcome {
  removedLeftovers: string[];
  /** Every invalid index found before the reindex, and what was done with it. */
  invalidIndexes?: InvalidIndex[];
  indexes: ReindexResult[];
}

/** How each index statement runs: `run(what, attempt, cleanUp)` retries it on lock timeouts. */
export type LockRunner = <T>(what: string, attempt: () => Promise<T>, cleanUp?: () => Promise<void>) => Promise<{ value: T; retries: number }>;
const once: LockRunner = async (_what, attempt) => ({ value: await attempt(), retries: 0 });

/** Drops the invalid `_ccnew`/`_ccold` leftovers of one index (what a REINDEX that timed out leaves behind). */
async function dropOwnLeftovers(c: pg.Client, name: string): Promise<void> {
  const { rows } = await c.query<{ name: string }>(
    `SELECT ic.relname AS name FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_namespace n ON n.oid = ic.relnamespace
     WHERE n.nspname = 'public' AND NOT i.indisvalid AND ic.relname ~ ('^' || $1 || '_cc(new|old)[0-9]*$')`,
    [name.replace(/[^\w]/g, '')],
  );
  for (const r of rows) await c.query(`DROP INDEX CONCURRENTLY IF EXISTS public.${ident(r.name)}`);
}

export async function reindexConcurrently(c: pg.Client, indexNames: readonly string[], onIndex?: (name: string) => void, run: LockRunner = once): Promise<ReindexResult[]> {
  const results: ReindexResult[] = [];
  for (const name of indexNames) {
    onIndex?.(name);
    const [before] = await indexStates(c, 'ic.relname = $1', [name]);
    if (!before) {
      results.push({ name, status: 'missing' });
      continue;
    }
    const t0 = Date.now();
    // Each try first drops what an earlier try that timed out left (its invalid _ccnew): if that drop times out
    // too, the whole try is retried — a successful try leaves no leftover behind.
    const { retries } = await run(`REINDEX INDEX CONCURRENTLY ${name}`, async () => {
      await dropOwnLeftovers(c, name);
      await c.query(`REINDEX INDEX CONCURRENTLY public.${ident(name)}`);
    });
    const [after] = await indexStates(c, 'ic.relname = $1', [name]);
    results.push({ name, status: 'rebuilt', bytesBefore: before.bytes, bytesAfter: after?.bytes ?? 0, durationMs: Date.now() - t0, ...(retries ? { lockRetries: retries } : {}) });
  }
  return results;
}

export interface IndexSpec {
  name: string;
  table: string;
  columns: string[];
}

export interface IndexCreation {
  name: string;
  status: 'created' | 'exists' | 'recreated-invalid' | 'table-missing';
  durationMs: number;
  /** Times the build gave up on a lock (maintenance.lockTimeout) and was tried again. */
  lockRetries?: number;
}

/** CREATE INDEX CONCURRENTLY IF NOT EXISTS for each spec; an invalid index of that name is dropped first. */
export async function createIndexes(c: pg.Client, specs: readonly IndexSpec[], run: LockRunner = once): Promise<IndexCreation[]> {
  const out: IndexCreation[] = [];
  for (const s of specs) {
    const t0 = Date.now();
    const table = await c.query(`SELECT to_regclass($1) AS t`, [`public.${ident(s.table)}`]);
    if (table.rows[0].t === null) {
      out.push({ name: s.name, status: 'table-missing', durationMs: 0 });
      continue;
    }
    const [existing] = await indexStates(c, 'ic.relname = $1', [s.name]);
    const status: IndexCreation['status'] = !existing ? 'created' : existing.valid ? 'exists' : 'recreated-invalid';
    // A build that timed out on a lock leaves an invalid index of that name: each try drops it first.
    const { retries } = await run(`CREATE INDEX CONCURRENTLY ${s.name}`, async () => {
      const [now] = await indexStates(c, 'ic.relname = $1', [s.name]);
      if (now && !now.valid) await c.query(`DROP INDEX CONCURRENTLY IF EXISTS public.${ident(s.name)}`);
      await c.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${ident(s.name)} ON public.${ident(s.table)} (${s.columns.map(ident).join(', ')})`);
    });
    out.push({ name: s.name, status, durationMs: Date.now() - t0, ...(retries ? { lockRetries: retries } : {}) });
  }
  return out;
}

export interface TableStats {
  table: string;
  totalBytes: number;
  liveTuples: number;
  deadTuples: number;
  inserted: number;
  updated: number;
  deleted: number;
  seqScans: number;
  indexScans: number;
  indexes: { name: string; bytes: number; scans: number; valid: boolean }[];
}

/** The guide's steps 5 and 6 (sizes; n_tup_ins/upd/del, n_live_tup, n_dead_tup) plus index usage, largest first. */
export async function tableStats(c: pg.Client): Promise<TableStats[]> {
  const { rows } = await c.query<Record<string, string>>(
    `SELECT s.relname AS table, pg_total_relation_size(s.relid) AS total, s.n_live_tup AS live, s.n_dead_tup AS dead,
            s.n_tup_ins AS ins, s.n_tup_upd AS upd, s.n_tup_del AS del, s.seq_scan AS seq, coalesce(s.idx_scan, 0) AS idx
     FROM pg_stat_user_tables s WHERE s.schemaname = 'public' ORDER BY pg_total_relation_size(s.relid) DESC, s.relname`,
  );
  const idx = await c.query<{ table: string; name: string; bytes: string; scans: string; valid: boolean }>(
    `SELECT s.relname AS table, s.indexrelname AS name, pg_relation_size(s.indexrelid) AS bytes, s.idx_scan AS scans, i.indisvalid AS valid
     FROM pg_stat_user_indexes s JOIN pg_index i ON i.indexrelid = s.indexrelid WHERE s.schemaname = 'public' ORDER BY s.indexrelname`,
  );
  return rows.map((r) => ({
    table: r.table!,
    totalBytes: Number(r.total),
    liveTuples: Number(r.live),
    deadTuples: Number(r.dead),
    inserted: Number(r.ins),
    updated: Number(r.upd),
    deleted: Number(r.del),
    seqScans: Number(r.seq),
    indexScans: Number(r.idx),
    indexes: idx.rows.filter((i) => i.table === r.table).map((i) => ({ name: i.name, bytes: Number(i.bytes), scans: Number(i.scans), valid: i.valid })),
  }));
}
