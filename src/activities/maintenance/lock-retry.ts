/**
 * Maintenance statements that never wait in PostgreSQL's lock queue in front of the app. A statement waiting for
 * a lock is itself in the queue: every later request that conflicts with the lock it waits for (not only with the
 * holder's) waits behind it. So REINDEX / CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, ANALYZE and VACUUM
 * run with a short `lock_timeout` (maintenance.lockTimeout, default 1 s): when they cannot get a lock in that time
 * they give up, step out of the queue, and are tried again after a backoff — for up to maintenance.lockRetryFor
 * (default 30 min), then the step fails saying which transactions held it up.
 */
import pg from 'pg';

export interface LockPolicy {
  lockTimeoutMs: number;
  retryForMs: number;
  signal?: AbortSignal;
  /** Called before each retry (after a lock timeout), e.g. to heartbeat. */
  onRetry?: (what: string, attempt: number) => void;
}

export class LockNotAcquiredError extends Error {
  override readonly name = 'LockNotAcquired';
}

/** SQLSTATE 55P03 lock_not_available: what a statement fails with when lock_timeout expires. */
export const isLockTimeout = (err: unknown): boolean => (err as { code?: string } | null)?.code === '55P03';

/** Sets the connection's lock_timeout (whole milliseconds). */
export async function setLockTimeout(c: pg.Client, ms: number): Promise<void> {
  await c.query(`SET lock_timeout = ${Math.max(1, Math.floor(ms))}`);
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal!.reason);
    };
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** The oldest other transactions of the database: who is likely holding the lock maintenance could not get. */
async function oldTransactions(c: pg.Client): Promise<string> {
  const { rows } = await c.query<{ pid: number; age: string; state: string; query: string }>(
    `SELECT pid, extract(epoch FROM now() - xact_start)::int AS age, state, left(regexp_replace(query, '\\s+', ' ', 'g'), 80) AS query
     FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND xact_start IS NOT NULL
     ORDER BY xact_start LIMIT 3`,
  );
  return rows.length ? rows.map((r) => `pid ${r.pid} (${r.state}, transaction open ${r.age} s: ${r.query})`).join('; ') : 'none open now';
}

/**
 * Runs `attempt` (statements on `c`, whose lock_timeout is set) until it succeeds without a lock timeout. After
 * each timeout, `cleanUp` runs first (a concurrent build that timed out leaves an invalid index), then a backoff
 * from the lock timeout doubling up to 30 s. Returns the value and how many retries it took.
 */
export async function retryOnLockTimeout<T>(
  c: pg.Client,
  what: string,
  policy: LockPolicy,
  attempt: () => Promise<T>,
  cleanUp?: () => Promise<void>,
): Promise<{ value: T; retries: number }> {
  const t0 = Date.now();
  let retries = 0;
  let delay = policy.lockTimeoutMs;
  for (;;) {
    try {
      return { value: await attempt(), retries };
    } catch (err) {
      if (!isLockTimeout(err)) throw err;
    }
    if (Date.now() - t0 + delay > policy.retryForMs) {
      throw new LockNotAcquiredError(
        `${what}: could not get its lock within ${policy.lockTimeoutMs} ms in ${retries + 1} tries over ${Math.round((Date.now() - t0) / 1000)} s (maintenance.lockRetryFor ${Math.round(policy.retryForMs / 1000)} s); gave up rather than queue the app's statements behind it. Longest open transactions: ${await oldTransactions(c).catch(() => 'unknown')}`,
      );
    }
    retries++;
    policy.onRetry?.(what, retries);
    // The clean-up may time out on a lock too: then the next round cleans up again.
    if (cleanUp) await cleanUp().catch((err: unknown) => {
      if (!isLockTimeout(err)) throw err;
    });
    await sleep(delay * (0.75 + Math.random() / 2), policy.signal);
    delay = Math.min(delay * 2, 30_000);
  }
}
