/** Activities every runbook uses: the environment's policy, notifications, and Temporal itself (running conflicts). */
import type { OpsConfig } from '../../common/config/index.js';
import { createEnvironmentActivities } from './environment.js';
import { createNotifyActivities } from './notify.js';
import { createTemporalActivities } from './temporal.js';

export function commonActivities(cfg: OpsConfig) {
  return {
    ...createEnvironmentActivities(cfg),
    ...createNotifyActivities(cfg),
    ...createTemporalActivities(cfg),
  };
}

/** What the feature's workflows proxy: `proxyActivities<CommonActivities>(…)`. */
export type CommonActivities = ReturnType<typeof commonActivities>;
