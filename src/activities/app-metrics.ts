/** The app's Prometheus /metrics, turned into a window since the previous run (snapshot kept on the worker). */
import path from 'node:path';
import { getEnvironment, stateDirOf, type OpsConfig } from '../config.js';
import type { MetricsReading } from '../fault/faults.js';
import { parsePrometheusText } from '../fault/prometheus-text.js';
import { isNum, isObject, readState, withFileLock, writeState } from '../fault/state-file.js';
import { snapshotFrom, windowBetween, type MetricsSnapshot } from '../fault/window.js';
import { permanentOnKnownErrors } from './failures.js';

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
    async measureMetricsWindow(input: { environment: string }): Promise<MetricsReading> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      const file = path.join(stateDirOf(env), 'metrics-snapshot.json');
      let text: string;
      try {
        text = await scrape(new URL('/metrics', env.url).toString(), env.thresholds.httpTimeoutMs);
      } catch (err) {
        const e = err as Error & { cause?: { code?: string } };
        return { scraped: false, error: e.name === 'TimeoutError' ? 'timed out' : (e.cause?.code ?? e.message) };
      }
      const cur = snapshotFrom(parsePrometheusText(text).samples, Date.now());
      return withFileLock(file, async () => {
        const prev = await readState(file, validSnapshot);
        await writeState(file, { ...cur, buckets: cur.buckets.map(([le, n]) => [le === Infinity ? '+Inf' : le, n]) });
        return { scraped: true, window: windowBetween(prev, cur) };
      });
    },
  };
}
