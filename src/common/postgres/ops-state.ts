/**
 * State that several worker processes — on several hosts — must agree on: the release records and lease, the
 * front-switch record, the fault detector's recovery ledger, metrics snapshot and log cursors. Before, each lived
 * in a JSON file on the worker's disk and was serialised by an in-process queue, which holds for one process only.
 *
 * Now each is one row of table `ops_state` in database `llmchat_ops` on the environment's own PostgreSQL server
 * (the one place every worker of that environment already reaches). A row is keyed by the environment's name AND
 * its database name, so two environments sharing a server (or a host path) never share state. Every change is one
 * transaction that first takes `pg_advisory_xact_lock` on a hash of the row key: read, change, write and commit
 * happen under the lock, and a second worker changing the same row waits for the first to commit, then sees its
 * result. The lock ends with the transaction, so a worker killed mid-change leaves no stale lock.
 *
 * The database is created at first use (the role needs CREATEDB once; see the README, "Laying out workers").
 * Upgrade: a row that does not exist yet is read once from the old file (`legacy`); files stay written as
 * mirrors (`mirror`) for operators and for fault detection while the database is unreachable. A stored value
 * that fails its schema is an error naming the row, never silently replaced.
 */
import type pg from 'pg';
import type { z } from 'zod';
import type { EnvironmentConfig } from '../config/index.js';
import { connectPg, MAINTENANCE_DB } from './connect.js';

export const OPS_DATABASE = 'llmchat_ops';

export interface OpsRowKey {
  /** The environment's name in the config. */
  environment: string;
  /** Which record: e.g. `releases`, `fault/recovery-ledger/<instance>`. */
  key: string;
}

export class OpsStateError extends Error {
  override readonly name = 'OpsStateError';
  constructor(
    readonly row: string,
    problem: string,
  ) {
    super(`shared state row ${row} is unusable: ${problem}`);
  }
}

export function describeRow(env: EnvironmentConfig, k: OpsRowKey): string {
  return `${OPS_DATABASE}.ops_state(environment=${k.environment}, database=${env.database.name}, key=${k.key}) on ${env.database.host}:${env.database.port}`;
}

const ready = new Map<string, Promise<void>>();

async function createDatabase(env: EnvironmentConfig): Promise<void> {
  const admin = await connectPg(env, MAINTENANCE_DB, { applicationName: 'llmchat-ops ops-state setup' });
  try {
    const { rowCount } = await admin.query('SELECT 1 FROM pg_database WHERE datname = $1', [OPS_DATABASE]);
    if (rowCount) return;
    try {
      await admin.query(`CREATE DATABASE ${OPS_DATABASE}`);
    } catch (err) {
      const code = (err as { code?: string }).code;
      // 42P04: created meanwhile by another worker; 23505: the same race seen in pg_database's unique index.
      if (code === '42P04' || code === '23505') return;
      if (code === '42501') {
        throw new Error(
          `database ${OPS_DATABASE} does not exist on ${env.database.host}:${env.database.port} and role ${env.database.user} may not create it: ` +
            `grant it CREATEDB once, or create it as a superuser: CREATE DATABASE ${OPS_DATABASE} OWNER ${env.database.user}`,
          { cause: err },
        );
      }
      throw err;
    }
  } finally {
    await admin.end().catch(() => {});
  }
}

