/**
 * The environment data lock: one data operation at a time per environment, enforced where the data is.
 *
 * Why a PostgreSQL advisory lock on a dedicated connection: workflow ids only keep out starts that use the same
 * id, and anyone can start a workflow with any id. The database server is the one place every worker, CLI and
 * operator shares with the data itself, and a session-level advisory lock is released by the server the moment
 * its holder's session ends — a worker killed with SIGKILL, a dropped network or a terminated session can never
 * leave a stale lock behind (a lock file or a row would). The lock is taken in the maintenance database
 * `postgres` because advisory locks are per database and the live database is renamed by a restore's swap (and
 * its sessions are terminated by it); the key is derived from the environment's database name, so two configs
 * naming the same data share one lock. The holder's name (activity and workflow id) is the lock session's
 * application_name, so a refused operation can say who holds it.
 *
 * Modes: readers (a backup reading live data) take it shared, so the artifacts of one backup — and two backups —
 * run side by side; writers (a restore replacing live data, maintenance deleting rows, a deploy migrating) take it
 * exclusive. A refused caller gets {@link DataLockedError} at once (never a queue of waiters that would run in
 * an order nobody chose). If the lock session is lost while held, {@link DataLock.signal} fires so the holder
 * stops its work.
 */
import { createHash } from 'node:crypto';
import type pg from 'pg';
import type { EnvironmentConfig } from '../config/index.js';
import { connectPg, lostSignal, MAINTENANCE_DB } from './connect.js';

export type DataLockMode = 'shared' | 'exclusive';

export interface DataLockOptions {
  /** `shared` for reading live data (backups), `exclusive` for changing or replacing it. */
  mode: DataLockMode;
  /** Who is asking, shown to whoever is refused: e.g. `restoreDatabase llmchat-data-production`. */
  holder: string;
  /** What is locked; default: the environment's data (its database name). */
  resource?: string;
}

export interface LockHolder {
  pid: number;
  applicationName: string;
  mode: DataLockMode;
  since: string;
}

/** The lock is held by someone else; `name` is the non-retryable type `DataLocked`. */
export class DataLockedError extends Error {
  override readonly name = 'DataLocked';
  constructor(
    readonly resource: string,
    readonly holders: LockHolder[],
  ) {
    const who = holders.length
      ? holders.map((h) => `${h.applicationName || '(no application_name)'} (${h.mode}, pid ${h.pid}, since ${h.since})`).join(', ')
      : 'another session (it finished just now; try again)';
    super(`${resource} is locked by ${who}; refusing to run at the same time`);
  }
}

export interface DataLock {
  readonly resource: string;
  /** Every session holding the lock now, this one excluded. */
  holders(): Promise<LockHolder[]>;
  /** Fires if the lock's session is lost while held: exclusivity is gone, stop the work. */
  readonly signal: AbortSignal;
  release(): Promise<void>;
}

/** Same application id for all our locks (the first key of the two-int advisory lock). */
const CLASS_ID = 0x4c4f5053; // "LOPS"

/** A positive 31-bit key, so it reads the same as int4 (the lock function) and as oid (pg_locks.objid). */
function keyOf(resource: string): number {
  return createHash('sha256').update(resource).digest().readUInt32BE(0) & 0x7fffffff;
}

export function dataResource(env: EnvironmentConfig): string {
  return `data of database ${env.database.name}`;
}

async function holdersOf(c: pg.Client, key: number): Promise<LockHolder[]> {
  const { rows } = await c.query<{ pid: number; application_name: string | null; mode: string; since: Date | null }>(
    `SELECT l.pid, a.application_name, l.mode, a.backend_start AS since
       FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid
      WHERE l.locktype = 'advisory' AND l.granted AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 2
        AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.pid <> pg_backend_pid()
      ORDER BY a.backend_start`,
    [CLASS_ID, key],
  );
  return rows.map((r) => ({
    pid: r.pid,
    applicationName: r.application_name ?? '',
    mode: r.mode === 'ExclusiveLock' ? 'exclusive' : 'shared',
    since: r.since ? r.since.toISOString() : '?',
  }));
}

/** Takes the lock or throws {@link DataLockedError} naming the holders; never waits. */
export async function acquireDataLock(env: EnvironmentConfig, opts: DataLockOptions): Promise<DataLock> {
  const resource = opts.resource ?? dataResource(env);
  const key = keyOf(resource);
  const client = await connectPg(env, MAINTENANCE_DB, { applicationName: `llmchat-ops lock ${opts.holder}` });
  try {
    const fn = opts.mode === 'exclusive' ? 'pg_try_advisory_lock' : 'pg_try_advisory_lock_shared';
    const { rows } = await client.query<{ ok: boolean }>(`SELECT ${fn}($1::int, $2::int) AS ok`, [CLASS_ID, key]);
    if (!rows[0]?.ok) throw new DataLockedError(resource, await holdersOf(client, key));
  } catch (err) {
    await client.end().catch(() => {});
    throw err;
  }
  let released = false;
  return {
    resource,
    holders: () => holdersOf(client, key),
    signal: lostSignal(client),
    async release() {
      if (released) return;
      released = true;
      await client.end().catch(() => {}); // ending the session releases its advisory locks
    },
  };
}

/**
 * Runs `fn` while holding the lock; `fn` gets a signal that fires if the lock is lost. Work that finished after
 * the lock was lost is reported as an error (exclusivity was not guaranteed for all of it), so a retry redoes it.
 */
export async function withDataLock<T>(env: EnvironmentConfig, opts: DataLockOptions, fn: (lost: AbortSignal) => Promise<T>): Promise<T> {
  const lock = await acquireDataLock(env, opts);
  try {
    const result = await fn(lock.signal);
    if (lock.signal.aborted) throw new Error(`lost the lock on ${lock.resource} while working: ${(lock.signal.reason as Error)?.message ?? 'session ended'}`);
    return result;
  } finally {
    await lock.release();
  }
}
