/**
 * Data activities run where the data is: on the data host's own task queue `<task queue>-data` (src/common/names.ts),
 * which only the worker on `worker.dataHost` polls. A worker on another host then never runs an activity that
 * reads a backup it does not have.
 *
 * Histories recorded before this change scheduled those activities on the workflow's own queue; the patch keeps
 * them replaying as they ran (and a run started before the upgrade keeps its queue to its end).
 */
import { patched, proxyActivities, workflowInfo, type ActivityInterfaceFor, type ActivityOptions } from '@temporalio/workflow';
import { dataTaskQueue } from '../../common/names.js';

export const DATA_HOST_QUEUE_PATCH = 'data-activities-on-data-host-queue';

/** `proxyActivities(options)`, with every call routed to the data host's queue in runs that carry the patch. */
export function dataHostAware<A extends object>(options: ActivityOptions): ActivityInterfaceFor<A> {
  const here = proxyActivities<A>(options);
  let there: ActivityInterfaceFor<A> | undefined;
  return new Proxy(here, {
    get(target, name) {
      if (typeof name !== 'string') return undefined;
      return (...args: unknown[]) => {
        const fn = patched(DATA_HOST_QUEUE_PATCH)
          ? (there ??= proxyActivities<A>({ ...options, taskQueue: dataTaskQueue(options.taskQueue ?? workflowInfo().taskQueue) }))[name as keyof A]
          : target[name as keyof A];
        return (fn as (...a: unknown[]) => Promise<unknown>)(...args);
      };
    },
  });
}
