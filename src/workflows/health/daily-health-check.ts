/**
 * 每日健康检查 — the guide's daily-health-check.sh as a workflow: probe /health, /health/db, /health/redis,
 * measure disk and memory, count ERROR lines and staleness of the app log — all in parallel — then judge them
 * with the guide's aggregation (healthy / degraded / unhealthy) and route alerts for every breached threshold.
 */
import { proxyLocalActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { HealthActivities } from '../../activities/health/index.js';
import type { CommonActivities } from '../../activities/common/index.js';
import { evaluateHealth, type Alert, type CheckResult, type HealthStatus } from '../../common/health.js';
import { EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../../common/search-attributes.js';
import { dailyHealthCheckInputSchema, type DailyHealthCheckInput } from './shared.js';
import { parseInput } from '../common/inputs.js';
import { notifyAlerts, type AlertDelivery } from '../common/notify-alerts.js';
import { LOCAL_LOG_SCAN, LOCAL_MEASURE } from '../common/activity-options.js';

export type { DailyHealthCheckInput } from './shared.js';

export interface HealthReport {
  environment: string;
  status: HealthStatus;
  checks: CheckResult[];
  alerts: Alert[];
  notifications: AlertDelivery[];
  /** Workflow time at the start of the checks (ISO 8601). */
  checkedAt: string;
}

// The checks are short reads with no side effects, so they run as local activities: no task-queue round trip
// per check (the whole run costs a few milliseconds over the bare checks — see bench/health-latency.ts), while
// each result is still recorded in the history. Alert delivery stays a regular, retried activity.
const quick = proxyLocalActivities<HealthActivities & CommonActivities>(LOCAL_MEASURE);

// App logs can be large; the scan streams the file and honours cancellation.
const logScan = proxyLocalActivities<HealthActivities & CommonActivities>(LOCAL_LOG_SCAN);

export async function dailyHealthCheck(input: DailyHealthCheckInput): Promise<HealthReport> {
  const { environment, requestedBy } = parseInput('dailyHealthCheck', dailyHealthCheckInputSchema, input);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'dailyHealthCheck' },
    { key: RequestedByKey, value: requestedBy },
  ]);

  // Resolve the environment first: an unknown name fails once, cleanly, before any probe is in flight.
  const env = await quick.describeEnvironment(environment);
  const checkedAt = new Date().toISOString();
  const [service, database, redis, disks, memory, log] = await Promise.all([
    quick.probeEndpoint({ environment, endpoint: 'service' }),
    quick.probeEndpoint({ environment, endpoint: 'database' }),
    quick.probeEndpoint({ environment, endpoint: 'redis' }),
    quick.checkDiskUsage({ environment }),
    quick.checkMemoryUsage(),
    logScan.scanAppLog({ environment }),
  ]);

  const { checks, alerts, status } = evaluateHealth(environment, { endpoints: [service, database, redis], disks, memory, log }, env.thresholds);
  const notifications = await notifyAlerts(workflowInfo().workflowId + '/' + workflowInfo().runId, env, alerts);

  upsertSearchAttributes([{ key: OutcomeKey, value: status }]);
  return { environment, status, checks, alerts, notifications, checkedAt };
}
