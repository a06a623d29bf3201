/**
 * The data steps' proxy, shared by the backup and restore workflows (the profile: LONG_DATA), on the data host's own
 * queue (src/workflows/common/data-host-aware.ts).
 */
import type { BackupActivities } from '../../activities/backup/index.js';
import { LONG_DATA } from '../common/activity-options.js';
import { dataHostAware } from '../common/data-host-aware.js';

/** Dumps, archives, restore tests and restores, under the long-data profile. */
export const longDataActivities = dataHostAware<BackupActivities>(LONG_DATA);
