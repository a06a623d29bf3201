/**
 * 部署流程 — the guide's deploy.sh as a workflow: pre-deploy backup → tests → image → migrate up → switch →
 * health gate → verify → bake. Unlike the script it never stops half-way: any failure after the app switched puts
 * the previous version back by itself; a database that was migrated is rolled back only when a person approves
 * (approveDatabaseRollback / rejectDatabaseRollback, four eyes), with an alert when nobody answers.
 */
import { ApplicationFailure, CancellationScope, executeChild, isCancellation, patched, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { ReleasePlan } from '../../activities/release/release.js';
import type { FrontDrift } from '../../activities/release/front-drift.js';
import { judgeBake, type AppMetricsSample } from '../../activities/release/metrics.js';
import type { ReleaseOutcome } from '../../activities/release/release-store.js';
import { dataWorkflowId } from '../../common/names.js';
import { EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey, VersionKey } from '../../common/search-attributes.js';
import { installApprovalGate } from '../common/approval.js';
import { undoSwitch, type SwitchState } from './front-switch.js';
import { drainOldSlot, installServingUpdate } from './deploy-serving.js';
import { backup } from '../backup/backup.js';
import { parseInput } from '../common/inputs.js';
import { deployInputSchema } from './shared.js';
import { bakeIntervalMs } from '../common/waits.js';
import { bringUp, drainStep, durableSleep, notify, releaseOf, restorePrevious, run, stopSlot } from './release-steps.js';
import { databaseRollback } from './database-rollback.js';
import { message } from './failures.js';
import { Tracker } from './tracker.js';
import { DOCKER, QUICK, WAITS } from '../common/activity-options.js';
import { DB_ROLLBACK_GATE, type ReleaseProgress } from './shared.js';

import type { DeployInput } from './shared.js';
export type { DeployInput };

export interface DeployResult {
  environment: string;
  version: string;
  fromVersion: string | null;
  outcome: ReleaseOutcome;
  backupId?: string;
  migration?: { before: number; after: number };
  progress: ReleaseProgress;
  /** blue-green: the front's config as the plan found it (edited by hand: kept aside, reported, alerted). */
  frontConfig?: FrontDrift;
}

const STEPS = ['plan', 'backup', 'tests', 'image', 'migrate', 'switch', 'health-gate', 'verify', 'bake', 'drain'];
/** Since plan-refuses-what-cannot-work: the image is made available before the backup (an unavailable one is refused). */
const STEPS_IMAGE_FIRST = ['plan', 'image', 'backup', 'tests', 'migrate', 'switch', 'health-gate', 'verify', 'bake', 'drain'];

export async function deploy(rawInput: DeployInput): Promise<DeployResult> {
  const input = parseInput('deploy', deployInputSchema, rawInput);
  const { environment, version, requestedBy } = input;
  // Decision handlers first, so no early approveDatabaseRollback finds no handler.
  const gate = installApprovalGate(DB_ROLLBACK_GATE, requestedBy);
  // The plan refuses what cannot work: the image is made available (present, built or pulled) before the backup, so
  // a version that cannot be had is refused with nothing taken or changed; a hand edit of the front's config is
  // reported and alerted before the switch rewrites it. Runs recorded before this change replay the old order.
  const planFirst = patched('plan-refuses-what-cannot-work');
  const startedAt = new Date().toISOString();
  const { workflowId, runId } = workflowInfo();
  const t = new Tracker({ operation: 'deploy', environment, version, fromVersion: null, requestedBy, startedAt }, planFirst ? STEPS_IMAGE_FIRST : STEPS);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'deploy' },
    { key: VersionKey, value: version },
    { key: RequestedByKey, value: requestedBy },
    { key: OutcomeKey, value: 'running' },
  ]);
  installServingUpdate(t);

  let plan: ReleasePlan;
  try {
    plan = await t.step('plan', () => run(QUICK, 'beginRelease', `plan deploy of ${version}`, { environment, operation: 'deploy', version, requestedBy, workflowId, runId, startedAt, ...(input.skipBackup ? { skipBackup: true } : {}) }),
      (p) => `${p.strategy}: ${p.current?.version ?? '(nothing)'} in ${p.current?.slot ?? '-'} → ${version} in ${p.target.slot} (:${p.target.port})${p.frontConfig && p.frontConfig.state !== 'absent' ? `; ${p.frontConfig.detail}` : ''}`);
  } catch (err) {
    gate.close('the deploy was refused before it began');
    t.finish('failed-before-change', message(err));
    throw ApplicationFailure.nonRetryable(`deploy of ${version} to ${environment} refused, nothing was changed: ${message(err)}`, 'DeployRefused');
  }
  t.progress.fromVersion = plan.current?.version ?? null;
  const handEdit = planFirst && plan.frontConfig?.state === 'edited' ? plan.frontConfig : undefined;

  let backupId: string | undefined;
  let migration: { before: number; after: number } | undefined;
  let started = false;
  let switched = false;
  const sw: SwitchState = { attempted: false };
  let failedStep = '';
  /** What the outcome says about a hand-edited front config (nothing when it was as written). */
  const frontNote = () => {
    if (!handEdit) return '';
    const kept = handEdit.keptAs ? ` (kept as ${handEdit.keptAs})` : '';
    const now = switched ? 'rewritten by the switch' : started ? 'rewritten if the switch reached the front' : 'not rewritten (the front was not switched)';
    return `; the front config had been edited by hand since llmchat-ops wrote it${handEdit.writtenAt ? ` at ${handEdit.writtenAt}` : ''}${kept}, ${now}`;
  };
  const finishedEntry = (outcome: ReleaseOutcome, detail: string) => ({
    runId,
    workflowId,
    operation: 'deploy' as const,
    version,
    fromVersion: plan.current?.version ?? null,
    requestedBy,
    startedAt,
    finishedAt: new Date().toISOString(),
    durationMs: Date.now() - Date.parse(startedAt),
    outcome,
    migrationBefore: migration?.before ?? null,
    migrationAfter: migration?.after ?? null,
    backupId: backupId ?? null,
    detail,
  });

  const imageStep = async () => {
    failedStep = 'image';
    await t.step('image', () => run(DOCKER, 'prepareImage', `image ${plan.target.image}`, { environment, version }), (r) => `${r.image} ${r.source} (${r.imageId.slice(7, 19)})`);
  };

  try {
    // 0. what the plan found: a hand-edited front config is alerted before anything rewrites it; then the image, so
    //    a version whose image is absent and can be neither built nor pulled is refused before the backup
    failedStep = 'plan';
    if (handEdit) {
      await notify(plan, 'warning', 'front_config_edited', `The front config of ${environment} was edited by hand`,
        `${handEdit.file}: ${handEdit.detail}. The deploy of ${version} (requested by ${requestedBy}) rewrites it when it switches the front; carry the edit into the ops config if it is still needed.`, 'front-config');
    }
    if (planFirst) await imageStep();

    // 1. pre-deploy backup: the existing backup workflow, under the data id (so never during a restore)
    failedStep = 'backup';
    if (plan.backupBeforeDeploy && !input.skipBackup) {
      const b = await t.step('backup', async () => {
        try {
          return await executeChild(backup, {
            workflowId: dataWorkflowId(environment),
            args: [{ environment, kinds: ['database'], reason: `before deploying ${version}`, requestedBy }],
          });
        } catch (err) {
          if (err instanceof WorkflowExecutionAlreadyStartedError) {
            throw ApplicationFailure.nonRetryable(`a backup or restore of ${environment} is running (${dataWorkflowId(environment)}); nothing was changed`, 'DataOperationRunning');
          }
          throw err;
        }
      }, (r) => `${r.backupId} (${r.manifest.verification?.status ?? 'unverified'})`);
      backupId = b.backupId;
      t.progress.backupId = backupId;
    } else t.skip('backup', input.skipBackup ? 'skipped on request' : 'deploy.backupBeforeDeploy is off');

    // 2. tests
    failedStep = 'tests';
    if (plan.testsConfigured && !input.skipTests) {
      await t.step('tests', () => run(DOCKER, 'runTests', `tests of ${version}`, { environment, version }), (r) => `passed in ${Math.round(r.durationMs / 100) / 10} s`);
    } else t.skip('tests', input.skipTests ? 'skipped on request' : 'no test command configured');

    // 3. build or pull (runs recorded before plan-refuses-what-cannot-work)
    if (!planFirst) await imageStep();

    // 4. migrate up, level before and after recorded
    failedStep = 'migrate';
    const before = await run(DOCKER, 'migrationLevel', 'migration level before', { environment, version });
    migration = { before, after: before };
    t.progress.migration = migration;
    try {
      const m = await t.step('migrate', () => run(DOCKER, 'migrateUp', `migrate up with ${version}`, { environment, version, before }), (r) => `level ${before} → ${r.after}${r.applied.length ? ` (${r.applied.join(', ')})` : ''}`);
      migration.after = m.after;
    } catch (err) {
      migration.after = await run(DOCKER, 'migrationLevel', 'migration level after the failure', { environment, version });
      throw err;
    }

    // 5. switch without dropping requests
    failedStep = 'switch';
    started = true;
    let switchedAt = 0;
    await t.step('switch', () => bringUp(plan, plan.target, () => ((switched = true), (switchedAt = Date.now())), sw), (d) => d);

    // 6. health gate through the front, container health included
    failedStep = 'health-gate';
    // The checked switch has just asked /health, /health/db and /health/redis through the front (after five answers
    // of the new version): that is the first of the gate's checks in a row, and the gate asks the rest (each with the
    // slot's containers) — one poll interval less on the way to "serving and verified" (issue 18). Runs recorded
    // before asked all of them here.
    const fromSwitch = plan.strategy === 'blue-green' && plan.healthySuccesses > 1 && patched('front-switch-checked') && patched('health-gate-counts-switch-check') ? 1 : 0;
    await t.step('health-gate', async () => {
      const g = await run(WAITS, 'healthGate', `health gate of ${version}`, { environment, slot: plan.target.slot, timeoutMs: plan.healthTimeoutMs, successes: plan.healthySuccesses - fromSwitch });
      if (!g.healthy) throw ApplicationFailure.nonRetryable(`not healthy within ${plan.healthTimeoutMs / 1000} s: ${g.lastProblem}`, 'HealthGateFailed');
      return g;
    }, (g) => `healthy ${plan.healthySuccesses}× in a row after ${g.elapsedMs} ms${fromSwitch ? ' (the first: the switch\'s check through the front)' : ''}`);

    // 7. verify: the version it reports, smoke checks
    failedStep = 'verify';
    await t.step('verify', async () => {
      const v = await run(QUICK, 'verifyRelease', `verify ${version}`, { environment, version });
      if (!v.ok) throw ApplicationFailure.nonRetryable(`verify failed: ${v.problems.join('; ')}`, 'VerifyFailed');
      return v;
    }, (v) => v.checks.map((c) => `${c.what} ok`).join(', '));

    // 8. bake on a durable timer: error rate and latency of the new version's own requests
    failedStep = 'bake';
    const bakeMs = input.bakeSeconds !== undefined ? input.bakeSeconds * 1000 : plan.bake.durationMs;
    if (bakeMs > 0) {
      await t.step('bake', async () => {
        const first: AppMetricsSample = await run(QUICK, 'sampleAppMetrics', 'bake: first sample', { environment, port: plan.target.port });
        let verdict = judgeBake(first, first, plan.bake);
        // At most MAX_BAKE_SAMPLES samples however long the bake (bake-samples-bounded; older runs replay as they ran).
        const interval = bakeIntervalMs(bakeMs, plan.bake.intervalMs, patched('bake-samples-bounded'));
        for (let waited = 0; waited < bakeMs; ) {
          const step = Math.min(interval, bakeMs - waited);
          await durableSleep(step);
          waited += step;
          const now = await run(QUICK, 'sampleAppMetrics', `bake: sample after ${Math.round(waited / 1000)} s`, { environment, port: plan.target.port });
          verdict = judgeBake(first, now, plan.bake);
          if (!verdict.ok) throw ApplicationFailure.nonRetryable(`bake failed after ${Math.round(waited / 1000)} s: ${verdict.reason}`, 'BakeFailed');
        }
        return verdict;
      }, (v) => v.reason);
    } else t.skip('bake', 'bake period 0');

    const result = (): DeployResult => ({ environment, version, fromVersion: plan.current?.version ?? null, outcome: 'success', ...(backupId ? { backupId } : {}), ...(migration ? { migration } : {}), progress: t.progress, ...(planFirst && plan.frontConfig ? { frontConfig: plan.frontConfig } : {}) });
    if (patched('deploy-done-when-serving')) {
      // Done for the person waiting (issue 18): the new version serves and is verified. The drain and stop of the old
      // slot and the release records follow in this run; nothing after this point rolls the app back.
      t.serving();
      const left = await drainOldSlot(plan, t, switchedAt);
      let msg = `${version} serves ${environment}${plan.current ? ` (was ${plan.current.version})` : ''}${frontNote()}${left ? `; ${left}` : ''}`;
      const recorded = await CancellationScope.nonCancellable(() =>
        run(QUICK, 'finishRelease', 'record the release', { environment, entry: finishedEntry('success', msg), serving: releaseOf(plan, plan.target, migration?.after ?? null, requestedBy) }).then(() => undefined, (e: unknown) => message(e)),
      );
      if (recorded) msg += `; the release record could NOT be written: ${recorded}`;
      gate.close('the deploy succeeded; no database rollback is needed');
      t.finish('success', msg);
      // The alerts never turn the deploy into a failure: it serves, verified, and was reported so.
      await CancellationScope.nonCancellable(async () => {
        if (left || recorded) {
          await notify(plan, 'critical', 'deploy_cleanup_failed', `Deploy of ${version} to ${environment} serves, but ${left ? 'the old slot was not stopped' : 'its record was not written'}`, msg, 'cleanup').catch(() => undefined);
        }
        await notify(plan, 'info', 'deploy_succeeded', `Deploy of ${version} to ${environment} succeeded`, msg, 'outcome').catch(() => undefined);
      });
      return result();
    }

    // (Runs recorded before deploy-done-when-serving.) The old slot drains (nginx already sends it nothing new), then
    // stops; it stayed warm until now so that a failure above could switch back to it at once.
    failedStep = 'drain';
    await drainStep(t, plan, switchedAt);

    const msg = `${version} serves ${environment}${plan.current ? ` (was ${plan.current.version})` : ''}${frontNote()}`;
    await run(QUICK, 'finishRelease', 'record the release', { environment, entry: finishedEntry('success', msg), serving: releaseOf(plan, plan.target, migration.after, requestedBy) });
    gate.close('the deploy succeeded; no database rollback is needed');
    t.finish('success', msg);
    await notify(plan, 'info', 'deploy_succeeded', `Deploy of ${version} to ${environment} succeeded`, msg, 'outcome');
    return { environment, version, fromVersion: plan.current?.version ?? null, outcome: 'success', ...(backupId ? { backupId } : {}), migration, progress: t.progress, ...(planFirst && plan.frontConfig ? { frontConfig: plan.frontConfig } : {}) };
  } catch (err) {
    const cause = `${failedStep} failed: ${message(err)}`;
    // The image could not be had before anything was taken or changed: a refusal of the plan, not a failed deploy.
    const refused = planFirst && failedStep === 'image' && !isCancellation(err);
    // Compensation runs to the end even if the deploy is being cancelled.
    return CancellationScope.nonCancellable(async () => {
      const done: string[] = [];
      let outcome: ReleaseOutcome = 'failed-before-change';
      if (switched && plan.current) {
        try {
          await t.step('app-rollback', () => restorePrevious(plan), (d) => d);
          done.push(`app back on ${plan.current.version}`);
          outcome = 'app-rolled-back';
        } catch (rbErr) {
          done.push(`putting ${plan.current.version} back FAILED: ${message(rbErr)}`);
          outcome = 'failed';
        }
      } else if (switched) {
        done.push('no previous release to go back to');
        outcome = 'failed';
      } else if (sw.attempted) {
        // The switch failed or did not finish after the front may have been reloaded: the front back first (the
        // switch did that itself when it could), the new slot stopped only then.
        const undo = await t.step('app-rollback', () => undoSwitch(plan, sw, () => stopSlot(plan, plan.target.slot, version, plan.target.port), () => restorePrevious(plan)), (u) => u.text).catch((e: unknown) => ({ text: `putting the front back FAILED: ${message(e)}`, outcome: 'failed' as const }));
        done.push(undo.text);
        outcome = undo.outcome;
      } else if (started && plan.strategy === 'blue-green' && plan.target.slot !== plan.current?.slot) {
        await t.step('stop-new-slot', () => stopSlot(plan, plan.target.slot, version, plan.target.port), () => `slot ${plan.target.slot} stopped`);
        done.push(`the front was never switched: ${plan.current?.version ?? 'nothing'} kept serving`);
      }
      const restoreMode = plan.databaseRollback === 'restore-backup';
      if (migration && migration.after > migration.before && restoreMode && !backupId) {
        // Not reachable through the config and input checks (backupBeforeDeploy required, skipBackup refused).
        gate.close('there is no pre-deploy backup to restore');
        outcome = 'database-left';
        done.push(`database left at level ${migration.after}: deploy.databaseRollback is restore-backup but this deploy took no backup`);
      } else if (migration && migration.after > migration.before) {
        const db = await databaseRollback({ plan, gate, tracker: t, version, fromLevel: migration.after, toLevel: migration.before, requestedBy, why: `deploy of ${version} failed: ${cause}`, ...(restoreMode ? { restoreBackup: backupId } : {}) });
        if (db.decision === 'approved' && db.restore) {
          const r = db.restore;
          const where = `restore run ${r.workflowId}${r.runId ? ` (run ${r.runId})` : ''}`;
          if (!r.error) {
            outcome = 'database-rolled-back';
            done.push(`database restored from backup ${r.backupId} (approved by ${db.by}; ${where}${r.safetyBackupId ? `; the data from before the restore is in safety backup ${r.safetyBackupId}` : ''}; migration level ${db.level ?? 'unknown'})`);
          } else {
            outcome = 'failed';
            const state =
              db.level === undefined
                ? 'its migration level could not be read'
                : db.level === migration.after
                  ? `it is still the deploy's database at level ${db.level} (nothing was swapped in)`
                  : `it is at migration level ${db.level}`;
            done.push(`database restore from backup ${r.backupId} FAILED (approved by ${db.by}; ${where}): ${r.error}; the live database keeps its name (the restore swaps atomically) and ${state}`);
          }
        } else if (db.decision === 'approved' && db.error) {
          outcome = 'failed';
          done.push(`database migrate-down to level ${migration.before} FAILED (approved by ${db.by}): ${db.error}; the database is at level ${db.level ?? '(could not be read)'}`);
        } else if (db.decision === 'approved') {
          outcome = 'database-rolled-back';
          done.push(`database migrated down to level ${db.level} (approved by ${db.by})`);
        } else {
          outcome = 'database-left';
          done.push(`database left at level ${migration.after}: rollback ${db.decision}${db.by ? ` by ${db.by}` : ''}${db.comment ? ` (${db.comment})` : ''}`);
        }
      } else {
        gate.close('no migration ran, so there is no database rollback');
        if (outcome === 'failed-before-change') done.push('nothing was changed');
      }
      const msg = refused
        ? `deploy of ${version} to ${environment} refused at planning: the image ${plan.target.image} cannot be had: ${message(err)}; no backup was taken; nothing was changed${frontNote()}`
        : `deploy of ${version} to ${environment} failed at ${cause}; ${done.join('; ')}${frontNote()}`;
      await run(QUICK, 'finishRelease', 'record the failed release', { environment, entry: finishedEntry(outcome, msg) });
      t.finish(outcome, msg);
      if (refused) {
        await notify(plan, 'warning', 'deploy_refused', `Deploy of ${version} to ${environment} refused: its image cannot be had`, msg, 'outcome');
        throw ApplicationFailure.nonRetryable(msg, 'DeployRefused', { outcome, progress: t.progress });
      }
      await notify(plan, 'critical', 'deploy_failed', `Deploy of ${version} to ${environment}: ${outcome}`, msg, 'outcome');
      throw ApplicationFailure.nonRetryable(msg, 'DeployFailed', { outcome, progress: t.progress });
    });
  }
}
