/**
 * The app's Prometheus counters that a bake watches (the guide's metric names), and the judgement of a bake
 * window. Pure functions: the parsing runs on the worker, the judgement in the workflow.
 */
import { isMonitoringRoute, isServerError } from '../../common/http-errors.js';

export interface AppMetricsSample {
  /** Requests answered (all routes but /metrics itself). */
  requests: number;
  /** Of which 5xx. */
  errors: number;
  /** Sum and count of llmchat_http_request_duration_seconds (all routes but /metrics). */
  durationSeconds: number;
  durationCount: number;
}

function labels(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of text.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) out[m[1] as string] = m[2] as string;
  return out;
}

/** Reads llmchat_http_requests_total and the request-duration histogram out of a /metrics text. */
export function parseAppMetrics(text: string): AppMetricsSample {
  const s: AppMetricsSample = { requests: 0, errors: 0, durationSeconds: 0, durationCount: 0 };
  for (const line of text.split('\n')) {
    const m = /^(llmchat_http_requests_total|llmchat_http_request_duration_seconds_sum|llmchat_http_request_duration_seconds_count)\{([^}]*)\}\s+(\S+)/.exec(line);
    if (!m) continue;
    const l = labels(m[2] as string);
    if (isMonitoringRoute(l.route)) continue;
    const v = Number(m[3]);
    if (!Number.isFinite(v)) continue;
    if (m[1] === 'llmchat_http_requests_total') {
      s.requests += v;
      if (isServerError(l.status_code)) s.errors += v;
    } else if (m[1] === 'llmchat_http_request_duration_seconds_sum') s.durationSeconds += v;
    else s.durationCount += v;
  }
  return s;
}

export interface BakeThresholds {
  errorRatePercent: number;
  avgLatencyMs: number;
  minRequests: number;
}

export interface BakeVerdict {
  ok: boolean;
  requests: number;
  errorRatePercent: number;
  avgLatencyMs: number;
  reason: string;
}

/** Compares two samples of the same process: the error rate and mean latency of the requests in between. */
export function judgeBake(first: AppMetricsSample, last: AppMetricsSample, t: BakeThresholds): BakeVerdict {
  const requests = Math.max(0, last.requests - first.requests);
  const errors = Math.max(0, last.errors - first.errors);
  const count = Math.max(0, last.durationCount - first.durationCount);
  const seconds = Math.max(0, last.durationSeconds - first.durationSeconds);
  const errorRatePercent = requests ? Math.round((errors / requests) * 10_000) / 100 : 0;
  const avgLatencyMs = count ? Math.round((seconds / count) * 1_000_000) / 1000 : 0;
  if (requests < t.minRequests) return { ok: true, requests, errorRatePercent, avgLatencyMs, reason: `only ${requests} requests (< ${t.minRequests}): nothing to judge` };
  if (errorRatePercent > t.errorRatePercent) return { ok: false, requests, errorRatePercent, avgLatencyMs, reason: `error rate ${errorRatePercent}% > ${t.errorRatePercent}% over ${requests} requests` };
  if (avgLatencyMs > t.avgLatencyMs) return { ok: false, requests, errorRatePercent, avgLatencyMs, reason: `mean response time ${avgLatencyMs} ms > ${t.avgLatencyMs} ms over ${requests} requests` };
  return { ok: true, requests, errorRatePercent, avgLatencyMs, reason: `error rate ${errorRatePercent}%, mean ${avgLatencyMs} ms over ${requests} requests` };
}
