/** Fault detection and alerts: the alert workflows' Temporal side, app metrics, the container, watched logs and the Redis cache. */
import type { OpsConfig } from '../../common/config/index.js';
import { createAlertActivities } from './alerts.js';
import { createAppMetricsActivities } from './app-metrics.js';
import { createContainerActivities } from './containers.js';
import { createLogMonitorActivities } from './log-monitor.js';
import { createRedisCacheActivities } from './redis-cache.js';

export function faultActivities(cfg: OpsConfig) {
  return {
    ...createAlertActivities(cfg),
    ...createAppMetricsActivities(cfg),
    ...createContainerActivities(cfg),
    ...createLogMonitorActivities(cfg),
    ...createRedisCacheActivities(cfg),
  };
}

/** What the feature's workflows proxy: `proxyActivities<FaultActivities>(…)`. */
export type FaultActivities = ReturnType<typeof faultActivities>;
