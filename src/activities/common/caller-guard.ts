/**
 * Our activities run only for our own workflows. Temporal lets any client that can reach the server start a
 * workflow on a task queue of its choice and run it on a worker of its own; such a workflow can schedule any
 * activity by name on our task queue (e.g. `restoreDatabase` over live data, `migrateDown`) and skip every
 * approval gate our workflows hold. Each activity execution therefore asks the server which task queue the
 * workflow that scheduled it runs on, and refuses (non-retryable, before the activity body runs) unless it is the
 * worker's own. Local activities are scheduled by the worker's own workflow code and are not checked.
 *
 * What this cannot stop: a foreign worker polling our own task queue and so running workflow tasks of runs on it.
 * Only the server's authorization (mTLS / an authorizer that lets only the llmchat-ops worker poll its queue)
 * closes that; see the README.
 */
import { ApplicationFailure } from '@temporalio/common';
import type { ActivityInterceptorsFactory } from '@temporalio/worker';
import { dataTaskQueue } from '../../common/names.js';

/** Runs whose task queue is known (run id → task queue), bounded. */
const MAX_KNOWN = 1000;

export function ownWorkflowsOnly(): ActivityInterceptorsFactory {
  const known = new Map<string, string>();
  return (ctx) => ({
    inbound: {
      async execute(input, next) {
        const { info } = ctx;
        const run = info.workflowExecution;
        if (info.isLocal || !run) return next(input);
        let queue = known.get(run.runId);
        if (queue === undefined) {
          queue = (await ctx.client.workflow.getHandle(run.workflowId, run.runId).describe()).taskQueue;
          if (known.size >= MAX_KNOWN) known.delete(known.keys().next().value as string);
          known.set(run.runId, queue);
        }
        // Data activities run on the data host's queue `<workflow's queue>-data` (src/workflows/common/data-host-aware.ts).
        if (queue !== info.taskQueue && dataTaskQueue(queue) !== info.taskQueue) {
          throw ApplicationFailure.nonRetryable(
            `${info.activityType} refused: it was scheduled by workflow ${run.workflowId} (${info.workflowType ?? '?'}, run ${run.runId}), which runs on task queue ${queue}, not ${info.taskQueue}: only llmchat-ops's own workflows may run its activities; nothing was done`.slice(0, 600),
            'ForeignWorkflow',
          );
        }
        return next(input);
      },
    },
  });
}
