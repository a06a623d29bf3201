/**
 * Steps shared by `deploy` and `rollback`: the activity proxies and `run` (an activity with its one-line summary),
 * the switch of the app to a version (blue/green behind the front, or the guide's recreate in place), putting the
 * previous version back, and notifications of the outcome. Beside it: tracker.ts (progress: the `progress` query
 * and the Web UI's details), database-rollback.ts (the approval-gated database rollback with its escalation alert),
 * failures.ts (the innermost message and type of a failure).
 */
import {
  ApplicationFailure,
  patched,
  proxyActivities,
  sleep,
  workflowInfo,
  type ActivityOptions,
} from '@temporalio/workflow';
import type { ReleaseActivities } from '../../activities/release/index.js';
import type { CommonActivities } from '../../activities/common/index.js';
import type { BackupActivities } from '../../activities/backup/index.js';
import type { ReleasePlan } from '../../activities/release/release.js';
import type { Release, SlotName } from '../../activities/release/release-store.js';
import type { Severity } from '../../common/config/index.js';
import type { Alert } from '../../common/health.js';
import { notifyAlerts } from '../common/notify-alerts.js';
import { DOCKER, QUICK, RECREATE_ONCE, WAITS } from '../common/activity-options.js';
import { checkedSwitch, frontBack, type SwitchState } from './front-switch.js';
import type { Tracker } from './tracker.js';


/** Timeout profiles (common/activity-options.ts): quick bookkeeping and HTTP; docker: compose and image work; waits: polls with their own deadline. */
export const quick = proxyActivities<ReleaseActivities & CommonActivities & BackupActivities>(QUICK);
export const docker = proxyActivities<ReleaseActivities & CommonActivities & BackupActivities>(DOCKER);
export const waits = proxyActivities<ReleaseActivities & CommonActivities & BackupActivities>(WAITS);


/** Runs an activity with a one-line summary that the Web UI shows for it. */
export function run<K extends keyof (ReleaseActivities & CommonActivities & BackupActivities)>(
  profile: ActivityOptions,
  name: K,
  summary: string,
  ...args: Parameters<(ReleaseActivities & CommonActivities & BackupActivities)[K]>
): Promise<Awaited<ReturnType<(ReleaseActivities & CommonActivities & BackupActivities)[K]>>> {
  const proxy = profile === DOCKER ? docker : profile === WAITS ? waits : quick;
  const fn = proxy[name] as unknown as { executeWithOptions(o: ActivityOptions, a: unknown[]): Promise<Awaited<ReturnType<(ReleaseActivities & CommonActivities & BackupActivities)[K]>>> };
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

/** Delivers one alert on the channels its severity is routed to; a failed channel never fails the release. */
export async function notify(plan: Pick<ReleasePlan, 'environment'>, severity: Severity, type: string, title: string, text: string, key: string): Promise<void> {
  const env = await quick.describeEnvironment(plan.environment);
  const alert: Alert = { severity, type, title, message: text, environment: plan.environment };
  await notifyAlerts(`${workflowInfo().workflowId}/${workflowInfo().runId}/${key}`, env, [alert]);
}

/** Sleeps on a durable timer (a worker restart does not shorten or restart it). */
export const durableSleep = sleep;

/**
 * Step `drain` of a deploy or rollback: the old slot has been draining since the switch (nginx sends it nothing new),
 * so the health gate, verify and bake count towards the drain time and only what is left of it is waited for; then
 * it stops. (Runs recorded before `drain-counted-from-switch` waited the whole drain time after verify; they replay
 * that way.)
 */
export async function drainStep(t: Tracker, plan: ReleasePlan, switchedAt: number): Promise<void> {
  const old = plan.current;
  if (plan.strategy === 'blue-green' && old && old.slot !== plan.target.slot) {
    await t.step('drain', async () => {
      const wait = patched('drain-counted-from-switch') ? Math.max(0, plan.drainMs - (Date.now() - switchedAt)) : plan.drainMs;
      if (wait > 0) await durableSleep(wait);
      await stopSlot(plan, old.slot, old.version, old.port);
      return Date.now() - switchedAt;
    }, (since) => `slot ${old.slot} (${old.version}) stopped ${since} ms after the switch (drain ${plan.drainMs} ms)`);
  } else t.skip('drain', 'no old slot to stop');
}
