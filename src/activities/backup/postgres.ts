/** PostgreSQL pieces shared by the backup activities and the tests: which tables count, counting, dropping. */
import pg from 'pg';

const ident = (name: string) => pg.escapeIdentifier(name);

export interface Table {
  schema: string;
  name: string;
}

/**
 * The user tables whose rows a backup records and a restore must reproduce, largest first (so parallel counters
 * start on the long ones). Other sessions' temporary tables are neither readable nor dumped.
 */
export async function userTables(client: pg.Client): Promise<Table[]> {
  const { rows } = await client.query<Table>(
    `SELECT n.nspname AS schema, c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
       AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
     ORDER BY c.relpages DESC, 1, 2`,
  );
  return rows;
}

/**
 * Exact row counts ("schema.table" → rows) of `tables`, shared out over `clients` (one query at a time each), in
 * whatever snapshot each client's transaction sees. Stops before the next table once `signal` fired.
 */
export async function countRows(clients: pg.Client[], tables: Table[], onTable?: (done: number) => void, signal?: AbortSignal): Promise<Record<string, number>> {
  const counts: Record<string, number> = {};
  let next = 0;
  let done = 0;
  await Promise.all(
    clients.map(async (c) => {
      while (next < tables.length) {
        signal?.throwIfAborted();
        const t = tables[next++] as Table;
        const r = await c.query<{ n: string }>(`SELECT count(*) AS n FROM ${ident(t.schema)}.${ident(t.name)}`);
        counts[`${t.schema}.${t.name}`] = Number(r.rows[0]?.n ?? 0);
        onTable?.(++done);
      }
    }),
  );
  return counts;
}

/**
 * Cancels the statement backend `pid` is running, through `client` (another session): a query waiting on a lock
 * does not notice its own client giving up or closing the connection, and would wait on.
 */
export async function cancelBackend(client: pg.Client, pid: number): Promise<void> {
  await client.query('SELECT pg_cancel_backend($1)', [pid]);
}

const OBJECT_IN_USE = '55006';

/**
 * Drops a database through `client` (connected elsewhere). Sessions of our own role on it — say, a pg_restore
 * orphaned by a crashed worker — are ended first; autovacuum workers are cancelled by DROP itself (WITH (FORCE)
 * would need rights over them that an application role lacks). Retries for a few seconds while it is in use.
 */
export async function dropDatabase(client: pg.Client, name: string): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    await client.query(
      `SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()`,
      [name],
    );
    try {
      await client.query(`DROP DATABASE IF EXISTS ${ident(name)}`);
      return;
    } catch (err) {
      if ((err as { code?: string }).code !== OBJECT_IN_USE || attempt >= 20) throw err;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}
