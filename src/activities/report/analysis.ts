/**
 * The monthly performance analysis as pure functions: the figures (collected by activities from Prometheus and
 * PostgreSQL), the guide's thresholds (average > 500 ms warning, errors > 1 % critical, memory > 80 % warning)
 * and recommendations. Imported by workflow code: deterministic, no I/O.
 */
import type { Alert } from '../../common/health.js';

export interface DailyPoint {
  /** YYYY-MM-DD (UTC) */
  day: string;
  requests: number;
  averageMs: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  /** Server errors (5xx) of the day, in percent. */
  errorPercent: number | null;
}

export interface PerformanceFigures {
  environment: string;
  month: string;
  /** The Prometheus job the app's series were selected by. */
  job: string;
  requests: number;
  averageMs: number | null;
  p50Ms: number | null;
  p95Ms: number | null;
  p99Ms: number | null;
  /** Server errors (5xx) over all user requests, as fault detection counts them (src/common/http-errors.ts). */
  errorPercent: number | null;
  /** Client errors (4xx) over all user requests: shown apart, not errors of the app. */
  clientErrorPercent?: number | null;
  clientErrors: number;
  serverErrors: number;
  requestsPerSecond: number;
  requestsPerDay: number;
  cpuPercent: number | null;
  memoryPercent: number | null;
  diskPercent: number | null;
  databaseConnections: { average: number | null; max: number | null };
  busiestRoutes: { route: string; requests: number }[];
  daily: DailyPoint[];
  /** What Prometheus had no series for (so the report can say "not measured" instead of 0). */
  missing: string[];
}

export interface SlowQuery {
  query: string;
  calls: number;
  meanMs: number;
  totalMs: number;
}

export interface DatabasePerformance {
  /** pg_stat_statements figures, or why there are none. */
  statements: { enabled: true; averageMs: number; slowQueries: number; slowest: SlowQuery[]; slowQueryMs: number } | { enabled: false; reason: string };
  connections: number;
}

export interface ReportThresholds {
  averageLatencyMs: number;
  errorPercent: number;
  memoryPercent: number;
}

export interface PerformanceAnalysis {
  alerts: Alert[];
  recommendations: string[];
}

const fmt = (n: number, digits = 1) => n.toFixed(digits);

export function analyse(f: PerformanceFigures, db: DatabasePerformance, t: ReportThresholds): PerformanceAnalysis {
  const alerts: Alert[] = [];
  const recommendations: string[] = [];
  const env = f.environment;
  if (f.averageMs !== null && f.averageMs > t.averageLatencyMs) {
    alerts.push({ severity: 'warning', type: 'performance', title: 'Average response time too high', message: `${env} ${f.month}: average response time ${fmt(f.averageMs)} ms > ${t.averageLatencyMs} ms`, environment: env, value: f.averageMs, threshold: t.averageLatencyMs });
  }
  if (f.errorPercent !== null && f.errorPercent > t.errorPercent) {
    alerts.push({ severity: 'critical', type: 'error_rate', title: 'Error rate too high', message: `${env} ${f.month}: error rate ${fmt(f.errorPercent, 2)} % > ${t.errorPercent} % (${f.serverErrors} server errors (5xx); ${f.clientErrors} client errors (4xx) not counted)`, environment: env, value: f.errorPercent, threshold: t.errorPercent });
  }
  if (f.memoryPercent !== null && f.memoryPercent > t.memoryPercent) {
    alerts.push({ severity: 'warning', type: 'memory', title: 'Memory usage too high', message: `${env} ${f.month}: average memory usage ${fmt(f.memoryPercent)} % > ${t.memoryPercent} %`, environment: env, value: f.memoryPercent, threshold: t.memoryPercent });
  }

  if (f.p99Ms !== null && f.p99Ms > 2000) recommendations.push(`p99 latency is ${fmt(f.p99Ms)} ms: look at the slowest routes (${f.busiestRoutes.slice(0, 3).map((r) => r.route).join(', ')}) and their database queries.`);
  if (f.averageMs !== null && f.averageMs > t.averageLatencyMs) recommendations.push('Average latency is over the guide\'s 500 ms: profile the busiest routes, cache hot reads in Redis, check the slow queries below.');
  if (f.serverErrors > 0 && f.errorPercent !== null && f.errorPercent > t.errorPercent) recommendations.push(`${f.serverErrors} server errors (5xx): check the app log and the fault-detection alerts of the worst days.`);
  if (f.clientErrors > f.serverErrors * 5 && f.clientErrors > 0) recommendations.push(`${f.clientErrors} client errors (4xx) dominate: check clients for bad requests or missing routes.`);
  if (f.memoryPercent !== null && f.memoryPercent > t.memoryPercent) recommendations.push('Memory usage is high: check for leaks (RSS growth over the month) or give the host more memory.');
  if (f.cpuPercent !== null && f.cpuPercent > 80) recommendations.push(`CPU averaged ${fmt(f.cpuPercent)} %: scale out the app or reduce per-request work.`);
  if (f.diskPercent !== null && f.diskPercent > 80) recommendations.push(`Disk is ${fmt(f.diskPercent)} % full: run the weekly cleanup and check backup retention.`);
  if (db.statements.enabled && db.statements.slowQueries > 0) recommendations.push(`${db.statements.slowQueries} query shapes average over ${db.statements.slowQueryMs} ms: run \`llmchat-ops optimize\` (indexes, VACUUM ANALYZE) and check their plans.`);
  if (!db.statements.enabled) recommendations.push(`Enable pg_stat_statements to measure query times (${db.statements.reason}).`);
  if (f.missing.length) recommendations.push(`Not measured this month: ${f.missing.join(', ')} — add the missing exporters/scrape jobs to Prometheus.`);
  if (recommendations.length === 0) recommendations.push('All figures are within the guide\'s thresholds; no action needed.');
  return { alerts, recommendations };
}

/** The month before the one `now` falls in, as YYYY-MM (UTC). */
export function previousMonth(now: Date): string {
  const y = now.getUTCFullYear();
  const m = now.getUTCMonth(); // 0-based: the previous month's 1-based number
  return m === 0 ? `${y - 1}-12` : `${y}-${String(m).padStart(2, '0')}`;
}

/** [start, end) of a YYYY-MM month in UTC milliseconds. */
export function monthRange(month: string): { start: number; end: number; days: number } {
  const [y, m] = month.split('-').map(Number) as [number, number];
  const start = Date.UTC(y, m - 1, 1);
  const end = Date.UTC(y, m, 1);
  return { start, end, days: Math.round((end - start) / 86_400_000) };
}
