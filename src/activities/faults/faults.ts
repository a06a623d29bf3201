/**
 * 故障检测 — the guide's fault-detection thresholds as pure functions: activities measure, this module judges.
 * Imported by workflow code: deterministic only (no I/O, clocks or randomness).
 */
import type { FaultThresholds, Severity } from '../../common/config/index.js';
import type { EndpointProbe, FilesystemUsage, MemoryUsage } from '../../common/health.js';
import type { LogWindowScan } from './log-cursor.js';
import type { MetricsWindow } from './window.js';

export type RecoveryAction = 'restart' | 'flush-cache';

/** The app's container as the Docker engine sees it. */
export interface ContainerState {
  found: boolean;
  id?: string;
  name?: string;
  /** Docker's state: running, paused, restarting, exited, dead, created. */
  state?: string;
  health?: string;
  restartCount?: number;
  oomKilled?: boolean;
  startedAt?: string;
  error?: string;
}

export interface MetricsReading {
  scraped: boolean;
  error?: string;
  window?: MetricsWindow;
}

export interface FaultMeasurements {
  probe: EndpointProbe;
  metrics: MetricsReading;
  memory: MemoryUsage;
  disks: FilesystemUsage[];
  container: ContainerState;
  logs: LogWindowScan[];
}

/** One check of one run. A failing check is a fault; its key (environment + check) names its alert. */
export interface FaultCheck {
  check: string;
  ok: boolean;
  severity: Severity;
  title: string;
  message: string;
  value?: number;
  threshold?: number;
  /** What auto-recovery does about it, if anything. */
  recovery?: RecoveryAction;
}

/** Check names double as workflow-id parts: lowercase letters, digits and -. */
export function logCheckSuffix(file: string): string {
  const base = file.split('/').pop() ?? file;
  return base.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '').slice(0, 40) || 'log';
}

/** The alert workflow of one fault key: one open alert per environment and check. */
export function alertWorkflowId(environment: string, check: string): string {
  return `llmchat-alert-${environment}-${check}`;
}

const round = (n: number) => Math.round(n * 100) / 100;

