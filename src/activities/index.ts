/** All activities, built from one validated config; the worker registers the result of {@link createActivities}. */
import type { OpsConfig } from '../common/config/index.js';
import { createBackupActivities } from './backup.js';
import { createCommandActivities } from './commands.js';
import { createDockerActivities } from './docker.js';
import { createEnvironmentActivities } from './environment.js';
import { createFrontActivities } from './front.js';
import { createFrontSwitchActivities } from './front-switch.js';
import { createReleaseActivities } from './release.js';
import { createReleaseCheckActivities } from './release-checks.js';
import { createHostActivities } from './host.js';
import { createHostCleanupActivities } from './host-cleanup.js';
import { createHttpHealthActivities } from './http-health.js';
import { createNotifyActivities } from './notify.js';
import { createPostgresMaintenanceActivities } from './postgres-maintenance.js';
import { createTemporalActivities } from './temporal.js';
import { createAlertActivities } from './alerts.js';
import { createAppMetricsActivities } from './app-metrics.js';
import { createContainerActivities } from './containers.js';
import { createLogMonitorActivities } from './log-monitor.js';
import { createRedisCacheActivities } from './redis-cache.js';
import { createPrometheusActivities } from './prometheus.js';
import { createReportFileActivities } from './report-files.js';
import { createRestorePreviewActivities } from './restore-preview.js';

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
