/**
 * The checked switch of the front as activities (src/activities/release/checked-switch.ts does the work): `switchFrontChecked`
 * runs once per switch (never retried with an unverified build serving) and puts the front back itself when the
 * switch fails; `restoreFront` puts the front back on a slot after a switch that did not finish (the worker died)
 * or after a later step failed, and is safe to retry.
 */
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { applyFront } from './nginx-front.js';
import { accessLogSize, checkThroughFront, describeRecord, failedSince, frontServes, loadSwitchRecord, putFrontBack, saveSwitchRecord, type SlotRef } from './checked-switch.js';
import { frontOf } from './front.js';
import { ApplicationFailure } from '@temporalio/common';
import { guarded } from '../common/activity-support.js';

export interface SwitchResult {
  ok: boolean;
  action?: 'started' | 'reloaded';
  reloadedAt?: string;
  servedAfterMs?: number;
  /** A failed switch: what happened, in words (switched when, what it served, switched back when, failed requests). */
  report?: string;
  /** A failed switch: whether the front serves the previous slot again, checked through the front. */
  restored?: boolean;
  /** Milliseconds from the reload (or its failure) to the previous version serving again through the front. */
  restoredAfterMs?: number;
  failedRequests?: number;
}

const failedPart = (n: { failed: number; total: number }) => `${n.failed} request${n.failed === 1 ? '' : 's'} failed at the front in between (of ${n.total})`;

export function createFrontSwitchActivities(cfg: OpsConfig) {
  const envOf = (name: string) => getEnvironment(cfg, name);
  return {
    /**
     * Records the switch as in flight, reloads the front onto `to` (with `from` as the fallback of its upstream),
     * and checks through the front that `to` serves its version, healthy. On any failure it puts the front back
     * on `from` at once and checks that, and only then reports the failure (as a result, not an error).
     */
    async switchFrontChecked(input: { environment: string; workflowId: string; runId: string; from: SlotRef | null; to: SlotRef }): Promise<SwitchResult> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const spec = frontOf(env);
        const pending = await loadSwitchRecord(env, input.environment);
        if (pending && pending.runId !== input.runId) throw ApplicationFailure.nonRetryable(`${describeRecord(pending)}; the front must be put back first (\`llmchat-ops up --env ${input.environment}\`)`, 'FrontSwitchUnfinished');
        const { from, to } = input;
        const offset = pending?.accessLogOffset ?? (await accessLogSize(spec));
        const record = { schema: 1 as const, workflowId: input.workflowId, runId: input.runId, from, to, startedAt: new Date().toISOString(), accessLogOffset: offset };
        await saveSwitchRecord(env, input.environment, record);
        let problem: string;
        let reloadedAt = '';
        let t0 = Date.now();
        try {
          const fallback = from && from.slot !== to.slot && from.port !== to.port ? { port: from.port, slot: from.slot } : undefined;
          const action = await applyFront(spec, to.port, to.slot, fallback);
          t0 = Date.now();
          reloadedAt = new Date(t0).toISOString();
          await saveSwitchRecord(env, input.environment, { ...record, reloadedAt });
          const c = await checkThroughFront(env, to, { graceMs: 3000, successes: 5 });
          if (c.ok) {
            await saveSwitchRecord(env, input.environment, null);
            return { ok: true, action, reloadedAt, servedAfterMs: c.afterMs };
          }
          problem = `switched the front to ${to.version} (slot ${to.slot}) at ${reloadedAt}, ${c.problem}`;
        } catch (err) {
          t0 = Date.now();
          problem = `the reload of the front to ${to.version} (slot ${to.slot}) failed at ${new Date(t0).toISOString()}: ${(err as Error).message}`;
        }
        if (!from) {
          const n = await failedSince(spec, offset);
          return { ok: false, restored: false, report: `${problem}; there is no previous slot to go back to; ${failedPart(n)}`, failedRequests: n.failed };
        }
        try {
          const back = await putFrontBack(env, spec, from);
          const restoredAfterMs = Date.now() - t0;
          await new Promise((r) => setTimeout(r, 200)); // the last requests of the check reach the access log
          const n = await failedSince(spec, offset);
          await saveSwitchRecord(env, input.environment, null);
          return { ok: false, restored: true, restoredAfterMs, failedRequests: n.failed, report: `${problem}; switched back to ${from.version} (slot ${from.slot}) at ${back.at}, checked through the front (healthy, ${from.version}) ${restoredAfterMs} ms after the ${reloadedAt ? 'reload' : 'failed reload'}; ${failedPart(n)}` };
        } catch (err) {
          const n = await failedSince(spec, offset);
          return { ok: false, restored: false, failedRequests: n.failed, report: `${problem}; ${(err as Error).message}; ${failedPart(n)} so far` };
        }
      });
    },

    /**
     * Puts the front back on `to` and checks it through the front: after a switch that did not finish (its record
     * is cleared then, and the requests the front failed since it began are counted), or after a later step of the
     * release failed. Idempotent; throws while the front does not serve `to` healthy.
     */
    async restoreFront(input: { environment: string; workflowId: string; runId: string; to: SlotRef }): Promise<{ text: string; failedRequests?: number }> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const spec = frontOf(env);
        const pending = await loadSwitchRecord(env, input.environment);
        const mine = pending && pending.runId === input.runId ? pending : undefined;
        // The front's actual state is the truth: what it served when this run came back to it.
        const found = mine ? await frontServes(env) : '';
        const back = await putFrontBack(env, spec, input.to);
        let counted = '';
        let failedRequests: number | undefined;
        if (mine) {
          await new Promise((r) => setTimeout(r, 200));
          const n = await failedSince(spec, mine.accessLogOffset);
          failedRequests = n.failed;
          counted = `; ${failedPart(n)}`;
          await saveSwitchRecord(env, input.environment, null);
        }
        const what = mine ? `the switch to ${mine.to.version} (slot ${mine.to.slot}) begun ${mine.startedAt} ${mine.reloadedAt ? `had reloaded the front at ${mine.reloadedAt}` : 'had not reported its reload'}; ${found} when the run came back to it; ` : '';
        return { text: `${what}switched back to ${input.to.version} (slot ${input.to.slot}) at ${back.at}, checked through the front (healthy, ${input.to.version})${counted}`, ...(failedRequests !== undefined ? { failedRequests } : {}) };
      });
    },
  };
}
