/**
 * The release records (src/activities/release/release-store.ts) as activities: what a deploy or rollback will do, given what
 * the environment runs now; the lease that keeps releases of one environment one at a time; the record of how
 * each ended; the history for `llmchat-ops releases`.
 */
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { describeRecord, loadSwitchRecord } from './checked-switch.js';
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { addHistory, loadReleases, updateReleases, type Release, type ReleaseHistoryEntry, type ReleaseOutcome, type ReleaseState, type SlotName } from './release-store.js';
import { checkFrontDrift, type FrontDrift } from './front-drift.js';
import { renderedFor } from './nginx-front.js';
import { dataWorkflowId, releaseWorkflowId } from '../../common/names.js';
import { guarded, permanent } from '../common/activity-support.js';
import { imageRef, projectContainers, slotProject } from './docker.js';
import { frontOf } from './front.js';

export interface ReleasePlan {
  environment: string;
  operation: 'deploy' | 'rollback';
  strategy: 'blue-green' | 'recreate';
  current: Release | null;
  previous: Release | null;
  target: { version: string; image: string; slot: SlotName; port: number };
  /** rollback: the migration level recorded for the target version (null: unknown). */
  targetMigrationLevel: number | null;
  healthTimeoutMs: number;
  healthySuccesses: number;
  drainMs: number;
  bake: { durationMs: number; intervalMs: number; errorRatePercent: number; avgLatencyMs: number; minRequests: number };
  approvalTimeoutMs: number;
  escalateAfterMs: number;
  allowSelfApproval: boolean;
  backupBeforeDeploy: boolean;
  testsConfigured: boolean;
  /** What an approved database rollback of a failed deploy does (absent in plans recorded before it existed: migrate-down). */
  databaseRollback?: 'migrate-down' | 'restore-backup';
  /**
   * blue-green: the front's nginx config compared with what llmchat-ops last wrote (a hand edit is kept aside as
   * nginx.conf.hand-edit-<time> before the switch rewrites it). Absent in plans recorded before it existed.
   */
  frontConfig?: FrontDrift;
}

export interface BeginReleaseInput {
  environment: string;
  operation: 'deploy' | 'rollback';
  /** deploy: required; rollback: default the previous release. */
  version?: string;
  requestedBy: string;
  workflowId: string;
  runId: string;
  startedAt: string;
  /** deploy: the pre-deploy backup is skipped on request. */
  skipBackup?: boolean;
}

async function isRunning(workflowId: string, runId?: string): Promise<{ running: boolean; type?: string; startTime?: Date } | undefined> {
  try {
    const d = await Context.current().client.workflow.getHandle(workflowId, runId).describe();
    return { running: d.status.name === 'RUNNING', type: d.type, startTime: d.startTime };
  } catch (err) {
    if ((err as Error).name === 'WorkflowNotFoundError') return undefined;
    throw err;
  }
}

