/**
 * All activities, built from one validated config; the worker registers the result of {@link createActivities}:
 * the union of every feature's activities (each feature's workflows proxy only their own interface).
 */
import type { OpsConfig } from '../common/config/index.js';
import { backupActivities } from './backup/index.js';
import { commonActivities } from './common/index.js';
import { faultActivities } from './faults/index.js';
import { healthActivities } from './health/index.js';
import { maintenanceActivities } from './maintenance/index.js';
import { releaseActivities } from './release/index.js';
import { reportActivities } from './report/index.js';

export type { BackupActivities } from './backup/index.js';
export type { CommonActivities } from './common/index.js';
export type { FaultActivities } from './faults/index.js';
export type { HealthActivities } from './health/index.js';
export type { MaintenanceActivities } from './maintenance/index.js';
export type { ReleaseActivities } from './release/index.js';
export type { ReportActivities } from './report/index.js';

export function createActivities(cfg: OpsConfig) {
  return {
    ...commonActivities(cfg),
    ...healthActivities(cfg),
    ...releaseActivities(cfg),
    ...backupActivities(cfg),
    ...maintenanceActivities(cfg),
    ...faultActivities(cfg),
    ...reportActivities(cfg),
  };
}

export type Activities = ReturnType<typeof createActivities>;
