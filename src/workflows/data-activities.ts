/** Activity options shared by the backup and restore workflows. */
import { ActivityCancellationType } from '@temporalio/workflow';
import { NON_RETRYABLE_ERROR_TYPES } from '../errors.js';
import { dataHostAware } from './data-host-aware.js';

/**
 * Dumps, archives, restore tests and restores take as long as the data needs; the heartbeat (every second) proves
 * they are alive, so a worker that dies mid-step is noticed within 15 s and the step restarts on another (or the
 * restarted) worker of the data host (src/workflows/data-host-aware.ts). On cancellation the workflow waits until the activity has killed its processes and removed
 * its partial files. Errors of the types in src/errors.ts are never retried.
 */
export const longDataActivities = dataHostAware({
  startToCloseTimeout: '6 hours',
  heartbeatTimeout: '15 seconds',
  cancellationType: ActivityCancellationType.WAIT_CANCELLATION_COMPLETED,
  retry: { initialInterval: '5 seconds', backoffCoefficient: 2, maximumInterval: '5 minutes', maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES },
});

/** Retry policy of the short backup/restore steps (catalogue reads and writes, restore plans). */
export const quickDataRetry = { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5, nonRetryableErrorTypes: NON_RETRYABLE_ERROR_TYPES };