export function createReleaseActivities(cfg: OpsConfig) {
  const envOf = (name: string) => getEnvironment(cfg, name);
  return {
    /**
     * Decides what the release will do and takes the environment's release lease. Refused (permanently, before
     * anything changes) while another release of the environment or a backup/restore of its data runs.
     */
    async beginRelease(input: BeginReleaseInput): Promise<ReleasePlan> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const data = await isRunning(dataWorkflowId(input.environment));
        if (data?.running) {
          throw permanent(
            `a ${data.type} of ${input.environment}'s data is running (workflow ${dataWorkflowId(input.environment)}, started ${data.startTime?.toISOString()}); nothing was changed — deploy after it ends`,
            'DataOperationRunning',
          );
        }
        const d = env.deploy;
        if (input.operation === 'deploy' && d.databaseRollback === 'restore-backup') {
          // The database rollback restores this deploy's own backup, pre-approved through the release's gate: the
          // restore trusts that approval only from the environment's release workflow id (src/workflows/backup/restore.ts).
          if (input.skipBackup) {
            throw permanent(`${input.environment} rolls a failed deploy's database back by restoring the pre-deploy backup (deploy.databaseRollback: restore-backup); it cannot be skipped. Nothing was changed`, 'BadInput');
          }
          if (input.workflowId !== releaseWorkflowId(input.environment)) {
            throw permanent(`${input.environment} rolls a failed deploy's database back by restoring the pre-deploy backup (deploy.databaseRollback: restore-backup), which is trusted only from workflow id ${releaseWorkflowId(input.environment)}; this deploy runs as ${input.workflowId}. Nothing was changed`, 'BadInput');
          }
        }
        if (d.strategy === 'blue-green') {
          const legacy = await projectContainers(env, slotProject(env, 'main'));
          if (legacy.some((c) => c.state === 'running')) {
            throw permanent(
              `${input.environment} is configured for blue-green but its app still runs in place (compose project ${env.compose.project}); adopt it once with \`llmchat-ops up --env ${input.environment}\``,
              'NotAdopted',
            );
          }
        }
        return updateReleases(env, input.environment, async (state: ReleaseState) => {
          if (state.lease && state.lease.runId !== input.runId) {
            const other = await isRunning(state.lease.workflowId, state.lease.runId);
            if (other?.running) {
              const l = state.lease;
              throw permanent(`a ${l.operation} of ${l.version} to ${input.environment} is running (workflow ${l.workflowId}, requested by ${l.requestedBy}, started ${l.startedAt}); nothing was changed`, 'ReleaseRunning');
            }
          }
          // A switch of the front that did not finish (its run was lost before it could put the front back): the
          // front may serve an unverified build, so nothing new starts until `up` has put it back.
          const pending = await loadSwitchRecord(env, input.environment);
          if (pending && pending.runId !== input.runId) {
            throw ApplicationFailure.nonRetryable(`${describeRecord(pending)}: the front may serve an unverified build. Put it back on the recorded release with \`llmchat-ops up --env ${input.environment}\`, then ${input.operation} again; nothing was changed`, 'FrontSwitchUnfinished');
          }
          let version = input.version;
          let targetMigrationLevel: number | null = null;
          if (input.operation === 'rollback') {
            version ??= state.previous?.version;
            if (!version) throw permanent(`no previous release of ${input.environment} is recorded; name the version to roll back to`, 'NothingToRollBackTo');
            const last = [...state.history].reverse().find((h) => h.version === version && (h.outcome === 'success' || h.operation === 'bootstrap'));
            targetMigrationLevel = state.previous?.version === version ? state.previous.migrationLevel : (last?.migrationAfter ?? null);
          }
          if (!version) throw permanent('a deploy needs a version', 'BadInput');
          const front = d.strategy === 'blue-green' && d.front ? frontOf(env) : undefined;
          const frontConfig = front ? await checkFrontDrift(front.prefix, (t) => renderedFor(front, t)) : undefined;
          const slot: SlotName = d.strategy === 'recreate' ? 'main' : state.current?.slot === 'blue' ? 'green' : 'blue';
          const port = slot === 'main' ? Number(new URL(env.url).port || 80) : (d.front?.slots[slot] as number);
          state.lease = { workflowId: input.workflowId, runId: input.runId, operation: input.operation, version, requestedBy: input.requestedBy, startedAt: input.startedAt };
          return {
            environment: input.environment,
            operation: input.operation,
            strategy: d.strategy,
            current: state.current,
            previous: state.previous,
            target: { version, image: imageRef(env, version), slot, port },
            targetMigrationLevel,
            healthTimeoutMs: d.healthTimeout,
            healthySuccesses: d.healthySuccesses,
            drainMs: d.front?.drain ?? 0,
            bake: { durationMs: d.bake.duration, intervalMs: d.bake.interval, errorRatePercent: d.bake.errorRatePercent, avgLatencyMs: d.bake.avgLatencyMs, minRequests: d.bake.minRequests },
            approvalTimeoutMs: d.approvalTimeout,
            escalateAfterMs: d.escalateAfter,
            allowSelfApproval: cfg.approvals.allowSelfApproval,
            backupBeforeDeploy: d.backupBeforeDeploy,
            testsConfigured: env.commands.test !== undefined,
            databaseRollback: d.databaseRollback,
            ...(frontConfig ? { frontConfig } : {}),
          };
        });
      });
    },

    /**
     * Records how a release ended: the history entry (once per run, also on retries), the serving release when it
     * changed (the old current becomes previous), and frees the lease.
     */
    async finishRelease(input: { environment: string; entry: ReleaseHistoryEntry; serving?: Release }): Promise<void> {
      return guarded(async () => {
        const env = envOf(input.environment);
        await updateReleases(env, input.environment, (state) => {
          if (input.serving && state.current?.runId !== input.serving.runId) {
            if (state.current && state.current.version !== input.serving.version) state.previous = state.current;
            state.current = input.serving;
          }
          addHistory(state, input.entry);
          if (state.lease?.runId === input.entry.runId) state.lease = null;
        });
      });
    },

    /** The release records of an environment (current, previous, history newest first). */
    async readReleaseRecords(input: { environment: string }): Promise<ReleaseState> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const state = await loadReleases(env, input.environment);
        return { ...state, history: [...state.history].reverse() };
      });
    },
  };
}

export type { ReleaseOutcome };
