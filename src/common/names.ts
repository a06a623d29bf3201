/**
 * Name rules shared by the config (worker side) and workflow input validation (workflow side); no imports,
 * so the workflow bundle can use them.
 */

/** Environment names double as workflow-id and compose-project parts, so they are kept shell- and path-safe. */
export const ENVIRONMENT_NAME = /^[a-z][a-z0-9-]{0,31}$/;

/**
 * Backups and restores of one environment share this workflow id, so they never run at the same time: a second
 * start is refused by Temporal while one is running (the id is a business key, not a lock file). The server
 * enforces it, so it holds across every worker process and host of the task queue.
 */
export function dataWorkflowId(environment: string): string {
  return `llmchat-data-${environment}`;
}

/**
 * Deploys and rollbacks of one environment share this workflow id: one release at a time per environment.
 * The release store's lease (src/activities/release/release-store.ts) enforces the same where the data is, for runs started
 * under any other id.
 */
export function releaseWorkflowId(environment: string): string {
  return `llmchat-release-${environment}`;
}

export const DATA_QUEUE_SUFFIX = '-data';

/**
 * The data host's own task queue (the "worker-specific task queue" pattern): data activities — those reading and
 * writing the backup store and temp files on one host's disk — are scheduled here, and only the worker on the
 * data host polls it (src/worker.ts, src/common/data-host.ts).
 */
export function dataTaskQueue(taskQueue: string): string {
  return `${taskQueue}${DATA_QUEUE_SUFFIX}`;
}
