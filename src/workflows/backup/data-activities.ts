/** The data steps' proxy, shared by the backup and restore workflows (the profile: LONG_DATA). */
import { proxyActivities } from '@temporalio/workflow';
import type { BackupActivities } from '../../activities/backup/index.js';
import { LONG_DATA } from '../common/activity-options.js';

/** Dumps, archives, restore tests and restores, under the long-data profile. */
export const longDataActivities = proxyActivities<BackupActivities>(LONG_DATA);
