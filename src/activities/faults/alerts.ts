/**
 * The alert lifecycle's side of Temporal itself: fault reports reach the one alert workflow of their fault key by
 * signal-with-start, and cleared checks signal it if it exists. (Recoveries look for a running deploy, rollback
 * or restore with `runningConflicts` from ./temporal.ts.)
 */
import { Context } from '@temporalio/activity';
import { WorkflowFailedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import { getEnvironment, type FaultThresholds, type OpsConfig } from '../../common/config/index.js';
import { alertWorkflowId, faultDetectionRunId } from './faults.js';
import { EnvironmentKey, OperationKey, RequestedByKey } from '../../common/search-attributes.js';
// The workflows are started by their type name (from shared.ts), so this module never imports workflow code.
import {
  ALERT_LIFECYCLE_WORKFLOW,
  CHECK_NAME,
  FAULT_DETECTION_WORKFLOW,
  faultClearedSignal,
  faultReportedSignal,
  recoveryRecordedSignal,
  type AlertLifecycleInput,
  type FaultDetectionReport,
  type FaultReport,
  type RecoveryRecord,
} from '../../workflows/faults/shared.js';
import { createEnvironmentActivities, type EnvironmentSummary } from '../common/environment.js';
import { permanentOnKnownErrors } from '../common/failures.js';

export interface AlertPolicy {
  environment: EnvironmentSummary;
  escalateAfterMs: number;
  graceMs: number;
}

/** What the fault-detection workflow needs to know: names, thresholds and switches — no URLs or secrets. */
export interface FaultPolicy extends AlertPolicy {
  thresholds: FaultThresholds;
  recoveryEnabled: boolean;
}

function requireCheck(check: unknown): string {
  if (typeof check !== 'string' || !CHECK_NAME.test(check)) throw ApplicationFailure.nonRetryable(`Expected a check name, got ${JSON.stringify(check)?.slice(0, 80)}`, 'BadInput');
  return check;
}

export function createAlertActivities(cfg: OpsConfig) {
  const { describeEnvironment } = createEnvironmentActivities(cfg);
  /** The worker's own client (the activity context's): no extra connection per call. */
  const withClient = <T>(fn: (client: Client) => Promise<T>): Promise<T> => fn(Context.current().client);

  return {
    async describeAlertPolicy(environment: string): Promise<AlertPolicy> {
      return { environment: await describeEnvironment(environment), escalateAfterMs: cfg.alerts.escalateAfter, graceMs: cfg.alerts.grace };
    },

    async describeFaultPolicy(environment: string): Promise<FaultPolicy> {
      const summary = await describeEnvironment(environment);
      const fd = getEnvironment(cfg, environment).faultDetection;
      return { environment: summary, escalateAfterMs: cfg.alerts.escalateAfter, graceMs: cfg.alerts.grace, thresholds: fd.thresholds, recoveryEnabled: fd.recovery.enabled };
    },

    /** Signal-with-start: the fault key's alert workflow is created by its first report and fed by the rest. */
    async reportFaults(input: { environment: string; reports: { check: string; report: FaultReport }[] }): Promise<string[]> {
      await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      return withClient(async (client) => {
        const ids: string[] = [];
        for (const { check, report } of input.reports) {
          const workflowId = alertWorkflowId(input.environment, requireCheck(check));
          await client.workflow.signalWithStart(ALERT_LIFECYCLE_WORKFLOW, {
            taskQueue: cfg.temporal.taskQueue,
            workflowId,
            args: [{ environment: input.environment, check } satisfies AlertLifecycleInput],
            signal: faultReportedSignal,
            signalArgs: [report],
            typedSearchAttributes: [
              { key: EnvironmentKey, value: input.environment },
              { key: OperationKey, value: 'alert' },
            ],
          });
          ids.push(workflowId);
        }
        return ids;
      });
    },

    /** Tells the open alerts of these checks (if any) that the check passed; returns the alerts that were open. */
    async clearFaults(input: { environment: string; checks: string[]; detectedBy: string }): Promise<string[]> {
      await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      return withClient(async (client) => {
        const cleared: string[] = [];
        for (const check of input.checks) {
          const id = alertWorkflowId(input.environment, requireCheck(check));
          try {
            await client.workflow.getHandle(id).signal(faultClearedSignal, { detectedBy: input.detectedBy });
            cleared.push(id);
          } catch (err) {
            if (!(err instanceof WorkflowNotFoundError)) throw err; // no open alert for this check: nothing to clear
          }
        }
        return cleared;
      });
    },

    /**
     * Joins the environment's one detection run (signal-with-start under llmchat-faults-<env>): signals the running
     * one, or starts it. Returns the run that answers.
     */
    async joinFaultDetection(input: { environment: string; requestedBy: string }): Promise<{ workflowId: string; runId: string }> {
      await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      return withClient((client) => signalFaultDetection(client, cfg.temporal.taskQueue, input.environment, input.requestedBy));
    },

    /** Waits for that run's report, heartbeating; a failed run fails the caller with its failure's type. */
    async awaitFaultDetection(input: { workflowId: string; runId: string }): Promise<FaultDetectionReport> {
      const ctx = Context.current();
      const result = ctx.client.workflow.getHandle(input.workflowId, input.runId).result() as Promise<FaultDetectionReport>;
      const beat = setInterval(() => ctx.heartbeat({ waitingFor: input.workflowId }), 5_000);
      try {
        return await Promise.race([result, ctx.cancelled]);
      } catch (err) {
        if (err instanceof WorkflowFailedError) {
          const cause = err.cause as (Error & { type?: string }) | undefined;
          throw ApplicationFailure.nonRetryable(`the detection run ${input.workflowId} (${input.runId}) failed: ${cause?.message ?? err.message}`, cause?.type ?? 'DetectionFailed');
        }
        throw err;
      } finally {
        clearInterval(beat);
      }
    },

    async recordRecovery(input: { environment: string; check: string; record: RecoveryRecord }): Promise<void> {
      await withClient(async (client) => {
        try {
          await client.workflow.getHandle(alertWorkflowId(input.environment, requireCheck(input.check))).signal(recoveryRecordedSignal, input.record);
        } catch (err) {
          if (!(err instanceof WorkflowNotFoundError)) throw err; // the alert already ended (resolved): nothing to add to
        }
      });
    },

  };
}

/**
 * Signal-with-start of the environment's one detection run: the running run records the request, or a new run
 * starts with it. Used by the trigger runs, the Alertmanager receiver and `llmchat-ops detect`.
 */
export async function signalFaultDetection(client: Client, taskQueue: string, environment: string, requestedBy: string): Promise<{ workflowId: string; runId: string }> {
  const workflowId = faultDetectionRunId(environment);
  const handle = await client.workflow.signalWithStart(FAULT_DETECTION_WORKFLOW, {
    taskQueue,
    workflowId,
    args: [{ environment, requestedBy }],
    signal: 'detectionRequested',
    signalArgs: [{ by: requestedBy }],
    typedSearchAttributes: [
      { key: EnvironmentKey, value: environment },
      { key: OperationKey, value: 'faultDetection' },
      { key: RequestedByKey, value: requestedBy },
    ],
  });
  return { workflowId, runId: handle.signaledRunId };
}
