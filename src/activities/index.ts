/** All activities, built from one validated config; the worker registers the result of {@link createActivities}. */
import type { OpsConfig } from '../config.js';
import { createBackupActivities } from './backup/backup.js';
import { createCommandActivities } from './release/commands.js';
import { createDockerActivities } from './release/docker.js';
import { createEnvironmentActivities } from './common/environment.js';
import { createFrontActivities } from './release/front.js';
import { createFrontSwitchActivities } from './release/front-switch.js';
import { createReleaseActivities } from './release/release.js';
import { createReleaseCheckActivities } from './release/release-checks.js';
import { createHostActivities } from './health/host.js';
import { createHostCleanupActivities } from './maintenance/host-cleanup.js';
import { createHttpHealthActivities } from './health/http-health.js';
import { createNotifyActivities } from './common/notify.js';
import { createPostgresMaintenanceActivities } from './maintenance/postgres-maintenance.js';
import { createTemporalActivities } from './common/temporal.js';
import { createAlertActivities } from './faults/alerts.js';
import { createAppMetricsActivities } from './faults/app-metrics.js';
import { createContainerActivities } from './faults/containers.js';
import { createLogMonitorActivities } from './faults/log-monitor.js';
import { createRedisCacheActivities } from './faults/redis-cache.js';
import { createPrometheusActivities } from './report/prometheus.js';
import { createReportFileActivities } from './report/report-files.js';
import { createRestorePreviewActivities } from './backup/restore-preview.js';

export function createActivities(cfg: OpsConfig) {
  return {
    ...createEnvironmentActivities(cfg),
    ...createDockerActivities(cfg),
    ...createFrontActivities(cfg),
    ...createFrontSwitchActivities(cfg),
    ...createReleaseActivities(cfg),
    ...createReleaseCheckActivities(cfg),
    ...createCommandActivities(cfg),
    ...createHttpHealthActivities(cfg),
    ...createHostActivities(cfg),
    ...createNotifyActivities(cfg),
    ...createBackupActivities(cfg),
    ...createPostgresMaintenanceActivities(cfg),
    ...createTemporalActivities(cfg),
    ...createHostCleanupActivities(cfg),
    ...createAlertActivities(cfg),
    ...createAppMetricsActivities(cfg),
    ...createContainerActivities(cfg),
    ...createLogMonitorActivities(cfg),
    ...createRedisCacheActivities(cfg),
    ...createPrometheusActivities(cfg),
    ...createReportFileActivities(cfg),
    ...createRestorePreviewActivities(cfg),
  };
}

export type Activities = ReturnType<typeof createActivities>;
