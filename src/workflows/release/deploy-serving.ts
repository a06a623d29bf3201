/**
 * A deploy is done for the person waiting for it when the new version serves and is verified (issue 18): the
 * `servingVerified` update returns then (the CLI waits on it), while the same run goes on to drain and stop the old
 * slot and write the release records. What happens after that moment never rolls the app back (the new version was
 * reported serving); a failure there is recorded in the release's outcome message and alerted.
 */
import { CancellationScope, condition, setHandler } from '@temporalio/workflow';
import type { ReleasePlan } from '../../activities/release/release.js';
import { message } from './failures.js';
import { stopSlot, durableSleep } from './release-steps.js';
import { type Tracker } from './tracker.js';
import { servingVerifiedUpdate } from './shared.js';


export function installServingUpdate(t: Tracker): void {
  setHandler(servingVerifiedUpdate, async () => {
    await condition(() => t.progress.servingAt !== undefined || t.progress.outcome !== undefined);
    const p = t.progress;
    return { serving: p.servingAt !== undefined, ...(p.servingAt ? { servingAt: p.servingAt } : {}), ...(p.outcome ? { outcome: p.outcome } : {}), progress: p };
  });
}

/**
 * After the deploy was reported done: the old slot drains (what is left of the drain time, counted from the switch),
 * then stops. Runs to its end even when the deploy is cancelled meanwhile (the old slot is still stopped). Never
 * throws: returns what went wrong, in words, for the record and the alert (undefined when all went well).
 */
export async function drainOldSlot(plan: ReleasePlan, t: Tracker, switchedAt: number): Promise<string | undefined> {
  const old = plan.current;
  if (!(plan.strategy === 'blue-green' && old && old.slot !== plan.target.slot)) {
    t.skip('drain', 'no old slot to stop');
    return undefined;
  }
  return CancellationScope.nonCancellable(async () => {
    try {
      await t.step('drain', async () => {
        const wait = Math.max(0, plan.drainMs - (Date.now() - switchedAt));
        if (wait > 0) await durableSleep(wait);
        await stopSlot(plan, old.slot, old.version, old.port);
        return Date.now() - switchedAt;
      }, (since) => `slot ${old.slot} (${old.version}) stopped ${since} ms after the switch (drain ${plan.drainMs} ms), after the deploy was reported serving`);
      return undefined;
    } catch (err) {
      return `stopping the old slot ${old.slot} (${old.version}) after the drain FAILED: ${message(err)}; it is left running (the front no longer sends it requests); stop slot ${old.slot} by hand`;
    }
  });
}
