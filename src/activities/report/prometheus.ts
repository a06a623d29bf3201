/**
 * Prometheus activities: the monthly performance figures, queried from the Prometheus that scrapes the app
 * (report.prometheusUrl) over the HTTP API. Without a configured Prometheus, or with no series of the app's job in
 * the month, the activity fails permanently saying exactly what is missing.
 */
import { ApplicationFailure } from '@temporalio/common';
import { z } from 'zod';
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { errorRatePercent, PROMQL_CLIENT_ERRORS, PROMQL_SERVER_ERRORS, PROMQL_USER_TRAFFIC } from '../../common/http-errors.js';
import { monthRange, type DailyPoint, type PerformanceFigures } from './analysis.js';
import { asFailure } from '../common/failures.js';

const vectorResponse = z.object({
  status: z.literal('success'),
  data: z.object({
    resultType: z.enum(['vector', 'matrix', 'scalar', 'string']),
    result: z.array(z.object({ metric: z.record(z.string(), z.string()), value: z.tuple([z.number(), z.string()]).optional(), values: z.array(z.tuple([z.number(), z.string()])).optional() })),
  }),
});
type Series = z.infer<typeof vectorResponse>['data']['result'];

const num = (s: string | undefined): number | null => {
  if (s === undefined) return null;
  const n = Number(s);
  return Number.isFinite(n) ? n : null;
};

