/**
 * Data activities run where the data is: on the data host's own task queue `<task queue>-data` (src/names.ts),
 * which only the worker on `worker.dataHost` polls. A worker on another host then never runs an activity that
 * reads a backup it does not have.
 *
 * Histories recorded before this change scheduled those activities on the workflow's own queue; the patch keeps
 * them replaying as they ran (and a run started before the upgrade keeps its queue to its end).
 */
import { patched, proxyActivities, workflowInfo, type ActivityOptions } from '@temporalio/workflow';
import type { Activities } from '../activities/index.js';
import { dataTaskQueue } from '../names.js';

export const DATA_HOST_QUEUE_PATCH = 'data-activities-on-data-host-queue';

/** `proxyActivities(options)`, with every call routed to the data host's queue in runs that carry the patch. */
export function dataHostAware(options: ActivityOptions): Activities {
  const here = proxyActivities<Activities>(options);
  let there: Activities | undefined;
  return new Proxy(here, {
    get(target, name) {
      if (typeof name !== 'string') return undefined;
      return (...args: unknown[]) => {
        const fn = patched(DATA_HOST_QUEUE_PATCH)
          ? (there ??= proxyActivities<Activities>({ ...options, taskQueue: dataTaskQueue(options.taskQueue ?? workflowInfo().taskQueue) }))[name as keyof Activities]
          : target[name as keyof Activities];
        return (fn as (...a: unknown[]) => Promise<unknown>)(...args);
      };
    },
  });
}