async function createTable(c: pg.Client): Promise<void> {
  await c.query('BEGIN');
  try {
    // Concurrent CREATE TABLE IF NOT EXISTS can still collide in the catalogue: one at a time.
    await c.query("SELECT pg_advisory_xact_lock(hashtextextended('llmchat-ops ops_state schema', 0))");
    await c.query(`CREATE TABLE IF NOT EXISTS ops_state (
      environment text NOT NULL,
      database_name text NOT NULL,
      key text NOT NULL,
      value jsonb NOT NULL,
      updated_at timestamptz NOT NULL DEFAULT now(),
      PRIMARY KEY (environment, database_name, key))`);
    await c.query('COMMIT');
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

function serverKey(env: EnvironmentConfig): string {
  return `${env.database.host}:${env.database.port}:${env.database.user}`;
}

/** Runs `fn` on a connection to the state database, creating database and table the first time. */
async function withOps<T>(env: EnvironmentConfig, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const sk = serverKey(env);
  if (!ready.has(sk)) {
    const setup = (async () => {
      await createDatabase(env);
      const c = await connectPg(env, OPS_DATABASE, { applicationName: 'llmchat-ops ops-state setup' });
      try {
        await createTable(c);
      } finally {
        await c.end().catch(() => {});
      }
    })();
    ready.set(sk, setup);
    setup.catch(() => ready.delete(sk));
  }
  await ready.get(sk);
  const c = await connectPg(env, OPS_DATABASE, { applicationName: 'llmchat-ops ops-state' });
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

export interface OpsRowOptions<T> {
  schema: z.ZodType<T>;
  /** The value of a row that exists neither in the database nor in the old file. */
  initial: () => T;
  /** The old file's content (undefined when absent); read once, when the row does not exist yet. */
  legacy?: () => Promise<T | undefined>;
  /** Called with every committed value (the file mirror). A failing mirror is reported, the change stands. */
  mirror?: (value: T) => Promise<void>;
  onMirrorError?: (err: Error) => void;
}

function parseRow<T>(env: EnvironmentConfig, k: OpsRowKey, schema: z.ZodType<T>, raw: unknown): T {
  const parsed = schema.safeParse(raw);
  if (!parsed.success) throw new OpsStateError(describeRow(env, k), parsed.error.issues.map((i) => `${i.path.join('.') || '(value)'}: ${i.message}`).join('; '));
  return parsed.data;
}

async function currentValue<T>(c: pg.Client, env: EnvironmentConfig, k: OpsRowKey, opts: OpsRowOptions<T>): Promise<{ value: T; stored: boolean }> {
  const { rows } = await c.query<{ value: unknown }>('SELECT value FROM ops_state WHERE environment = $1 AND database_name = $2 AND key = $3', [k.environment, env.database.name, k.key]);
  if (rows[0]) return { value: parseRow(env, k, opts.schema, rows[0].value), stored: true };
  const old = opts.legacy ? await opts.legacy() : undefined;
  return { value: old === undefined ? opts.initial() : parseRow(env, k, opts.schema, old), stored: false };
}

/** The row's value (or the old file's, or `initial()`), checked by its schema. */
export async function readOpsState<T>(env: EnvironmentConfig, k: OpsRowKey, opts: OpsRowOptions<T>): Promise<T> {
  return withOps(env, async (c) => (await currentValue(c, env, k, opts)).value);
}

/**
 * Read-modify-write of one row in one transaction under the row's advisory lock: `fn` gets the current value and
 * returns the next one and a result. Concurrent changes of the same row — from any process on any host — run one
 * after another. The mirror file is written under the lock too, so mirrors on one host follow commit order.
 */
export async function transactOpsState<T, R>(env: EnvironmentConfig, k: OpsRowKey, opts: OpsRowOptions<T>, fn: (value: T) => Promise<{ next: T; result: R }> | { next: T; result: R }): Promise<R> {
  return withOps(env, async (c) => {
    await c.query('BEGIN');
    try {
      await c.query('SELECT pg_advisory_xact_lock(hashtextextended($1, 0))', [`llmchat-ops ops_state\n${k.environment}\n${env.database.name}\n${k.key}`]);
      const { value } = await currentValue(c, env, k, opts);
      const { next, result } = await fn(value);
      const checked = parseRow(env, k, opts.schema, next);
      await c.query(
        `INSERT INTO ops_state (environment, database_name, key, value, updated_at) VALUES ($1, $2, $3, $4, now())
         ON CONFLICT (environment, database_name, key) DO UPDATE SET value = EXCLUDED.value, updated_at = now()`,
        [k.environment, env.database.name, k.key, JSON.stringify(checked)],
      );
      if (opts.mirror) await opts.mirror(checked).catch((err: Error) => opts.onMirrorError?.(err));
      await c.query('COMMIT');
      return result;
    } catch (err) {
      await c.query('ROLLBACK').catch(() => {});
      throw err;
    }
  });
}

/** {@link transactOpsState} for a value changed in place by `fn`, which returns the result. */
export async function updateOpsState<T, R>(env: EnvironmentConfig, k: OpsRowKey, opts: OpsRowOptions<T>, fn: (value: T) => R | Promise<R>): Promise<R> {
  return transactOpsState(env, k, opts, async (value) => ({ result: await fn(value), next: value }));
}
