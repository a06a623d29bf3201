/** Activity options shared by the backup and restore workflows. */
import { ActivityCancellationType, proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';

/**
 * Dumps, archives, restore tests and restores take as long as the data needs; the heartbeat (every second) proves
 * they are alive, so a worker that dies mid-step is noticed within 15 s and the step restarts on another (or the
 * restarted) worker. On cancellation the workflow waits until the activity has killed its processes and removed
 * its partial files.
 */
export const longDataActivities = proxyActivities<Activities>({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '15 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 5 },
});
