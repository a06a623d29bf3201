/**
 * Activity-option profiles, defined once for every workflow: each names a kind of step by how long it may take,
 * how it proves it is alive and how it is retried. A workflow proxies its feature's activities once per profile it
 * uses (`proxyActivities<ReleaseActivities>(DOCKER)`). Values are those each workflow had before they were
 * gathered here; changing one changes every workflow that uses it.
 */
import { ActivityCancellationType, type ActivityOptions, type LocalActivityOptions, type RetryPolicy } from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES } from '../../common/errors.js';

// ── Short steps ──────────────────────────────────────────────────────────────────────────────────────────────────
/** Bookkeeping, plans and HTTP checks: a minute, five attempts (release steps, maintenance, cleanup). */
export const QUICK: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
};
/** Is a backup, restore or deploy of the environment running? A short read of Temporal itself. */
export const CONFLICT_CHECK: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
};
/** One notification on one channel; a channel that is down is retried for a few minutes, then reported. */
export const NOTIFY: ActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
};
/** Signals and queries of other workflows (fault detection joining its run, alerts): many quick attempts. */
export const TEMPORAL_CALLS: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 10 },
};
/** The monthly report's Prometheus and PostgreSQL queries and its files. */
export const REPORT_QUERIES: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumAttempts: 5 },
};

// ── Local activities (short reads recorded in the history without a task-queue round trip) ──────────────────────
/** Measurements: endpoints, memory, disk, the container, the environment's policy. */
export const LOCAL_MEASURE: LocalActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 3 },
};
/** App logs can be large; the scan streams the file and honours cancellation. */
export const LOCAL_LOG_SCAN: LocalActivityOptions = {
  startToCloseTimeout: '10 minutes',
  retry: { initialInterval: '2 seconds', maximumAttempts: 3 },
};
/** The alert workflow's policy reads and notifications. */
export const LOCAL_ALERT_STEPS: LocalActivityOptions = {
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 10 },
};
/** A read of the backup catalogue. */
export const LOCAL_CATALOGUE: LocalActivityOptions = { startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3 } };
/** The same read as an activity on the data host's queue (the catalogue is on its disk). */
export const DATA_CATALOGUE: ActivityOptions = { startToCloseTimeout: '1 minute', retry: { maximumAttempts: 3 } };

// ── Release (deploy, rollback) ──────────────────────────────────────────────────────────────────────────────────
/** Compose and image work. */
export const DOCKER: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
};
/** Polls with their own deadline (slot ready, health gate, restore preview). */
export const WAITS: ActivityOptions = {
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
};
/** The guide's recreate in place: a second `compose up` would run over a half-started first one. */
export const RECREATE_ONCE: ActivityOptions = { ...DOCKER, retry: { ...DOCKER.retry, maximumAttempts: 1 } };
/** The checked switch of the front, once: a retry would run with the unverified build serving. The heartbeat notices a lost worker in seconds. */
export const FRONT_SWITCH_ONCE: ActivityOptions = { startToCloseTimeout: '2 minutes', heartbeatTimeout: '10 seconds', retry: { maximumAttempts: 1 } };
/** Putting the front back is safe to repeat. */
export const FRONT_RESTORE: ActivityOptions = { startToCloseTimeout: '2 minutes', heartbeatTimeout: '10 seconds', retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 } };

// ── Backup and restore ──────────────────────────────────────────────────────────────────────────────────────────
/** Retry policy of the short backup/restore steps (catalogue reads and writes, restore plans). Errors of the types in src/common/errors.ts are never retried. */
export const DATA_RETRY: RetryPolicy = { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES };
/** The backup workflow's short steps. */
export const QUICK_DATA: ActivityOptions = { startToCloseTimeout: '1 minute', retry: DATA_RETRY };
/** The restore's steps short of the data itself (plans, safety checks), which may wait on the catalogue. */
export const RESTORE_STEPS: ActivityOptions = { startToCloseTimeout: '30 minutes', heartbeatTimeout: '15 seconds', retry: DATA_RETRY };
/**
 * Dumps, archives, restore tests and restores take as long as the data needs; the heartbeat (every second) proves
 * they are alive, so a worker that dies mid-step is noticed within 15 s and the step restarts on another (or the
 * restarted) worker. On cancellation the workflow waits until the activity has killed its processes and removed
 * its partial files. Errors of the types in src/common/errors.ts are never retried.
 */
export const LONG_DATA: ActivityOptions = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '15 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
};
/** Inspecting and importing a foreign backup reads every archive once. */
export const IMPORT_CHECKS: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
};

// ── Maintenance ─────────────────────────────────────────────────────────────────────────────────────────────────
/**
 * Long PostgreSQL work (purge batches, REINDEX/CREATE INDEX CONCURRENTLY, VACUUM): it heartbeats, and a cancellation
 * waits until the activity has cancelled its statement and cleaned up.
 */
export const LONG_DATABASE: ActivityOptions = {
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '10 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 10 },
};
/** Walking and deleting the host's old files. */
export const CLEANUP_FILES: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumAttempts: 5 },
};
/** OS package upgrades: slow, and not worth many attempts. */
export const OS_UPGRADES: ActivityOptions = {
  startToCloseTimeout: '1 hour',
  retry: { initialInterval: '30 seconds', maximumAttempts: 3 },
};

// ── Fault detection ─────────────────────────────────────────────────────────────────────────────────────────────
/** The log scan reads only new bytes but may meet a burst of them: a regular activity that heartbeats. */
export const LOG_SCAN: ActivityOptions = {
  startToCloseTimeout: '10 minutes',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '2 seconds', maximumAttempts: 3 },
};
/**
 * A restart waits for /health; the heartbeat notices a dead worker within 10 s and the retry resumes the wait
 * (the recovery ledger makes sure the container is restarted once).
 */
export const RECOVERY: ActivityOptions = {
  startToCloseTimeout: '5 minutes',
  heartbeatTimeout: '10 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumAttempts: 5 },
};
/** A trigger run waits for the run it joined: a long wait that heartbeats (a dead worker is noticed in 15 s). */
export const AWAIT_RUN: ActivityOptions = {
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumAttempts: 10 },
};