export function evaluateFaults(environment: string, m: FaultMeasurements, t: FaultThresholds): FaultCheck[] {
  const checks: FaultCheck[] = [];
  const c = m.container;

  // App unresponsive: the container is not running, or /health does not answer 2xx.
  const containerDown = c.found && c.state !== 'running';
  const probeDown = !m.probe.ok;
  const why = [
    ...(c.found ? (containerDown ? [`container ${c.name ?? c.id} is ${c.state}${c.oomKilled ? ' (OOM-killed)' : ''}`] : []) : [`no container found${c.error ? ` (${c.error})` : ''}`]),
    ...(probeDown ? [`/health ${m.probe.httpStatus ? `answered HTTP ${m.probe.httpStatus}` : `failed: ${m.probe.error ?? 'no answer'}`}`] : []),
  ];
  const down = containerDown || probeDown;
  checks.push({
    check: 'app-down',
    ok: !down,
    severity: 'critical',
    title: 'LLMChat app unresponsive',
    message: down ? `${environment}: ${why.join('; ')}` : `${environment}: /health answered ${m.probe.httpStatus} in ${m.probe.responseTimeMs} ms`,
    recovery: 'restart',
  });

  const w = m.metrics.window;
  const rate = w?.errorRatePercent;
  const enough = (w?.requests ?? 0) >= t.minRequests;
  const rateOver = rate !== undefined && enough && rate > t.errorRatePercent;
  checks.push({
    check: 'error-rate',
    ok: !rateOver,
    severity: 'critical',
    title: 'LLMChat error rate high',
    message: !w?.hasBaseline
      ? `${environment}: ${m.metrics.scraped ? 'first window: baseline taken' : `metrics not scraped: ${m.metrics.error ?? 'unknown'}`}`
      : `${environment}: ${w.errors} of ${w.requests} requests failed (5xx) in the last ${Math.round(w.windowSeconds)} s (${rate ?? 0}%, threshold ${t.errorRatePercent}%${enough ? '' : `, fewer than ${t.minRequests} requests`})${w.clientErrors ? `; ${w.clientErrors} client errors (4xx) not counted` : ''}${w.counterReset ? '; the app restarted in the window' : ''}`,
    ...(rate !== undefined ? { value: rate } : {}),
    threshold: t.errorRatePercent,
    recovery: 'restart',
  });

  // Slow: the window's mean latency, or the probe itself (a hung app answers /health slowly or not at all).
  const avg = w?.avgLatencyMs;
  const slowWindow = avg !== undefined && avg > t.responseTimeMs;
  const slowProbe = m.probe.ok && m.probe.responseTimeMs > t.responseTimeMs;
  const slowValue = slowWindow ? avg : slowProbe ? m.probe.responseTimeMs : avg;
  checks.push({
    check: 'response-time',
    ok: !(slowWindow || slowProbe),
    severity: 'warning',
    title: 'LLMChat responses slow',
    message: `${environment}: mean response time ${avg ?? '-'} ms over the window (p95 ${w?.p95LatencyMs ?? '-'} ms), /health in ${m.probe.responseTimeMs} ms (threshold ${t.responseTimeMs} ms)`,
    ...(slowValue !== undefined ? { value: slowValue } : {}),
    threshold: t.responseTimeMs,
    recovery: 'flush-cache',
  });

  const mem = round(m.memory.usedPercent);
  checks.push({
    check: 'memory',
    ok: mem <= t.memoryPercent,
    severity: 'critical',
    title: 'Memory usage critical',
    message: `${environment}: memory usage ${mem}% (threshold ${t.memoryPercent}%)`,
    value: mem,
    threshold: t.memoryPercent,
  });

  const fullest = [...m.disks].sort((a, b) => b.usedPercent - a.usedPercent)[0];
  if (fullest) {
    const used = round(fullest.usedPercent);
    checks.push({
      check: 'disk',
      ok: used <= t.diskPercent,
      severity: 'critical',
      title: 'Disk usage critical',
      message: `${environment}: ${fullest.path} at ${used}% (threshold ${t.diskPercent}%)`,
      value: used,
      threshold: t.diskPercent,
    });
  }

  for (const log of m.logs) {
    const suffix = logCheckSuffix(log.file);
    if (!log.exists) {
      checks.push({ check: `log-missing-${suffix}`, ok: false, severity: 'warning', title: 'Log file missing', message: `${environment}: ${log.file} does not exist` });
      continue;
    }
    checks.push({ check: `log-missing-${suffix}`, ok: true, severity: 'warning', title: 'Log file missing', message: `${environment}: ${log.file} exists` });
    checks.push({
      check: `log-errors-${suffix}`,
      ok: log.errorLines <= t.logErrorLines,
      severity: 'warning',
      title: 'Too many errors in a log',
      message: `${environment}: ${log.errorLines} new ERROR lines in ${log.file} since the previous run (threshold ${t.logErrorLines})${log.rotated ? ', rotated' : ''}${log.truncated ? ', truncated' : ''}`,
      value: log.errorLines,
      threshold: t.logErrorLines,
    });
    const age = log.ageMinutes ?? 0;
    checks.push({
      check: `log-stale-${suffix}`,
      ok: age <= t.logStaleMinutes,
      severity: 'warning',
      title: 'Log file stale',
      message: `${environment}: ${log.file} last written ${Math.round(age)} min ago (threshold ${t.logStaleMinutes} min)`,
      value: Math.round(age),
      threshold: t.logStaleMinutes,
    });
  }
  return checks;
}

/**
 * The one workflow id under which an environment's fault detection runs: every trigger (the schedule, Alertmanager,
 * `llmchat-ops detect`, a plain `temporal workflow start`) joins the run under this id, or starts it.
 */
export function faultDetectionRunId(environment: string): string {
  return `llmchat-faults-${environment}`;
}
