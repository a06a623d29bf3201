/**
 * Shared workflow step: wait until no backup, restore or deploy of the environment is running, up to a limit,
 * then either go ahead or skip. The decision and the wait are part of the result, so the outcome says why.
 */
import { proxyActivities, sleep } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import type { RunningOperation } from '../activities/temporal.js';

const { runningConflicts } = proxyActivities<Activities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
});

export interface ExclusionOutcome {
  decision: 'proceeded' | 'skipped';
  /** How long the run waited for the other operations (ms of workflow time). */
  waitedMs: number;
  /** The operations it found running (the last check's, when it skipped; the first check's when it waited). */
  waitedFor: RunningOperation[];
}

export async function waitForExclusiveWindow(environment: string, maxWaitMs: number): Promise<ExclusionOutcome> {
  const start = Date.now();
  // Poll often enough for a short limit, at most once a minute for long ones.
  const poll = Math.min(60_000, Math.max(1_000, Math.floor(maxWaitMs / 10)));
  let seen: RunningOperation[] = [];
  for (;;) {
    const running = await runningConflicts({ environment });
    const waitedMs = Date.now() - start;
    if (running.length === 0) return { decision: 'proceeded', waitedMs, waitedFor: seen };
    seen = running;
    if (waitedMs >= maxWaitMs) return { decision: 'skipped', waitedMs, waitedFor: running };
    await sleep(Math.min(poll, maxWaitMs - waitedMs));
  }
}
