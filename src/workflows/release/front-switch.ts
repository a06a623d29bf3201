/**
 * The checked switch of the front in `deploy` and `rollback` (issue 15): the switch runs once (`switchFrontChecked`,
 * never retried with an unverified build serving) and puts the front back itself when it fails; when it did not
 * finish (worker lost, timed out, cancelled) the release's compensation puts the front back with `restoreFront`
 * before anything else. Only when the front serves the previous slot again, checked through the front, is the new
 * slot stopped; the outcome says what happened. Runs recorded before this change used `switchFront` (retried with
 * the new build serving); they replay that way (`patched('front-switch-checked')`).
 */
import { ApplicationFailure, isCancellation, proxyActivities, workflowInfo } from '@temporalio/workflow';
import type { ReleaseActivities } from '../../activities/release/index.js';
import type { ReleasePlan } from '../../activities/release/release.js';
import type { SlotRef } from '../../activities/release/checked-switch.js';
import { FRONT_RESTORE, FRONT_SWITCH_ONCE } from '../common/activity-options.js';

/** Once: a retry would run with the unverified build serving. Putting the front back is safe to repeat. */
const { switchFrontChecked } = proxyActivities<ReleaseActivities>(FRONT_SWITCH_ONCE);
const { restoreFront, appContainers } = proxyActivities<ReleaseActivities>(FRONT_RESTORE);

/** What a release knows about its switch of the front. */
export interface SwitchState {
  /** The switch began (the front may have been reloaded from here on). */
  attempted: boolean;
  /** It failed, and the front serves the previous slot again (checked through the front). */
  restored?: boolean;
  /** It did not finish (the activity was lost, timed out or cancelled): the front's state is unknown. */
  unknown?: boolean;
  /** What happened, in words. */
  report?: string;
}

const innermost = (err: unknown): string => {
  let e = err as (Error & { cause?: unknown }) | undefined;
  while (e?.cause instanceof Error) e = e.cause as Error & { cause?: unknown };
  return e instanceof Error ? e.message : String(err);
};

const ref = (r: { slot: SlotRef['slot']; port: number; version: string }): SlotRef => ({ slot: r.slot, port: r.port, version: r.version });

/** Switches the front to `target` (checked through the front); throws, with the front put back, when that fails. */
export async function checkedSwitch(plan: ReleasePlan, target: ReleasePlan['target'], sw: SwitchState, markSwitched: () => void): Promise<string> {
  const { workflowId, runId } = workflowInfo();
  const from = plan.current && plan.current.slot !== target.slot ? ref(plan.current) : null;
  sw.attempted = true;
  let r;
  try {
    r = await switchFrontChecked.executeWithOptions({ ...FRONT_SWITCH_ONCE, summary: `front → ${target.slot} (${target.version}), checked through the front` }, [
      { environment: plan.environment, workflowId, runId, from, to: ref(target) },
    ]);
  } catch (err) {
    sw.unknown = true;
    if (isCancellation(err)) throw err;
    throw ApplicationFailure.nonRetryable(`the switch of the front to ${target.version} (slot ${target.slot}) did not finish: ${innermost(err)}`, 'SwitchUnfinished');
  }
  if (!r.ok) {
    sw.restored = r.restored === true;
    sw.report = r.report ?? 'the switch failed';
    throw ApplicationFailure.nonRetryable(sw.report, 'SwitchFailed');
  }
  markSwitched();
  return `front ${r.action} at ${r.reloadedAt}; ${target.version} checked through the front after ${r.servedAfterMs} ms`;
}

/** Puts the front back on the previous release (after a later step failed); checked through the front. */
export async function frontBack(plan: ReleasePlan): Promise<string> {
  const prev = plan.current;
  if (!prev) throw ApplicationFailure.nonRetryable('there is no previous release to go back to', 'NoPreviousRelease');
  const { workflowId, runId } = workflowInfo();
  const r = await restoreFront.executeWithOptions({ ...FRONT_RESTORE, summary: `front → ${prev.slot} (${prev.version}) again, checked through the front` }, [{ environment: plan.environment, workflowId, runId, to: ref(prev) }]);
  return r.text;
}

/**
 * The compensation of a switch that failed or did not finish: the front back on the previous slot first (if the
 * switch did not do it itself), then the new slot stopped — never while the front may still send it traffic.
 */
export async function undoSwitch(plan: ReleasePlan, sw: SwitchState, stopNew: () => Promise<void>, putBack: () => Promise<string>): Promise<{ text: string; outcome: 'app-rolled-back' | 'failed' }> {
  const prev = plan.current;
  const target = plan.target;
  if (plan.strategy === 'recreate') {
    // `compose up -d` failed part-way: say what it left the container in, then put the previous version back.
    const left = await inPlaceApp(plan);
    if (!prev) return { text: `compose up -d of ${target.version} left ${left}; there is no previous release to put back`, outcome: 'failed' };
    try {
      return { text: `compose up -d of ${target.version} left ${left}; ${prev.version} put back: ${await putBack()}`, outcome: 'app-rolled-back' };
    } catch (err) {
      return { text: `compose up -d of ${target.version} left ${left}; putting ${prev.version} back FAILED: ${innermost(err)}; now ${await inPlaceApp(plan)}`, outcome: 'failed' };
    }
  }
  const parts: string[] = [];
  if (sw.unknown || !sw.restored) {
    // Not finished, or the switch could not put the front back itself: again here, with retries.
    if (!prev) return { text: `the front may be serving ${target.version} (slot ${target.slot}), unverified; there is no previous release to go back to`, outcome: 'failed' };
    try {
      sw.report = await frontBack(plan);
      sw.restored = true;
      parts.push(sw.report);
    } catch (err) {
      return { text: `${innermost(err)}; slot ${target.slot} (${target.version}) is left running as the front may send it traffic`, outcome: 'failed' };
    }
  }
  await stopNew();
  parts.push(`slot ${target.slot} (${target.version}) stopped after the front was back on ${prev?.version}`);
  return { text: parts.join('; '), outcome: 'app-rolled-back' };
}

/** The in-place app's container(s) as Docker has them now, in words. */
async function inPlaceApp(plan: ReleasePlan): Promise<string> {
  try {
    const list = (await appContainers({ environment: plan.environment })).filter((c) => c.slot === 'main');
    if (list.length === 0) return 'no app container at all';
    return list.map((c) => `container ${c.name} ${c.state}${c.health ? ` (${c.health})` : ''} with image ${c.image}`).join(', ');
  } catch (err) {
    return `the app container in a state that could not be read (${innermost(err)})`;
  }
}
