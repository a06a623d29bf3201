/**
 * Data activities read and write files on the worker's disk (`paths.backups`, `paths.temp`): a backup written on
 * one host cannot be verified or restored by a worker on another. So they run on the data host's own task queue
 * `<task queue>-data` (src/workflows/common/data-host-aware.ts), and every worker process polling that queue must run on
 * the one host that holds those files — several processes there are fine (they share the disk and the data lock
 * keeps their operations apart), a second host claiming to be the data host is refused at start. Workers on other
 * hosts poll the main queue only and need no claim.
 *
 * Enforced where the data is, like the data lock: each worker process holds, for its whole life, a shared
 * advisory lock "data host of <task queue>" on every environment's PostgreSQL server, with its host name in the
 * lock session's application_name. A worker that finds the lock held by a session naming another host refuses to
 * start, naming it. If the lock's session is lost (server restart), it is claimed again; finding another host
 * then, the worker shuts down. A server unreachable at start is reported and skipped (the worker still starts:
 * its data activities fail and retry until the server is back).
 */
import type { OpsConfig } from './config/index.js';
import { dataTaskQueue } from './names.js';
import { acquireDataLock, type DataLock } from './postgres/data-lock.js';

export class DataHostConflictError extends Error {
  override readonly name = 'DataHostConflict';
}

const HOLDER_PREFIX = 'data-host ';

export interface DataHostClaim {
  /** Environments whose server could not be reached to check (a warning for the operator). */
  unchecked: { environment: string; error: string }[];
  /** Fires with the reason when a claim was lost and another host holds it now: stop the worker. */
  conflict: AbortSignal;
  release(): Promise<void>;
}

async function claimOne(cfg: OpsConfig, environment: string): Promise<DataLock> {
  const env = cfg.environments[environment]!;
  const me = cfg.worker.host;
  const lock = await acquireDataLock(env, {
    mode: 'shared',
    holder: `${HOLDER_PREFIX}${me}`,
    // The resource name is kept from before the data queue existed, so an old worker and a new one still collide.
    resource: `data host of task queue ${cfg.temporal.taskQueue} for database ${env.database.name}`,
  });
  const others = (await lock.holders()).filter((h) => h.applicationName !== `llmchat-ops lock ${HOLDER_PREFIX}${me}`);
  if (others.length) {
    await lock.release();
    const hosts = [...new Set(others.map((h) => h.applicationName.replace(`llmchat-ops lock ${HOLDER_PREFIX}`, '')))].join(', ');
    throw new DataHostConflictError(
      `task queue ${cfg.temporal.taskQueue} already has workers on host ${hosts} (environment ${environment}); this worker is on ${me}. ` +
        `Backups and temp files live on one host's disk: only workers there poll ${dataTaskQueue(cfg.temporal.taskQueue)}. Set worker.dataHost to ${hosts} on this host (it then polls the main queue only), or give this host its own task queue.`,
    );
  }
  return lock;
}

/** Claims the data host for every environment; throws {@link DataHostConflictError} if another host holds one. */
export async function claimDataHost(cfg: OpsConfig, log: (msg: string, meta: Record<string, unknown>) => void): Promise<DataHostClaim> {
  const locks = new Map<string, DataLock>();
  const unchecked: DataHostClaim['unchecked'] = [];
  const conflict = new AbortController();
  let released = false;
  const watch = (environment: string, lock: DataLock) => {
    locks.set(environment, lock);
    lock.signal.addEventListener('abort', () => void reclaim(environment), { once: true });
  };
  const reclaim = async (environment: string): Promise<void> => {
    while (!released && !conflict.signal.aborted) {
      try {
        watch(environment, await claimOne(cfg, environment));
        log('data host claimed again', { environment, host: cfg.worker.host });
        return;
      } catch (err) {
        if (err instanceof DataHostConflictError) {
          conflict.abort(err);
          return;
        }
        log('data host claim lost; retrying in 10 s', { environment, error: (err as Error).message });
        await new Promise((r) => setTimeout(r, 10_000));
      }
    }
  };
  try {
    for (const environment of Object.keys(cfg.environments)) {
      try {
        watch(environment, await claimOne(cfg, environment));
      } catch (err) {
        if (err instanceof DataHostConflictError) throw err;
        unchecked.push({ environment, error: (err as Error).message });
      }
    }
  } catch (err) {
    released = true;
    await Promise.all([...locks.values()].map((l) => l.release()));
    throw err;
  }
  return {
    unchecked,
    conflict: conflict.signal,
    async release() {
      released = true;
      await Promise.all([...locks.values()].map((l) => l.release()));
    },
  };
}
