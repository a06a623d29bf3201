/** The daily health check's activities: HTTP probes of the app's endpoints, disk, memory and the app log on the host. */
import type { OpsConfig } from '../../common/config/index.js';
import { createHttpHealthActivities } from './http-health.js';
import { createHostActivities } from './host.js';

export function healthActivities(cfg: OpsConfig) {
  return {
    ...createHttpHealthActivities(cfg),
    ...createHostActivities(cfg),
  };
}

/** What the feature's workflows proxy: `proxyActivities<HealthActivities>(…)`. */
export type HealthActivities = ReturnType<typeof healthActivities>;
