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

/** Invalid `<name>_ccnew[N]` / `<name>_ccold[N]` of the given indexes, dropped concurrently. Returns their names. */
export async function dropInvalidLeftovers(c: pg.Client, indexNames: readonly string[]): Promise<string[]> {
  if (indexNames.length === 0) return [];
  const leftovers = (await indexStates(c, `NOT i.indisvalid AND ic.relname ~ '_cc(new|old)[0-9]*$'`, [])).filter((s) =>
    indexNames.includes(s.name.replace(/_cc(new|old)[0-9]*$/, '')),
  );
  for (const l of leftovers) await c.query(`DROP INDEX CONCURRENTLY IF EXISTS public.${ident(l.name)}`);
  return leftovers.map((l) => l.name);
}

export interface ReindexResult {
  name: string;
  status: 'rebuilt' | 'missing';
  bytesBefore?: number;
  bytesAfter?: number;
  durationMs?: number;
}

export interface ReindexOutcome {
  removedLeftovers: string[];
  indexes: ReindexResult[];
}

export async function reindexConcurrently(c: pg.Client, indexNames: readonly string[], onIndex?: (name: string) => void): Promise<ReindexResult[]> {
  const results: ReindexResult[] = [];
  for (const name of indexNames) {
    onIndex?.(name);
    const [before] = await indexStates(c, 'ic.relname = $1', [name]);
    if (!before) {
      results.push({ name, status: 'missing' });
      continue;
    }
    const t0 = Date.now();
    await c.query(`REINDEX INDEX CONCURRENTLY public.${ident(name)}`);
    const [after] = await indexStates(c, 'ic.relname = $1', [name]);
    results.push({ name, status: 'rebuilt', bytesBefore: before.bytes, bytesAfter: after?.bytes ?? 0, durationMs: Date.now() - t0 });
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
}

/** CREATE INDEX CONCURRENTLY IF NOT EXISTS for each spec; an invalid index of that name is dropped first. */
export async function createIndexes(c: pg.Client, specs: readonly IndexSpec[]): Promise<IndexCreation[]> {
  const out: IndexCreation[] = [];
  for (const s of specs) {
    const t0 = Date.now();
    const table = await c.query(`SELECT to_regclass($1) AS t`, [`public.${ident(s.table)}`]);
    if (table.rows[0].t === null) {
      out.push({ name: s.name, status: 'table-missing', durationMs: 0 });
      continue;
    }
    const [existing] = await indexStates(c, 'ic.relname = $1', [s.name]);
    let status: IndexCreation['status'] = existing ? 'exists' : 'created';
    if (existing && !existing.valid) {
      await c.query(`DROP INDEX CONCURRENTLY IF EXISTS public.${ident(s.name)}`);
      status = 'recreated-invalid';
    }
    await c.query(`CREATE INDEX CONCURRENTLY IF NOT EXISTS ${ident(s.name)} ON public.${ident(s.table)} (${s.columns.map(ident).join(', ')})`);
    out.push({ name: s.name, status, durationMs: Date.now() - t0 });
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
