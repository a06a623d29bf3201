/**
 * Activities that ask Temporal itself: which operations of an environment are running right now. Used by the
 * maintenance workflows to stay out of the way of a backup, restore or deploy of the same environment.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { OpsConfig } from '../../common/config/index.js';
import { dataTaskQueue, dataWorkflowId, releaseWorkflowId } from '../../common/names.js';
import { asFailure } from './failures.js';
import { permanent } from './activity-support.js';
import { RequestedByKey } from '../../common/search-attributes.js';
import { getEnvironment } from '../../common/config/index.js';

export interface RunningOperation {
  workflowId: string;
  workflowType: string;
  startTime: string;
}

export function createTemporalActivities(cfg: OpsConfig) {
  return {
    /**
     * The backup/restore (`llmchat-data-<env>`) and deploy/rollback (`llmchat-release-<env>`) workflows of the
     * environment that are running now. Uses the worker's own client (the activity context's).
     */
    async runningConflicts(input: { environment: string }): Promise<RunningOperation[]> {
      try {
        getEnvironment(cfg, input.environment);
      } catch (err) {
        throw asFailure(err);
      }
      const client = Context.current().client;
      const running: RunningOperation[] = [];
      for (const id of [dataWorkflowId(input.environment), releaseWorkflowId(input.environment)]) {
        try {
          const d = await client.workflow.getHandle(id).describe();
          if (d.status.name === 'RUNNING') running.push({ workflowId: id, workflowType: d.type, startTime: d.startTime.toISOString() });
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err;
        }
      }
      return running;
    },

    /**
     * The restore's check of a `releaseApproval`: its parent (the run Temporal recorded as starting it) must be
     * our `deploy` — that type, on this worker's task queue, under the environment's release id, still running.
     * The parent's id alone proves nothing: any client can start a workflow of its own under that id, on a worker
     * of its own. Throws BadInput naming what the parent is.
     */
    async checkReleaseParent(input: { environment: string; parent: { workflowId: string; runId: string } }): Promise<void> {
      try {
        getEnvironment(cfg, input.environment);
      } catch (err) {
        throw asFailure(err);
      }
      const ctx = Context.current();
      // On the data host's queue (src/workflows/common/data-host-aware.ts) the deploy runs on the main queue it belongs to.
      const queue = ctx.info.taskQueue === dataTaskQueue(cfg.temporal.taskQueue) ? cfg.temporal.taskQueue : ctx.info.taskQueue;
      const id = releaseWorkflowId(input.environment);
      let d;
      try {
        d = await ctx.client.workflow.getHandle(input.parent.workflowId, input.parent.runId).describe();
      } catch (err) {
        if (err instanceof WorkflowNotFoundError) throw permanent(`\`releaseApproval\` refused: the parent run ${input.parent.workflowId} (${input.parent.runId}) does not exist; nothing was changed`, 'BadInput');
        throw err;
      }
      if (d.workflowId !== id || d.type !== 'deploy' || d.taskQueue !== queue || d.status.name !== 'RUNNING') {
        throw permanent(
          `\`releaseApproval\` is accepted only from the running deploy workflow ${id} on task queue ${queue}; this restore's parent is a ${d.type} under ${d.workflowId} on task queue ${d.taskQueue} (${d.status.name.toLowerCase()}). A restore over live data needs approveRestore from another person; nothing was changed`,
          'BadInput',
        );
      }
      const original = await resetFrom(ctx, input.parent.workflowId, input.parent.runId);
      if (original) {
        throw permanent(
          `\`releaseApproval\` refused: the deploy run ${input.parent.runId} is a reset of run ${original}, and an approval recorded before a reset (or re-applied by it) is never acted on again over live data. A restore over live data needs approveRestore from another person; nothing was changed`,
          'BadInput',
        );
      }
    },
  };
}

/**
 * Refuses `what` (a restore over live data) while a deploy or rollback of the environment runs: the release
 * started first wins, and this run is told which one holds the environment, who started it and when. (The deploy
 * side refuses to start while a backup or restore runs.) The one exception is the release's own child: a failed
 * deploy restoring its pre-deploy backup (deploy.databaseRollback: restore-backup) — the calling workflow's
 * parent, as the server records it, is the running release run. Outside a worker — a benchmark calling an
 * activity body directly — there is no Temporal to ask, and nothing is checked.
 */
export async function refuseDuringRelease(environment: string, what: string): Promise<void> {
  let client;
  let caller;
  let ctx;
  try {
    ctx = Context.current();
    client = ctx.client;
    caller = ctx.info.workflowExecution;
  } catch {
    return;
  }
  // A reset run replays the approval its history holds (and the server re-applies later signals): it would
  // replace the live data again, long after the approval, with no one asked.
  await refuseInResetRun(ctx, what, 'Start a new restore and have it approved');
  const id = releaseWorkflowId(environment);
  try {
    const d = await client.workflow.getHandle(id).describe();
    if (d.status.name !== 'RUNNING') return;
    if (caller) {
      const self = await client.workflow.getHandle(caller.workflowId, caller.runId).describe();
      if (self.parentExecution?.workflowId === id && self.parentExecution.runId === d.runId) return;
    }
    const by = d.typedSearchAttributes.get(RequestedByKey);
    throw permanent(
      `${what} refused: a ${d.type} of ${environment} is running (workflow ${id}${by ? `, requested by ${by}` : ''}, started ${d.startTime.toISOString()}); nothing was changed — try again when it has finished`,
      'ReleaseRunning',
    );
  } catch (err) {
    if (err instanceof WorkflowNotFoundError) return;
    throw err;
  }
}

/**
 * Refuses (non-retryable, nothing done) when the workflow run that scheduled the activity is a reset of another run:
 * its history holds an approval given before the reset (and the server re-applies signals and updates sent later),
 * so a destructive step would run again, long after the approval and over whatever the data has become since, with
 * no one asked. `remedy` says what to do instead.
 */
export async function refuseInResetRun(ctx: Context, what: string, remedy: string): Promise<void> {
  const caller = ctx.info.workflowExecution;
  const original = caller && (await resetFrom(ctx, caller.workflowId, caller.runId));
  if (original) {
    throw permanent(`${what} refused: this run (${caller.runId}) is a reset of run ${original}; an approval recorded before a reset (or re-applied by it) is never acted on again over live data. ${remedy}; nothing was changed`, 'BadInput');
  }
}

/**
 * The run a workflow run was reset from (`temporal workflow reset`), or undefined if it was not reset: a reset
 * run keeps the original run id on its WorkflowExecutionStarted event.
 */
export async function resetFrom(ctx: Context, workflowId: string, runId: string): Promise<string | undefined> {
  const res = await ctx.client.workflowService.getWorkflowExecutionHistory({
    namespace: ctx.info.workflowNamespace ?? ctx.client.options.namespace,
    execution: { workflowId, runId },
    maximumPageSize: 1,
  });
  const original = res.history?.events?.[0]?.workflowExecutionStartedEventAttributes?.originalExecutionRunId;
  return original && original !== runId ? original : undefined;
}
