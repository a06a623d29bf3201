/**
 * 性能分析 — the guide's performance-analysis.js as a workflow: for a month (default: the previous one) read
 * latency (average, p95, p99), error rate with 4xx/5xx counts, throughput, CPU, memory, disk, database connections
 * and the busiest routes from Prometheus, query times and slow queries from pg_stat_statements; judge them by the
 * guide's thresholds (average > 500 ms, errors > 1 %, memory > 80 %), alert through the notification routes, and
 * write the report as Markdown and as a self-contained HTML page with charts.
 */
import { proxyActivities, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { ReportActivities } from '../../activities/report/index.js';
import type { MaintenanceActivities } from '../../activities/maintenance/index.js';
import type { CommonActivities } from '../../activities/common/index.js';
import type { Alert } from '../../common/health.js';
import { analyse, monthRange, previousMonth } from '../../activities/report/analysis.js';
import { EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../../common/search-attributes.js';
import { badInput, parseInput } from '../common/inputs.js';
import { monthlyPerformanceReportInputSchema } from './shared.js';
import { notifyAlerts, type AlertDelivery } from '../common/notify-alerts.js';
import { REPORT_QUERIES } from '../common/activity-options.js';

export interface MonthlyPerformanceReportInput {
  environment: string;
  /** YYYY-MM; default: the month before the run. */
  month?: string;
  requestedBy?: string;
}

export interface MonthlyPerformanceReportResult {
  environment: string;
  month: string;
  markdownFile: string;
  htmlFile: string;
  alerts: Alert[];
  notifications: AlertDelivery[];
  recommendations: string[];
  figures: { averageMs: number | null; p95Ms: number | null; p99Ms: number | null; errorPercent: number | null; requests: number; memoryPercent: number | null };
}

const act = proxyActivities<ReportActivities & MaintenanceActivities & CommonActivities>(REPORT_QUERIES);

export async function monthlyPerformanceReport(input: MonthlyPerformanceReportInput): Promise<MonthlyPerformanceReportResult> {
  const parsed = parseInput('monthlyPerformanceReport', monthlyPerformanceReportInputSchema, input);
  const { environment, requestedBy } = parsed;
  const month = parsed.month ?? previousMonth(new Date());
  if (monthRange(month).end > Date.now()) throw badInput(`Expected \`month\` to be a month that has ended, got ${month}`);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'monthlyPerformanceReport' },
    { key: RequestedByKey, value: requestedBy },
  ]);
  const env = await act.describeEnvironment(environment);
  const thresholds = await act.reportThresholds();
  const figures = await act.collectPerformanceMetrics({ environment, month });
  const database = await act.databasePerformance({ environment });
  const analysis = analyse(figures, database, thresholds);
  const files = await act.writePerformanceReport({ figures, database, analysis, generatedAt: new Date().toISOString() });
  const notifications = await notifyAlerts(`${workflowInfo().workflowId}/${workflowInfo().runId}`, env, analysis.alerts);
  upsertSearchAttributes([{ key: OutcomeKey, value: analysis.alerts.some((a) => a.severity === 'critical') ? 'critical' : analysis.alerts.length ? 'warning' : 'success' }]);
  return {
    environment,
    month,
    ...files,
    alerts: analysis.alerts,
    notifications,
    recommendations: analysis.recommendations,
    figures: { averageMs: figures.averageMs, p95Ms: figures.p95Ms, p99Ms: figures.p99Ms, errorPercent: figures.errorPercent, requests: figures.requests, memoryPercent: figures.memoryPercent },
  };
}
