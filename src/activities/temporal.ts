/**
 * Activities that ask Temporal itself: which operations of an environment are running right now. Used by the
 * maintenance workflows to stay out of the way of a backup, restore or deploy of the same environment.
 */
import { Context } from '@temporalio/activity';
import { WorkflowNotFoundError } from '@temporalio/client';
import type { OpsConfig } from '../config.js';
import { dataWorkflowId, releaseWorkflowId } from '../names.js';
import { asFailure } from './failures.js';
import { getEnvironment } from '../config.js';

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
  };
}
