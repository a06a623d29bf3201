/**
 * Error rate and latency over the window since the previous run, from the app's cumulative counters and
 * histogram buckets (the guide's metric names). Pure functions: the activity stores the snapshot between runs.
 */
import { errorRatePercent, isClientError, isMonitoringRoute, isServerError } from '../../common/http-errors.js';
import type { Sample } from './prometheus-text.js';

/** The counters that matter, summed over every label set except the scrape endpoint itself. */
export interface MetricsSnapshot {
  /** When the snapshot was taken (ms since the epoch). */
  takenAt: number;
  /** process_start_time_seconds of the app: a new value means the process restarted (counters reset). */
  processStart?: number;
  requests: number;
  /** Server errors (5xx, src/common/http-errors.ts). */
  errors: number;
  /** Client errors (4xx): counted apart, never errors (absent in snapshots stored before they were counted). */
  clientErrors?: number;
  durationSum: number;
  durationCount: number;
  /** Cumulative histogram buckets: [upper bound in seconds, count], ascending, +Inf last. */
  buckets: [number, number][];
}

export interface MetricsWindow {
  /** false on the first run (no previous snapshot): only a baseline was taken. */
  hasBaseline: boolean;
  /** The app restarted (or a counter went backwards) inside the window: deltas count from zero. */
  counterReset: boolean;
  windowSeconds: number;
  requests: number;
  /** Server errors (5xx). */
  errors: number;
  /** Client errors (4xx) in the window, shown apart; undefined when the previous snapshot did not count them. */
  clientErrors?: number;
  /** 5xx share in percent (src/common/http-errors.ts, as in the monthly report); undefined when there were no requests. */
  errorRatePercent?: number;
  avgLatencyMs?: number;
  p95LatencyMs?: number;
}

const REQUESTS = 'llmchat_http_requests_total';
const DURATION = 'llmchat_http_request_duration_seconds';

export function snapshotFrom(samples: readonly Sample[], takenAt: number): MetricsSnapshot {
  let requests = 0;
  let errors = 0;
  let clientErrors = 0;
  let durationSum = 0;
  let durationCount = 0;
  let processStart: number | undefined;
  const buckets = new Map<number, number>();
  for (const s of samples) {
    if (!Number.isFinite(s.value) && !(s.name === `${DURATION}_bucket`)) continue;
    if (isMonitoringRoute(s.labels.route)) continue;
    switch (s.name) {
      case REQUESTS:
        requests += s.value;
        if (isServerError(s.labels.status_code)) errors += s.value;
        else if (isClientError(s.labels.status_code)) clientErrors += s.value;
        break;
      case `${DURATION}_sum`:
        durationSum += s.value;
        break;
      case `${DURATION}_count`:
        durationCount += s.value;
        break;
      case `${DURATION}_bucket`: {
        const le = s.labels.le === '+Inf' ? Infinity : Number(s.labels.le);
        if (!Number.isNaN(le) && Number.isFinite(s.value)) buckets.set(le, (buckets.get(le) ?? 0) + s.value);
        break;
      }
      case 'process_start_time_seconds':
        processStart = s.value;
        break;
    }
  }
  return {
    takenAt,
    ...(processStart !== undefined ? { processStart } : {}),
    requests,
    errors,
    clientErrors,
    durationSum,
    durationCount,
    buckets: [...buckets.entries()].sort((a, b) => a[0] - b[0]),
  };
}

/** Like PromQL's histogram_quantile: linear interpolation inside the bucket that holds the quantile. */
export function histogramQuantile(q: number, buckets: readonly [number, number][]): number | undefined {
  const total = buckets.at(-1)?.[1] ?? 0;
  if (total <= 0) return undefined;
  const rank = q * total;
  let prevBound = 0;
  let prevCount = 0;
  for (const [bound, count] of buckets) {
    if (count >= rank) {
      if (bound === Infinity) return prevBound; // beyond the last finite bucket: its bound is all we know
      const inBucket = count - prevCount;
      return inBucket <= 0 ? bound : prevBound + (bound - prevBound) * ((rank - prevCount) / inBucket);
    }
    prevBound = bound;
    prevCount = count;
  }
  return prevBound;
}

/** The window between two snapshots; a restarted app (start time changed, or any counter went down) counts from zero. */
export function windowBetween(prev: MetricsSnapshot | undefined, cur: MetricsSnapshot): MetricsWindow {
  if (!prev) return { hasBaseline: false, counterReset: false, windowSeconds: 0, requests: 0, errors: 0 };
  const prevBuckets = new Map(prev.buckets);
  const reset =
    (prev.processStart !== undefined && cur.processStart !== undefined && prev.processStart !== cur.processStart) ||
    cur.requests < prev.requests ||
    cur.errors < prev.errors ||
    cur.durationCount < prev.durationCount ||
    cur.durationSum < prev.durationSum ||
    cur.buckets.some(([le, n]) => n < (prevBuckets.get(le) ?? 0));
  const base = reset ? undefined : prev;
  const requests = cur.requests - (base?.requests ?? 0);
  const errors = cur.errors - (base?.errors ?? 0);
  const clientErrors = cur.clientErrors === undefined || (base && base.clientErrors === undefined) ? undefined : cur.clientErrors - (base?.clientErrors ?? 0);
  const count = cur.durationCount - (base?.durationCount ?? 0);
  const sum = cur.durationSum - (base?.durationSum ?? 0);
  const buckets = cur.buckets.map(([le, n]): [number, number] => [le, n - (base ? (prevBuckets.get(le) ?? 0) : 0)]);
  const p95 = histogramQuantile(0.95, buckets);
  const round = (n: number) => Math.round(n * 100) / 100;
  return {
    hasBaseline: true,
    counterReset: reset,
    windowSeconds: round((cur.takenAt - prev.takenAt) / 1000),
    requests,
    errors,
    ...(clientErrors !== undefined ? { clientErrors } : {}),
    ...(requests > 0 ? { errorRatePercent: round(errorRatePercent(requests, errors)!) } : {}),
    ...(count > 0 ? { avgLatencyMs: round((sum / count) * 1000) } : {}),
    ...(p95 !== undefined ? { p95LatencyMs: round(p95 * 1000) } : {}),
  };
}
