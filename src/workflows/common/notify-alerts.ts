/** Shared workflow step: route each alert by severity and deliver it on every channel, like Promise.allSettled. */
import { proxyActivities } from '@temporalio/workflow';
import type { CommonActivities } from '../../activities/common/index.js';
import type { EnvironmentSummary } from '../../activities/common/environment.js';
import type { Alert } from '../../common/health.js';
import type { DeliveryResult } from '../../activities/common/notify.js';
import { NOTIFY } from '../common/activity-options.js';

const { deliverAlert } = proxyActivities<CommonActivities>(NOTIFY);

export interface AlertDelivery extends DeliveryResult {
  alert: number;
}

/** Delivers every alert on its routed channels; a failing channel is recorded, never fatal to the runbook. */
export async function notifyAlerts(runId: string, env: EnvironmentSummary, alerts: readonly Alert[]): Promise<AlertDelivery[]> {
  const attempts = alerts.flatMap((alert, i) =>
    env.alertRoutes[alert.severity].map(async (channel): Promise<AlertDelivery> => {
      try {
        return { alert: i, ...(await deliverAlert({ channel, alert, alertId: `${runId}/alert-${i}/${channel}` })) };
      } catch (err) {
        return { alert: i, channel, delivered: false, detail: `delivery failed: ${(err as Error).cause instanceof Error ? ((err as Error).cause as Error).message : (err as Error).message}` };
      }
    }),
  );
  return Promise.all(attempts);
}