export function createPrometheusActivities(cfg: OpsConfig) {
  async function api(base: string, path: string, params: Record<string, string>): Promise<Series> {
    const url = new URL(path, base.endsWith('/') ? base : `${base}/`);
    let res: Response;
    try {
      res = await fetch(url, { method: 'POST', body: new URLSearchParams(params), signal: AbortSignal.timeout(60_000) });
    } catch (err) {
      const cause = (err as Error).cause as (Error & { code?: string }) | undefined;
      if (cause?.code === 'ECONNREFUSED') {
        // Nothing listens there: retrying for minutes would only delay the answer the operator needs.
        throw ApplicationFailure.nonRetryable(
          `Prometheus at ${base} refuses connections (nothing listens there): start it with \`scripts/services.sh up monitoring\` (\`npm start\` runs it too), or set report.prometheusUrl (LLMCHAT_PROMETHEUS_URL in ops.config.yaml) to the Prometheus that scrapes the app`,
          'PrometheusUnreachable',
        );
      }
      // Anything else (a timeout, a reset) is retried by Temporal: Prometheus may be restarting or busy.
      throw new Error(`Prometheus at ${base} is unreachable: ${cause instanceof Error ? cause.message : (err as Error).message}`);
    }
    const text = await res.text();
    if (res.status === 400 || res.status === 422) throw ApplicationFailure.nonRetryable(`Prometheus refused the query ${params.query}: ${text.slice(0, 300)}`, 'BadQuery');
    if (!res.ok) throw new Error(`Prometheus answered HTTP ${res.status}: ${text.slice(0, 200)}`);
    const parsed = vectorResponse.safeParse(JSON.parse(text));
    if (!parsed.success) throw ApplicationFailure.nonRetryable(`Unexpected Prometheus answer for ${params.query}`, 'BadPrometheusAnswer');
    return parsed.data.data.result;
  }

  return {
    /** The month's figures of the environment's app (series `{job=<report.job>, environment=<env>}`). */
    async collectPerformanceMetrics(input: { environment: string; month: string }): Promise<PerformanceFigures> {
      try {
        getEnvironment(cfg, input.environment);
      } catch (err) {
        throw asFailure(err);
      }
      const base = cfg.report.prometheusUrl;
      if (!base) {
        throw ApplicationFailure.nonRetryable(
          'No Prometheus configured: set report.prometheusUrl in the config to the Prometheus that scrapes the app (the monthly report reads request, latency and resource metrics from it)',
          'PrometheusNotConfigured',
        );
      }
      const job = cfg.report.job;
      const { start, end, days } = monthRange(input.month);
      const time = String(end / 1000);
      const w = `${days}d`;
      // User traffic only, errors as fault detection counts them (src/common/http-errors.ts): 5xx; 4xx apart.
      const sel = (extra = '') => `{job="${job}",environment="${input.environment}",${PROMQL_USER_TRAFFIC}${extra}}`;
      const q = async (query: string) => api(base, 'api/v1/query', { query, time });
      const scalar = async (query: string) => num((await q(query))[0]?.value?.[1]);
      const missing: string[] = [];
      const need = async (what: string, query: string) => {
        const v = await scalar(query);
        if (v === null) missing.push(what);
        return v;
      };

      const requests = await scalar(`sum(increase(llmchat_http_requests_total${sel()}[${w}]))`);
      if (requests === null || requests === 0) {
        throw ApplicationFailure.nonRetryable(
          `Prometheus at ${base} has no llmchat_http_requests_total series of job "${job}", environment "${input.environment}" in ${input.month}: is it scraping the app (job name in report.job, label environment on the target), and was its data kept that long (--storage.tsdb.retention.time)?`,
          'NoMetrics',
        );
      }
      const clientErrors = (await scalar(`sum(increase(llmchat_http_requests_total${sel(`,${PROMQL_CLIENT_ERRORS}`)}[${w}]))`)) ?? 0;
      const serverErrors = (await scalar(`sum(increase(llmchat_http_requests_total${sel(`,${PROMQL_SERVER_ERRORS}`)}[${w}]))`)) ?? 0;
      const hist = (qq: number, range: string) => `histogram_quantile(${qq}, sum by (le) (increase(llmchat_http_request_duration_seconds_bucket${sel()}[${range}]))) * 1000`;
      const avg = (range: string) => `sum(increase(llmchat_http_request_duration_seconds_sum${sel()}[${range}])) / sum(increase(llmchat_http_request_duration_seconds_count${sel()}[${range}])) * 1000`;
      const errRate = (range: string) => `sum(increase(llmchat_http_requests_total${sel(`,${PROMQL_SERVER_ERRORS}`)}[${range}])) / sum(increase(llmchat_http_requests_total${sel()}[${range}])) * 100`;

      const figures: PerformanceFigures = {
        environment: input.environment,
        month: input.month,
        job,
        requests: Math.round(requests),
        averageMs: await need('latency histogram', avg(w)),
        p50Ms: await scalar(hist(0.5, w)),
        p95Ms: await scalar(hist(0.95, w)),
        p99Ms: await scalar(hist(0.99, w)),
        errorPercent: errorRatePercent(requests, serverErrors) ?? null,
        clientErrorPercent: errorRatePercent(requests, clientErrors) ?? null,
        clientErrors: Math.round(clientErrors),
        serverErrors: Math.round(serverErrors),
        requestsPerSecond: requests / (days * 86_400),
        requestsPerDay: requests / days,
        cpuPercent: await need('CPU (process_cpu_seconds_total)', `avg(avg_over_time(rate(process_cpu_seconds_total${sel()}[1h])[${w}:1h])) * 100`),
        memoryPercent: await need('memory (node_memory_MemAvailable_bytes)', `avg(avg_over_time((1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes)[${w}:1h])) * 100`),
        diskPercent: await need('disk (node_filesystem_avail_bytes)', `avg(avg_over_time((1 - node_filesystem_avail_bytes{mountpoint="/"} / node_filesystem_size_bytes{mountpoint="/"})[${w}:1h])) * 100`),
        databaseConnections: {
          average: await need('database connections', `avg(avg_over_time(llmchat_database_connections_active${sel()}[${w}]))`),
          max: await scalar(`max(max_over_time(llmchat_database_connections_active${sel()}[${w}]))`),
        },
        busiestRoutes: (await q(`topk(5, sum by (route) (increase(llmchat_http_requests_total${sel()}[${w}])))`))
          .map((s) => ({ route: s.metric.route ?? '(none)', requests: Math.round(num(s.value?.[1]) ?? 0) }))
          .sort((a, b) => b.requests - a.requests),
        daily: [],
        missing,
      };

      // Per day: each point covers the day ending at its timestamp.
      const range = async (query: string) => {
        const r = await api(base, 'api/v1/query_range', { query, start: String(start / 1000 + 86_400), end: String(end / 1000), step: '86400' });
        return new Map((r[0]?.values ?? []).map(([t, v]) => [t, num(v)]));
      };
      const [reqs, avgs, p95s, p99s, errs] = await Promise.all([
        range(`sum(increase(llmchat_http_requests_total${sel()}[1d]))`),
        range(avg('1d')),
        range(hist(0.95, '1d')),
        range(hist(0.99, '1d')),
        range(errRate('1d')),
      ]);
      for (let d = 0; d < days; d++) {
        const t = start / 1000 + (d + 1) * 86_400;
        const point: DailyPoint = {
          day: new Date(start + d * 86_400_000).toISOString().slice(0, 10),
          requests: Math.round(reqs.get(t) ?? 0),
          averageMs: avgs.get(t) ?? null,
          p95Ms: p95s.get(t) ?? null,
          p99Ms: p99s.get(t) ?? null,
          errorPercent: errs.get(t) ?? null,
        };
        figures.daily.push(point);
      }
      return figures;
    },
  };
}
