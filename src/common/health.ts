/**
 * Health vocabulary and the guide's policy, as pure functions: activities measure, this module judges.
 * Imported by workflow code, so it must stay deterministic (no I/O, clocks or randomness).
 */
import type { Severity, Thresholds } from './config/index.js';

export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy';
export type CheckStatus = 'healthy' | 'warning' | 'unhealthy';

/** The three endpoints of the guide's daily check, each probed with the equivalent of `curl -f`. */
export const ENDPOINTS = { service: '/health', database: '/health/db', redis: '/health/redis' } as const;
export type EndpointName = keyof typeof ENDPOINTS;

export interface EndpointProbe {
  name: EndpointName;
  url: string;
  ok: boolean;
  httpStatus?: number;
  responseTimeMs: number;
  error?: string;
}

export interface FilesystemUsage {
  /** The configured path whose filesystem was measured. */
  path: string;
  usedPercent: number;
  totalBytes: number;
  availableBytes: number;
}

export interface MemoryUsage {
  usedPercent: number;
  totalBytes: number;
  availableBytes: number;
}

export interface LogScan {
  file: string;
  exists: boolean;
  /** Lines containing `ERROR` (the guide: `grep -c ERROR`). */
  errorLines: number;
  lines: number;
  bytes: number;
  /** Minutes since the file was last written, measured by the activity. */
  ageMinutes?: number;
}

export interface CheckResult {
  name: string;
  status: CheckStatus;
  message: string;
  value?: number;
  threshold?: number;
}

export interface Alert {
  severity: Severity;
  /** Stable machine-readable kind, e.g. `disk_usage`, `endpoint_down`. */
  type: string;
  title: string;
  message: string;
  environment: string;
  value?: number;
  threshold?: number;
}

export interface Measurements {
  endpoints: EndpointProbe[];
  disks: FilesystemUsage[];
  memory: MemoryUsage;
  log: LogScan;
}

const round = (n: number) => Math.round(n * 100) / 100;

/** The guide's HealthController.aggregateHealthStatus: none unhealthy → healthy; fewer than half → degraded. */
export function aggregateHealthStatus(checks: readonly Pick<CheckResult, 'status'>[]): HealthStatus {
  const unhealthy = checks.filter((c) => c.status === 'unhealthy').length;
  if (unhealthy === 0) return 'healthy';
  if (unhealthy < checks.length / 2) return 'degraded';
  return 'unhealthy';
}

/** Judges the measurements against the thresholds: one check per guide step, and the alerts they raise. */
export function evaluateHealth(
  environment: string,
  m: Measurements,
  t: Thresholds,
): { checks: CheckResult[]; alerts: Alert[]; status: HealthStatus } {
  const checks: CheckResult[] = [];
  const alerts: Alert[] = [];
  const alert = (a: Omit<Alert, 'environment'>) => alerts.push({ ...a, environment });

  for (const probe of m.endpoints) {
    const what = `${probe.name} (${ENDPOINTS[probe.name]})`;
    if (probe.ok) {
      checks.push({ name: probe.name, status: 'healthy', message: `${what} answered ${probe.httpStatus} in ${probe.responseTimeMs} ms`, value: probe.responseTimeMs });
    } else {
      const why = probe.httpStatus ? `HTTP ${probe.httpStatus}` : (probe.error ?? 'no answer');
      checks.push({ name: probe.name, status: 'unhealthy', message: `${what} failed: ${why}` });
      alert({ severity: 'critical', type: 'endpoint_down', title: `LLMChat ${probe.name} check failed`, message: `${environment}: ${what} failed: ${why}` });
    }
  }

  const fullest = [...m.disks].sort((a, b) => b.usedPercent - a.usedPercent)[0];
  if (fullest) {
    const used = round(fullest.usedPercent);
    const over = used > t.diskPercent;
    checks.push({
      name: 'disk',
      status: over ? 'warning' : 'healthy',
      message: `fullest filesystem ${fullest.path} at ${used}% (threshold ${t.diskPercent}%)`,
      value: used,
      threshold: t.diskPercent,
    });
    for (const fs of m.disks.filter((d) => round(d.usedPercent) > t.diskPercent)) {
      alert({ severity: 'warning', type: 'disk_usage', title: 'Disk usage high', message: `${environment}: disk usage of ${fs.path} is ${round(fs.usedPercent)}% (> ${t.diskPercent}%)`, value: round(fs.usedPercent), threshold: t.diskPercent });
    }
  }

  const mem = round(m.memory.usedPercent);
  const memOver = mem > t.memoryPercent;
  checks.push({ name: 'memory', status: memOver ? 'warning' : 'healthy', message: `memory at ${mem}% (threshold ${t.memoryPercent}%)`, value: mem, threshold: t.memoryPercent });
  if (memOver) {
    alert({ severity: 'warning', type: 'memory_usage', title: 'Memory usage high', message: `${environment}: memory usage is ${mem}% (> ${t.memoryPercent}%)`, value: mem, threshold: t.memoryPercent });
  }

  checks.push(evaluateLog(environment, m.log, t, alert));
  return { checks, alerts, status: aggregateHealthStatus(checks) };
}

function evaluateLog(environment: string, log: LogScan, t: Thresholds, alert: (a: Omit<Alert, 'environment'>) => void): CheckResult {
  if (!log.exists) {
    alert({ severity: 'warning', type: 'log_missing', title: 'App log missing', message: `${environment}: app log ${log.file} does not exist` });
    return { name: 'log', status: 'warning', message: `app log ${log.file} does not exist` };
  }
  const problems: string[] = [];
  if (log.errorLines > t.logErrorLines) {
    problems.push(`${log.errorLines} ERROR lines (> ${t.logErrorLines})`);
    alert({ severity: 'warning', type: 'log_errors', title: 'Too many errors in the app log', message: `${environment}: ${log.errorLines} ERROR lines in ${log.file} (> ${t.logErrorLines})`, value: log.errorLines, threshold: t.logErrorLines });
  }
  if (log.ageMinutes !== undefined && log.ageMinutes > t.logStaleMinutes) {
    problems.push(`not written for ${Math.round(log.ageMinutes)} min (> ${t.logStaleMinutes})`);
    alert({ severity: 'warning', type: 'log_stale', title: 'App log is stale', message: `${environment}: ${log.file} not written for ${Math.round(log.ageMinutes)} minutes (> ${t.logStaleMinutes})`, value: Math.round(log.ageMinutes), threshold: t.logStaleMinutes });
  }
  return {
    name: 'log',
    status: problems.length ? 'warning' : 'healthy',
    message: problems.length ? problems.join('; ') : `${log.errorLines} ERROR lines in ${log.lines} lines`,
    value: log.errorLines,
    threshold: t.logErrorLines,
  };
}
