/**
 * 版本回滚 — the guide's rollback.sh without its outage and without `read -p`: the target version (default: the
 * previous release) is brought up beside the current one, health-gated, switched to, and the current one stopped.
 * The database goes down to the target's recorded migration level only when asked for, and only after a person
 * approves (approveDatabaseRollback, four eyes). The versions are recorded.
 */
import { ApplicationFailure, CancellationScope, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { ReleasePlan } from '../../activities/release/release.js';
import type { ReleaseOutcome } from '../../activities/release/release-store.js';
import { EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey, VersionKey } from '../../common/search-attributes.js';
import { installApprovalGate } from '../common/approval.js';
import { undoSwitch, type SwitchState } from './front-switch.js';
import { listReleasesInputSchema, rollbackInputSchema } from './shared.js';
import { parseInput } from '../common/inputs.js';
import { bringUp, drainStep, durableSleep, notify, quick, releaseOf, restorePrevious, run, stopSlot } from './release-steps.js';
import { databaseRollback } from './database-rollback.js';
import { message } from './failures.js';
import { Tracker } from './tracker.js';
import { DOCKER, QUICK, WAITS } from '../common/activity-options.js';
import { DB_ROLLBACK_GATE, type ReleaseProgress } from './shared.js';

import type { RollbackInput } from './shared.js';
export type { RollbackInput };

export interface RollbackResult {
  environment: string;
  version: string;
  fromVersion: string | null;
  outcome: ReleaseOutcome;
  database?: { decision: string; by?: string; level?: number; error?: string };
  progress: ReleaseProgress;
}

export async function rollback(rawInput: RollbackInput): Promise<RollbackResult> {
  const input = parseInput('rollback', rollbackInputSchema, rawInput);
  const { environment, requestedBy } = input;
  const gate = installApprovalGate(DB_ROLLBACK_GATE, requestedBy);
  const startedAt = new Date().toISOString();
  const { workflowId, runId } = workflowInfo();
  const t = new Tracker({ operation: 'rollback', environment, version: input.version ?? '(previous)', fromVersion: null, requestedBy, startedAt }, ['plan', 'image', 'switch', 'health-gate', 'drain', 'database']);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'rollback' },
    { key: RequestedByKey, value: requestedBy },
    { key: OutcomeKey, value: 'running' },
  ]);

  let plan: ReleasePlan;
  try {
    plan = await t.step('plan', () => run(QUICK, 'beginRelease', 'plan rollback', { environment, operation: 'rollback', ...(input.version ? { version: input.version } : {}), requestedBy, workflowId, runId, startedAt }),
      (p) => `${p.current?.version ?? '(nothing)'} in ${p.current?.slot ?? '-'} → ${p.target.version} in ${p.target.slot}${p.frontConfig && p.frontConfig.state !== 'absent' ? `; ${p.frontConfig.detail}` : ''}`);
  } catch (err) {
    gate.close('the rollback was refused before it began');
    t.finish('failed-before-change', message(err));
    throw ApplicationFailure.nonRetryable(`rollback of ${environment} refused, nothing was changed: ${message(err)}`, 'RollbackRefused');
  }
  const version = plan.target.version;
  t.progress.version = version;
  t.progress.fromVersion = plan.current?.version ?? null;
  upsertSearchAttributes([{ key: VersionKey, value: version }]);

  let switched = false;
  const sw: SwitchState = { attempted: false };
  let switchedAt = 0;
  let started = false;
  let level: number | null = plan.current?.migrationLevel ?? null;
  let db: RollbackResult['database'];
  const entry = (outcome: ReleaseOutcome, detail: string) => ({
    runId, workflowId, operation: 'rollback' as const, version, fromVersion: plan.current?.version ?? null, requestedBy, startedAt,
    finishedAt: new Date().toISOString(), durationMs: Date.now() - Date.parse(startedAt), outcome,
    migrationBefore: plan.current?.migrationLevel ?? null, migrationAfter: level, backupId: null, detail,
  });
  try {
    await t.step('image', () => run(DOCKER, 'prepareImage', `image ${plan.target.image}`, { environment, version }), (r) => `${r.image} ${r.source}`);
    started = true;
    await t.step('switch', () => bringUp(plan, plan.target, () => ((switched = true), (switchedAt = Date.now())), sw), (d) => d);
    await t.step('health-gate', async () => {
      const g = await run(WAITS, 'healthGate', `health gate of ${version}`, { environment, slot: plan.target.slot, timeoutMs: plan.healthTimeoutMs, successes: plan.healthySuccesses });
      if (!g.healthy) throw ApplicationFailure.nonRetryable(`not healthy within ${plan.healthTimeoutMs / 1000} s: ${g.lastProblem}`, 'HealthGateFailed');
      return g;
    }, (g) => `healthy after ${g.elapsedMs} ms`);
  } catch (err) {
    return CancellationScope.nonCancellable(async () => {
      let what = 'nothing was changed';
      let outcome: ReleaseOutcome = switched ? 'app-rolled-back' : 'failed-before-change';
      if (switched && plan.current) {
        what = await restorePrevious(plan).catch((e) => `putting ${plan.current?.version} back FAILED: ${message(e)}`);
      } else if (sw.attempted) {
        // As in deploy: the front back first (the switch did that itself when it could), then the new slot stopped.
        const undo = await undoSwitch(plan, sw, () => stopSlot(plan, plan.target.slot, version, plan.target.port), () => restorePrevious(plan)).catch((e: unknown) => ({ text: `putting the front back FAILED: ${message(e)}`, outcome: 'failed' as const }));
        what = undo.text;
        outcome = undo.outcome;
      } else if (started && plan.strategy === 'blue-green' && plan.target.slot !== plan.current?.slot) {
        await stopSlot(plan, plan.target.slot, version, plan.target.port);
        what = `the front was never switched: ${plan.current?.version ?? 'nothing'} kept serving`;
      }
      const msg = `rollback of ${environment} to ${version} failed: ${message(err)}; ${what}`;
      gate.close('the rollback failed before its database step');
      await run(QUICK, 'finishRelease', 'record the failed rollback', { environment, entry: entry(outcome, msg) });
      t.finish(outcome, msg);
      await notify(plan, 'critical', 'rollback_failed', `Rollback of ${environment} to ${version} failed`, msg, 'outcome');
      throw ApplicationFailure.nonRetryable(msg, 'RollbackFailed', { outcome, progress: t.progress });
    });
  }

  const old = plan.current;
  await drainStep(t, plan, switchedAt);

  let outcome: ReleaseOutcome = 'success';
  if (input.database) {
    const current = await run(DOCKER, 'migrationLevel', 'migration level now', { environment, version: old?.version ?? version });
    level = current;
    const to = plan.targetMigrationLevel;
    if (to === null) {
      gate.close('the target version has no recorded migration level');
      t.skip('database', `no migration level is recorded for ${version}; the database stays at level ${current}`);
      outcome = 'database-left';
    } else if (current <= to) {
      gate.close('the database is already at the target level');
      t.skip('database', `already at level ${current} (target ${to})`);
    } else {
      const r = await databaseRollback({ plan, gate, tracker: t, version: old?.version ?? version, fromLevel: current, toLevel: to, requestedBy, why: `rollback to ${version}` });
      db = { decision: r.decision, ...(r.by ? { by: r.by } : {}), ...(r.level !== undefined ? { level: r.level } : {}), ...(r.error ? { error: r.error } : {}) };
      if (r.decision === 'approved' && r.error) {
        level = r.level ?? null;
        outcome = 'failed';
      } else if (r.decision === 'approved') {
        level = r.level ?? to;
        outcome = 'database-rolled-back';
      } else outcome = 'database-left';
    }
  } else {
    gate.close('this rollback does not touch the database');
    t.skip('database', 'not requested');
  }

  const dbPart = !db ? '' : db.error ? `; database migrate-down FAILED after approval by ${db.by}: ${db.error}; it is at level ${db.level ?? '(could not be read)'}` : `; database ${db.decision === 'approved' ? `migrated down to level ${db.level}` : `left as it is (${db.decision})`}`;
  const msg = `${version} serves ${environment} again (was ${old?.version ?? 'nothing'})${dbPart}`;
  await run(QUICK, 'finishRelease', 'record the rollback', { environment, entry: entry(outcome, msg), serving: releaseOf(plan, plan.target, level, requestedBy) });
  t.finish(outcome, msg);
  if (outcome === 'failed') {
    // The app serves the target version; the approved database part did not happen as approved.
    await notify(plan, 'critical', 'rollback_failed', `Rollback of ${environment} to ${version}: the database part failed`, msg, 'outcome');
    throw ApplicationFailure.nonRetryable(msg, 'RollbackFailed', { outcome, progress: t.progress, ...(db ? { database: db } : {}) });
  }
  await notify(plan, outcome === 'success' || outcome === 'database-rolled-back' ? 'info' : 'warning', 'rollback_finished', `Rollback of ${environment} to ${version}: ${outcome}`, msg, 'outcome');
  return { environment, version, fromVersion: old?.version ?? null, outcome, ...(db ? { database: db } : {}), progress: t.progress };
}

/** The release records of an environment, for `llmchat-ops releases` (read on the worker, which holds them). */
export async function listReleases(input: { environment: string }) {
  const { environment } = parseInput('listReleases', listReleasesInputSchema, input);
  return quick.readReleaseRecords({ environment });
}
