/**
 * Shared workflow step: wait until no backup, restore or deploy of the environment is running, up to a limit,
 * then either go ahead or skip. The decision and the wait are part of the result, so the outcome says why.
 */
import { patched, proxyActivities, sleep } from '@temporalio/workflow';
import type { CommonActivities } from '../../activities/common/index.js';
import type { RunningOperation } from '../../activities/common/temporal.js';
import { exclusionPollMs } from './waits.js';
import { CONFLICT_CHECK } from '../common/activity-options.js';

const { runningConflicts } = proxyActivities<CommonActivities>(CONFLICT_CHECK);

export interface ExclusionOutcome {
  decision: 'proceeded' | 'skipped';
  /** How long the run waited for the other operations (ms of workflow time). */
  waitedMs: number;
  /** The operations it found running (the last check's, when it skipped; the first check's when it waited). */
  waitedFor: RunningOperation[];
}

export async function waitForExclusiveWindow(environment: string, maxWaitMs: number): Promise<ExclusionOutcome> {
  const start = Date.now();
  // Poll often enough for a short limit, at most once a minute for long ones — and at most ~60 times in all, so a
  // wait of hours does not grow the history (exclusion-wait-bounded; runs recorded before it replay as they ran).
  let poll: number | undefined;
  let seen: RunningOperation[] = [];
  for (;;) {
    const running = await runningConflicts({ environment });
    const waitedMs = Date.now() - start;
    if (running.length === 0) return { decision: 'proceeded', waitedMs, waitedFor: seen };
    seen = running;
    if (waitedMs >= maxWaitMs) return { decision: 'skipped', waitedMs, waitedFor: running };
    poll ??= exclusionPollMs(maxWaitMs, patched('exclusion-wait-bounded'));
    await sleep(Math.min(poll, maxWaitMs - waitedMs));
  }
}
