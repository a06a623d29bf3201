/** Deploy and rollback: images, migrations and slots (Docker), the nginx front, the release records, the release checks and tests. */
import type { OpsConfig } from '../../common/config/index.js';
import { createDockerActivities } from './docker.js';
import { createFrontActivities } from './front.js';
import { createFrontSwitchActivities } from './front-switch.js';
import { createReleaseActivities } from './release.js';
import { createReleaseCheckActivities } from './release-checks.js';
import { createCommandActivities } from './commands.js';

export function releaseActivities(cfg: OpsConfig) {
  return {
    ...createDockerActivities(cfg),
    ...createFrontActivities(cfg),
    ...createFrontSwitchActivities(cfg),
    ...createReleaseActivities(cfg),
    ...createReleaseCheckActivities(cfg),
    ...createCommandActivities(cfg),
  };
}

/** What the feature's workflows proxy: `proxyActivities<ReleaseActivities>(…)`. */
export type ReleaseActivities = ReturnType<typeof releaseActivities>;
