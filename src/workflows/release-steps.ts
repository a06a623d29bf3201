/**
 * Steps shared by `deploy` and `rollback`: progress (query + the Web UI's current details), the switch of the app
 * to a version (blue/green behind the front, or the guide's recreate in place), putting the previous version
 * back, the approval-gated database rollback with its escalation alert, and notifications of the outcome.
 */
import {
  ApplicationFailure,
  condition,
  defineQuery,
  isCancellation,
  patched,
  proxyActivities,
  setCurrentDetails,
  setHandler,
  sleep,
  startChild,
  upsertSearchAttributes,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import { WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import type { Activities } from '../activities/index.js';
import type { ReleasePlan } from '../activities/release.js';
import type { Release, ReleaseOutcome, SlotName } from '../deploy/release-store.js';
import type { Severity } from '../common/config/index.js';
import type { Alert } from '../health.js';
import { dataWorkflowId } from '../names.js';
import { OutcomeKey } from '../search-attributes.js';
import { describeWritesLost, type ApprovalGate, type GateDetails, type GateNames, type WritesLost } from './approval.js';
import { notifyAlerts } from './notify-alerts.js';
import { busyRetryDelay } from './waits.js';
import { restore, restoreDecisions } from './restore.js';
import { checkedSwitch, frontBack, type SwitchState } from './front-switch.js';

/** Timeout profiles. quick: bookkeeping and HTTP; docker: compose and image work; waits: polls with their own deadline. */
export const QUICK: ActivityOptions = {
  startToCloseTimeout: '1 minute',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
};
export const DOCKER: ActivityOptions = {
  startToCloseTimeout: '30 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '2 seconds', backoffCoefficient: 2, maximumInterval: '1 minute', maximumAttempts: 5 },
};
export const WAITS: ActivityOptions = {
  startToCloseTimeout: '1 hour',
  heartbeatTimeout: '15 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
};

const RECREATE_ONCE: ActivityOptions = { ...DOCKER, retry: { ...DOCKER.retry, maximumAttempts: 1 } };

export const quick = proxyActivities<Activities>(QUICK);
export const docker = proxyActivities<Activities>(DOCKER);
export const waits = proxyActivities<Activities>(WAITS);

/** approveDatabaseRollback / rejectDatabaseRollback carry {by, comment}; databaseRollbackStatus shows the gate. */
export const DB_ROLLBACK_GATE: GateNames = { approve: 'approveDatabaseRollback', reject: 'rejectDatabaseRollback', query: 'databaseRollbackStatus', idPrefix: 'db-rollback' };

export type StepState = 'pending' | 'running' | 'done' | 'skipped' | 'failed';
export interface StepProgress {
  name: string;
  state: StepState;
  startedAt?: string;
  finishedAt?: string;
  detail?: string;
}

export interface ReleaseProgress {
  operation: 'deploy' | 'rollback';
  environment: string;
  version: string;
  fromVersion: string | null;
  requestedBy: string;
  startedAt: string;
  /** The step running now ('done' at the end). */
  step: string;
  steps: StepProgress[];
  outcome?: ReleaseOutcome;
  /** What the run waits for, in words (an approval). */
  waitingFor?: string;
  backupId?: string;
  migration?: { before: number; after: number };
  finishedAt?: string;
  message?: string;
  /**
   * deploy: when the new version was serving and verified (health gate, verify, bake) — the moment the deploy is
   * done for the person waiting (the `servingVerified` update returns); the old slot's drain and stop and the
   * release records follow in the same run.
   */
  servingAt?: string;
}
export const progressQuery = defineQuery<ReleaseProgress>('progress');

/** Progress of a release: the `progress` query, the Web UI's current details, one line per step. */
export class Tracker {
  readonly progress: ReleaseProgress;
  constructor(init: Omit<ReleaseProgress, 'step' | 'steps'>, steps: string[]) {
    this.progress = { ...init, step: steps[0] ?? 'plan', steps: steps.map((name) => ({ name, state: 'pending' })) };
    setHandler(progressQuery, () => this.progress);
    this.details();
  }

  private details(): void {
    const p = this.progress;
    const lines = p.steps.map((s) => `${s.state === 'done' ? '✔' : s.state === 'running' ? '▶' : s.state === 'failed' ? '✘' : s.state === 'skipped' ? '–' : '·'} ${s.name}${s.detail ? ` — ${s.detail}` : ''}`);
    setCurrentDetails(`**${p.operation} ${p.environment}: ${p.fromVersion ?? '(none)'} → ${p.version}** (by ${p.requestedBy})\n\n${p.waitingFor ? `waiting for: ${p.waitingFor}\n\n` : ''}${lines.join('\n')}${p.outcome ? `\n\noutcome: **${p.outcome}**` : ''}`);
  }

  private entry(name: string): StepProgress {
    let s = this.progress.steps.find((x) => x.name === name);
    if (!s) {
      s = { name, state: 'pending' };
      this.progress.steps.push(s);
    }
    return s;
  }

  async step<T>(name: string, fn: () => Promise<T>, detail?: (r: T) => string): Promise<T> {
    const s = this.entry(name);
    s.state = 'running';
    s.startedAt = new Date().toISOString();
    this.progress.step = name;
    this.details();
    try {
      const r = await fn();
      s.state = 'done';
      if (detail) s.detail = detail(r);
      return r;
    } catch (err) {
      s.state = 'failed';
      s.detail = message(err);
      throw err;
    } finally {
      s.finishedAt = new Date().toISOString();
      this.details();
    }
  }

  skip(name: string, why: string): void {
    const s = this.entry(name);
    s.state = 'skipped';
    s.detail = why;
    this.details();
  }

  waiting(what: string | undefined): void {
    if (what) this.progress.waitingFor = what;
    else delete this.progress.waitingFor;
    this.details();
  }

  /** The new version serves and is verified: the deploy is done for whoever waits on `servingVerified`. */
  serving(): void {
    this.progress.servingAt = new Date().toISOString();
    this.details();
  }

  finish(outcome: ReleaseOutcome, msg: string): void {
    this.progress.outcome = outcome;
    this.progress.step = 'done';
    this.progress.finishedAt = new Date().toISOString();
    this.progress.message = msg;
    upsertSearchAttributes([{ key: OutcomeKey, value: outcome }]);
    this.details();
  }
}

/** The innermost message of a failure (activity → application failure → cause). */
export function message(err: unknown): string {
  let e = err as (Error & { cause?: unknown }) | undefined;
  while (e?.cause instanceof Error) e = e.cause as Error & { cause?: unknown };
  return e instanceof Error ? e.message : String(err);
}

/** The type of the innermost application failure in a failure chain (child workflow → application failure). */
export function failureType(err: unknown): string | undefined {
  let type: string | undefined;
  for (let e = err as (Error & { cause?: unknown; type?: unknown }) | undefined; e instanceof Error; e = e.cause as typeof e) {
    if (typeof e.type === 'string') type = e.type;
  }
  return type;
}

/** Runs an activity with a one-line summary that the Web UI shows for it. */
export function run<K extends keyof Activities>(
  profile: ActivityOptions,
  name: K,
  summary: string,
  ...args: Parameters<Activities[K]>
): Promise<Awaited<ReturnType<Activities[K]>>> {
  const proxy = profile === DOCKER ? docker : profile === WAITS ? waits : quick;
  const fn = proxy[name] as unknown as { executeWithOptions(o: ActivityOptions, a: unknown[]): Promise<Awaited<ReturnType<Activities[K]>>> };
  return fn.executeWithOptions({ ...profile, summary }, args);
}

export function releaseOf(plan: ReleasePlan, target: ReleasePlan['target'], migrationLevel: number | null, requestedBy: string): Release {
  const { workflowId, runId } = workflowInfo();
  return { version: target.version, image: target.image, slot: target.slot, port: target.port, migrationLevel, deployedAt: new Date().toISOString(), requestedBy, workflowId, runId };
}

/**
 * Brings `target` up and makes it serve. blue-green: the slot is started beside the serving one, must be healthy
 * on its own port, then the front is switched to it (nginx reload: nothing refused). recreate: the guide's
 * `compose up -d` replaces the container in place. Returns whether the front (or the container) was switched.
 */
export async function bringUp(plan: ReleasePlan, target: ReleasePlan['target'], markSwitched: () => void, sw?: SwitchState): Promise<string> {
  const env = plan.environment;
  // Checked switches (issue 15): a switch counts from the moment it may have touched what serves, not from when it
  // returned. Runs recorded before replay without (`patched`).
  const checked = sw !== undefined && patched('front-switch-checked');
  // In place, `compose up -d` replaces the serving container: one attempt, then the previous version is put back
  // (a retry would leave the app down through its backoff). Blue/green counts from the switch (checkedSwitch).
  const once = checked && plan.strategy === 'recreate';
  if (once) sw.attempted = true;
  await run(once ? RECREATE_ONCE : DOCKER, 'startSlot', `compose up ${target.version} in slot ${target.slot} (:${target.port})`, { environment: env, version: target.version, slot: target.slot, port: target.port });
  if (plan.strategy === 'recreate') {
    markSwitched();
    return `recreated in place with ${target.version}`;
  }
  const ready = await run(WAITS, 'waitSlotReady', `wait for ${target.version} healthy on :${target.port}`, {
    environment: env,
    slot: target.slot,
    port: target.port,
    timeoutMs: plan.healthTimeoutMs,
    successes: plan.healthySuccesses,
  });
  if (!ready.healthy) {
    throw ApplicationFailure.nonRetryable(`${target.version} did not become healthy in slot ${target.slot} within ${plan.healthTimeoutMs / 1000} s (${ready.lastProblem ?? 'no answer'}); the front was not switched`, 'NotReady');
  }
  // The switch checked through the front and put back at once when it fails (issue 15); runs recorded before it
  // used switchFront, retried with the new build serving, and replay that way.
  if (checked) {
    const d = await checkedSwitch(plan, target, sw, markSwitched);
    return `${target.version} healthy in ${Math.round(ready.elapsedMs)} ms on slot ${target.slot}; ${d}`;
  }
  const sw0 = await run(QUICK, 'switchFront', `front → ${target.slot} (${target.version})`, { environment: env, slot: target.slot, port: target.port, version: target.version });
  markSwitched();
  return `${target.version} healthy in ${Math.round(ready.elapsedMs)} ms on slot ${target.slot}; front ${sw0.action}, serving it after ${sw0.servedAfterMs} ms`;
}

/** Stops a slot that does not serve (the failed new one, or the drained old one). Never the recreate slot. */
export async function stopSlot(plan: ReleasePlan, slot: SlotName, version: string, port: number): Promise<void> {
  if (slot === 'main') return;
  await run(DOCKER, 'stopSlot', `compose down slot ${slot} (${version})`, { environment: plan.environment, slot, version, port });
}

/**
 * Puts the release that served before back: blue/green switches the front back to the old slot (still running),
 * restarting it first if it is gone; recreate re-creates the container with the old version. Health-gated.
 */
export async function restorePrevious(plan: ReleasePlan): Promise<string> {
  const prev = plan.current;
  if (!prev) throw ApplicationFailure.nonRetryable('there is no previous release to go back to', 'NoPreviousRelease');
  const env = plan.environment;
  let back = '';
  if (plan.strategy === 'blue-green') {
    await run(DOCKER, 'startSlot', `ensure ${prev.version} runs in slot ${prev.slot}`, { environment: env, version: prev.version, slot: prev.slot, port: prev.port });
    if (patched('front-switch-checked')) back = await frontBack(plan);
    else await run(QUICK, 'switchFront', `front → ${prev.slot} (${prev.version}) again`, { environment: env, slot: prev.slot, port: prev.port, version: prev.version });
  } else {
    await run(DOCKER, 'startSlot', `compose up ${prev.version} again`, { environment: env, version: prev.version, slot: 'main', port: prev.port });
  }
  const gate = await run(WAITS, 'healthGate', `health gate of ${prev.version}`, { environment: env, slot: prev.slot, timeoutMs: plan.healthTimeoutMs, successes: plan.healthySuccesses });
  if (!gate.healthy) throw ApplicationFailure.nonRetryable(`${prev.version} is serving again but not healthy: ${gate.lastProblem}`, 'PreviousUnhealthy');
  if (plan.strategy === 'blue-green' && plan.target.slot !== prev.slot) await stopSlot(plan, plan.target.slot, plan.target.version, plan.target.port);
  return `${prev.version} serves again (slot ${prev.slot}), healthy${back ? ` (${back})` : ''}`;
}

export interface DatabaseRollbackResult {
  decision: 'approved' | 'rejected' | 'timed-out';
  by?: string;
  comment?: string;
  /** The migration level after the approved rollback (restore-backup: measured after the restore, also when it failed). */
  level?: number;
  /** restore-backup: the restore run (a child under the data id) and how it ended. */
  restore?: { workflowId: string; runId?: string; backupId: string; safetyBackupId?: string; error?: string };
  /** Approved, but the migrate-down failed or was refused (a reset run): why, with `level` as read afterwards. */
  error?: string;
}

/**
 * Waits for a person to approve the database rollback (four eyes unless configured otherwise), alerting once when
 * nobody answered after `escalateAfterMs`. On approval: migrates the database down to `toLevel` with `version`'s
 * runner; or, with `restoreBackup` (deploy.databaseRollback: restore-backup), restores that pre-deploy backup over
 * the live database through the `restore` workflow as a child, pre-approved by this gate's approver.
 */
export async function databaseRollback(opts: {
  plan: ReleasePlan;
  gate: ApprovalGate;
  tracker: Tracker;
  version: string;
  fromLevel: number;
  toLevel: number;
  requestedBy: string;
  why: string;
  /** Restore this backup (taken before the deploy) instead of migrating down. */
  restoreBackup?: string;
}): Promise<DatabaseRollbackResult> {
  const { plan, gate, tracker } = opts;
  // Consent follows the information: the gate shows what exactly would be approved — the failure, the levels, or
  // the backup and the rows written since it (read now, before the gate opens) — under an id the approval names.
  let details: GateDetails | undefined;
  let loss = 'every write made since the backup is LOST';
  if (gate.consent) {
    if (opts.restoreBackup) {
      const writesLost = await run(WAITS, 'previewRestore', `rows written since backup ${opts.restoreBackup}`, { environment: plan.environment, backupId: opts.restoreBackup, kind: 'database' }).then(
        (p) => p.writesLost,
        (err: unknown): WritesLost => {
          if (isCancellation(err)) throw err;
          return { tablesCompared: 0, changed: [], moreChanged: 0, rowsAdded: 0, rowsRemoved: 0, error: message(err).slice(0, 300) };
        },
      );
      details = { failure: opts.why, backup: { id: opts.restoreBackup, kind: 'database', target: `${plan.environment}'s live database`, ...(writesLost ? { writesLost } : {}) } };
      loss = describeWritesLost(writesLost);
    } else details = { failure: opts.why, migration: { from: opts.fromLevel, to: opts.toLevel } };
  }
  const subject = opts.restoreBackup
    ? `restore ${plan.environment}'s database from backup ${opts.restoreBackup}, taken before this deploy (${opts.why}): schema and data go back to that moment and ${loss} (a safety backup of the current database is taken first)`
    : `migrate ${plan.environment}'s database down from level ${opts.fromLevel} to ${opts.toLevel} (${opts.why})`;
  upsertSearchAttributes([{ key: OutcomeKey, value: 'awaiting-approval' }]);
  const decided = gate.decide({ subject, ...(details ? { details } : {}), allowSelfApproval: plan.allowSelfApproval, timeoutMs: plan.approvalTimeoutMs });
  const gateId = gate.status.gateId; // set as the gate opens (runs before consent-follows-information: none)
  tracker.waiting(`approveDatabaseRollback or rejectDatabaseRollback {"by","comment"${gateId ? `,"gate":"${gateId}"` : ''}} — ${subject}${plan.allowSelfApproval ? '' : `; not from ${opts.requestedBy} (four eyes)`}`);
  const escalation = (async () => {
    if (await condition(() => gate.status.state !== 'open' && gate.status.state !== 'not-open', plan.escalateAfterMs)) return;
    const approve = `llmchat-ops approve-db-rollback --env ${plan.environment}${gateId ? ` --gate ${gateId} -m "why"` : ''}`;
    await notify(plan, 'critical', 'db_rollback_waiting', `Database rollback of ${plan.environment} waits for approval${gateId ? ` (gate ${gateId})` : ''}`, `${subject}: nobody answered for ${Math.round(plan.escalateAfterMs / 60_000)} min. Approve: ${approve}${gateId ? ` (or reject-db-rollback); the approval must name gate ${gateId}` : ''}`, 'escalation');
  })();
  const verdict = await decided;
  await escalation;
  tracker.waiting(undefined);
  if (verdict !== 'approved') {
    gate.close(`the database rollback was ${verdict}`);
    return { decision: verdict, ...(gate.status.rejectedBy ? { by: gate.status.rejectedBy } : {}), ...(gate.status.rejectionComment ? { comment: gate.status.rejectionComment } : {}) };
  }
  const approvedBy = gate.status.approvedBy as string;
  if (opts.restoreBackup) {
    // Not committed yet: until the restore swaps the data in, a rejectDatabaseRollback still stops it.
    const r = await restoreBackup(plan, tracker, opts.version, opts.restoreBackup, opts.requestedBy, approvedBy, gate.status.decisions.find((d) => d.accepted && d.verdict === 'approve')?.comment, gate);
    if (gate.status.state === 'rejected') {
      return { decision: 'rejected', ...(gate.status.rejectedBy ? { by: gate.status.rejectedBy } : {}), ...(gate.status.rejectionComment ? { comment: gate.status.rejectionComment } : {}), ...r };
    }
    gate.close(r.restore?.error ? `the database restore failed: ${r.restore.error}` : 'the database restore ran');
    return { decision: 'approved', by: approvedBy, ...r };
  }
  gate.commit();
  let down: { before: number; after: number; reverted: string[] };
  try {
    down = await tracker.step('database-rollback', () =>
      run(DOCKER, 'migrateDown', `migrate down to ${opts.toLevel}`, { environment: plan.environment, version: opts.version, to: opts.toLevel }),
    (r) => `level ${r.before} → ${r.after}${r.reverted.length ? ` (reverted ${r.reverted.join(', ')})` : ''}, approved by ${gate.status.approvedBy}`);
  } catch (err) {
    if (isCancellation(err)) throw err;
    // Runs recorded before this change let the failure end the workflow there (no record, no notification); they
    // replay that way (a query of such a closed run, a reset of it).
    if (!patched('migrate-down-failure-recorded')) throw err;
    // The release still ends with its record and its notification, saying where the schema is now.
    gate.close(`the database rollback failed: ${message(err)}`);
    const level = await run(DOCKER, 'migrationLevel', 'migration level after the failed rollback', { environment: plan.environment, version: opts.version }).catch((e: unknown) => {
      if (isCancellation(e)) throw e; // cancelled while reading the level: the run ends cancelled, as before
      return undefined;
    });
    return { decision: 'approved', ...(gate.status.approvedBy ? { by: gate.status.approvedBy } : {}), error: message(err), ...(level !== undefined ? { level } : {}) };
  }
  gate.close('the database rollback ran');
  return { decision: 'approved', ...(gate.status.approvedBy ? { by: gate.status.approvedBy } : {}), level: down.after };
}

/**
 * Restores `backupId` (the deploy's pre-deploy backup) over the live database: the `restore` workflow as a child
 * under the data id — safety backup, staging database, row-count check, atomic swap — told that `approvedBy`
 * approved it at this release's gate (it trusts that only because its parent is the release workflow). Never
 * throws: a failed restore is returned with the run that failed and the live database's migration level after it.
 */
async function restoreBackup(plan: ReleasePlan, tracker: Tracker, version: string, backupId: string, requestedBy: string, approvedBy: string, comment: string | undefined, gate: ApprovalGate): Promise<Omit<DatabaseRollbackResult, 'decision' | 'by'>> {
  const env = plan.environment;
  const workflowId = dataWorkflowId(env);
  const info: NonNullable<DatabaseRollbackResult['restore']> = { workflowId, backupId };
  try {
    const done = await tracker.step('database-restore', async () => {
      // The data id may be held by a backup (the nightly one) or another restore: the approved restore waits for it
      // (as long as an approval may wait), and a rejection meanwhile still stops it.
      const start = () => startChild(restore, {
        workflowId,
        args: [{ environment: env, backupId, kind: 'database', requestedBy, releaseApproval: { by: approvedBy, ...(comment ? { comment } : {}) } }],
      });
      const waitUntil = Date.now() + plan.approvalTimeoutMs;
      let child: Awaited<ReturnType<typeof start>> | undefined;
      let attempt = 0;
      let backoff: boolean | undefined;
      while (!child) {
        try {
          child = await start();
        } catch (err) {
          if (!(err instanceof WorkflowExecutionAlreadyStartedError) || Date.now() >= waitUntil) throw err;
          tracker.waiting(`the approved restore waits for ${workflowId} (a backup or restore of ${env}) to finish; rejectDatabaseRollback still stops it`);
          let rejected = false;
          backoff ??= patched('restore-wait-backoff');
          const delay = Math.min(busyRetryDelay(attempt++, backoff), backoff ? Math.max(1_000, waitUntil - Date.now()) : Infinity);
          await Promise.race([sleep(delay), gate.rejection().then(() => (rejected = true))]);
          tracker.waiting(undefined);
          if (rejected && gate.stopped()) return undefined; // rejected before it started: nothing restored
        }
      }
      info.runId = child.firstExecutionRunId;
      // A rejectDatabaseRollback after the approval goes on to the restore's own gate, which stops the restore if
      // it comes before the swap (the restore then fails RestoreRejected) and is too late after it.
      void gate.rejection().then((d) =>
        child.signal(restoreDecisions.rejectSignal, { by: d.by, ...(d.comment ? { comment: d.comment } : {}) }).catch(() => undefined),
      );
      return child.result();
    }, (r) => (r ? `restored from backup ${backupId} by ${workflowId} (run ${info.runId})${r.safetyBackupId ? `, safety backup ${r.safetyBackupId}` : ''}, approved by ${approvedBy}` : `not started: rejected by ${gate.status.rejectedBy} while it waited for ${workflowId}`));
    if (done) {
      gate.commit(); // swapped in: a rejection now is answered "too late"
      if (done.safetyBackupId) info.safetyBackupId = done.safetyBackupId;
    }
  } catch (err) {
    info.error = message(err);
    if (err instanceof WorkflowExecutionAlreadyStartedError) info.error = `a backup or restore of ${env} was still running under ${workflowId} after ${Math.round(plan.approvalTimeoutMs / 60_000)} min of waiting; the restore did not start`;
    if (failureType(err) === 'RestoreRejected' && gate.stopped()) delete info.error; // stopped by the rejection, nothing swapped in
  }
  let level: number | undefined;
  try {
    level = await run(DOCKER, 'migrationLevel', info.error ? 'migration level after the failed restore' : 'migration level after the restore', { environment: env, version });
  } catch (err) {
    tracker.skip('level-after-restore', `could not be read: ${message(err)}`);
  }
  return { restore: info, ...(level !== undefined ? { level } : {}) };
}

/** Delivers one alert on the channels its severity is routed to; a failed channel never fails the release. */
export async function notify(plan: Pick<ReleasePlan, 'environment'>, severity: Severity, type: string, title: string, text: string, key: string): Promise<void> {
  const env = await quick.describeEnvironment(plan.environment);
  const alert: Alert = { severity, type, title, message: text, environment: plan.environment };
  await notifyAlerts(`${workflowInfo().workflowId}/${workflowInfo().runId}/${key}`, env, [alert]);
}

/** Sleeps on a durable timer (a worker restart does not shorten or restart it). */
export const durableSleep = sleep;
