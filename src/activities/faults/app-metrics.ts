/** The app's Prometheus /metrics, turned into a window since the previous run (snapshot kept on the worker). */
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import type { MetricsReading } from './faults.js';
import { parsePrometheusText } from './prometheus-text.js';
import { changeFaultState } from './shared-state.js';
import { faultStateKey, isNum, isObject } from './state-file.js';
import { snapshotFrom, windowBetween, type MetricsSnapshot } from './window.js';
import { context } from '../common/activity-support.js';
import { permanentOnKnownErrors } from '../common/failures.js';

const MAX_BYTES = 8 * 1024 * 1024;

function validSnapshot(v: unknown): MetricsSnapshot | undefined {
  if (!isObject(v) || !isNum(v.takenAt) || !isNum(v.requests) || !isNum(v.errors) || !isNum(v.durationSum) || !isNum(v.durationCount)) return undefined;
  if (!Array.isArray(v.buckets)) return undefined;
  const buckets: [number, number][] = [];
  for (const b of v.buckets) {
    // JSON has no Infinity: the +Inf bucket is stored as the string "+Inf".
    if (!Array.isArray(b) || b.length !== 2 || !isNum(b[1])) return undefined;
    const le = b[0] === '+Inf' ? Infinity : b[0];
    if (typeof le !== 'number') return undefined;
    buckets.push([le, b[1]]);
  }
  return { takenAt: v.takenAt, ...(isNum(v.processStart) ? { processStart: v.processStart } : {}), requests: v.requests, errors: v.errors, ...(isNum(v.clientErrors) ? { clientErrors: v.clientErrors } : {}), durationSum: v.durationSum, durationCount: v.durationCount, buckets };
}

interface StoredSnapshots {
  current: MetricsSnapshot;
  previous?: MetricsSnapshot;
  /** The detection run that took `current` (from `previous`). */
  takenBy?: string;
}

function validStored(v: unknown): StoredSnapshots | undefined {
  if (!isObject(v)) return undefined;
  const current = validSnapshot(v.current);
  if (!current) return undefined;
  const previous = v.previous === undefined ? undefined : validSnapshot(v.previous);
  return { current, ...(previous ? { previous } : {}), ...(typeof v.takenBy === 'string' ? { takenBy: v.takenBy } : {}) };
}

/** JSON has no Infinity: the +Inf bucket is stored as the string "+Inf". */
const storable = (s: MetricsSnapshot) => ({ ...s, buckets: s.buckets.map(([le, n]) => [le === Infinity ? '+Inf' : le, n]) });

async function scrape(url: string, timeoutMs: number): Promise<string> {
  const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'manual' });
  if (!res.ok) {
    await res.arrayBuffer();
    throw new Error(`${url} answered HTTP ${res.status}`);
  }
  const declared = Number(res.headers.get('content-length') ?? 0);
  if (declared > MAX_BYTES) throw new Error(`${url} is ${declared} bytes (limit ${MAX_BYTES})`);
  const text = await res.text();
  if (text.length > MAX_BYTES) throw new Error(`${url} is larger than ${MAX_BYTES} bytes`);
  return text;
}

export function createAppMetricsActivities(cfg: OpsConfig) {
  return {
    /**
     * Scrapes the app's /metrics and returns error rate and latency over the window since the previous scrape.
     * A failed scrape is a reading (the app may be down), not an activity failure; the stored snapshot then
     * stays, and the next successful scrape sees the restart through process_start_time_seconds.
     */
    async measureMetricsWindow(input: { environment: string; runKey?: string }): Promise<MetricsReading> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      const key = faultStateKey(input.environment, env);
      const runKey = typeof input.runKey === 'string' ? input.runKey.slice(0, 300) : undefined;
      let text: string;
      try {
        text = await scrape(new URL('/metrics', env.url).toString(), env.thresholds.httpTimeoutMs);
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        return { scraped: false, error: e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? e.message) };
      }
      const cur = snapshotFrom(parsePrometheusText(text).samples, Date.now());
      // The snapshot is shared by every worker (src/activities/faults/shared-state.ts): a window measured on another host
      // starts where the last one ended.
      return changeFaultState(env, key, 'metrics-snapshot', validStored, async (stored) => {
        // A retried attempt of the same run (its first attempt wrote the file, then its result was lost) measures
        // from the snapshot that attempt started from, so the window is not cut down to the seconds between attempts.
        const prev = runKey !== undefined && stored?.takenBy === runKey ? stored.previous : stored?.current;
        const next = { current: storable(cur), ...(prev ? { previous: storable(prev) } : {}), ...(runKey !== undefined ? { takenBy: runKey } : {}) };
        return { next, result: { scraped: true as const, window: windowBetween(prev, cur) } };
      }, (msg, meta) => (context()?.log ?? console).warn(msg, meta));
    },
  };
}
