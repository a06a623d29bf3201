/** Weekly maintenance, cleanup and optimization: PostgreSQL (purge, indexes, ANALYZE/VACUUM) and the host's files and packages. */
import type { OpsConfig } from '../../common/config/index.js';
import { createPostgresMaintenanceActivities } from './postgres-maintenance.js';
import { createHostCleanupActivities } from './host-cleanup.js';

export function maintenanceActivities(cfg: OpsConfig) {
  return {
    ...createPostgresMaintenanceActivities(cfg),
    ...createHostCleanupActivities(cfg),
  };
}

/** What the feature's workflows proxy: `proxyActivities<MaintenanceActivities>(…)`. */
export type MaintenanceActivities = ReturnType<typeof maintenanceActivities>;
