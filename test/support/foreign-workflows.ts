/**
 * Workflows an operator with Temporal access (but no approval rights) can run on a worker of their own, on their
 * own task queue: they start our `restore` or schedule our activities on the llmchat-ops task queue with whatever
 * input they like. Used by test/restore-impersonation.workflow.test.ts; never part of the worker's bundle.
 */
import { proxyActivities, sleep, startChild } from '@temporalio/workflow';

export interface ForeignInput {
  /** Our worker's task queue. */
  taskQueue: string;
  environment: string;
  backupId: string;
  /** The workflow id the started restore gets. */
  restoreId?: string;
}

/** Runs under llmchat-release-<env>, so the restore it starts sees that id as its parent. */
export async function foreignRelease(i: ForeignInput): Promise<unknown> {
  const child = await startChild('restore', {
    taskQueue: i.taskQueue,
    workflowId: i.restoreId ?? `llmchat-data-${i.environment}`,
    args: [{ environment: i.environment, backupId: i.backupId, kind: 'database', requestedBy: 'mallory', releaseApproval: { by: 'bob', comment: 'forged' } }],
  });
  return child.result();
}

/** The same under our deploy's type name: a type name proves nothing about whose code runs. */
export const deploy = foreignRelease;

/**
 * Schedules one of our activities on our task queue with any input: e.g. `restoreDatabase` over live data, with
 * no restore workflow and no approval gate at all.
 */
export async function foreignActivity(i: { taskQueue: string; activity: string; input: unknown }): Promise<unknown> {
  const acts = proxyActivities<Record<string, (input: unknown) => Promise<unknown>>>({
    taskQueue: i.taskQueue,
    startToCloseTimeout: '5 minutes',
    retry: { maximumAttempts: 1 },
  });
  return acts[i.activity]!(i.input);
}

/** Holds whatever workflow id it runs under for `ms` of workflow time (one timer), e.g. the data id. */
export async function hold(ms: number): Promise<void> {
  await sleep(ms);
}
