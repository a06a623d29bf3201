/** Section `report`: the monthly performance report (Prometheus, pg_stat_statements) and its thresholds. */
import { z } from 'zod';

import { durationIn } from './duration.js';
import { httpUrl, percent } from './fields.js';

const reportThresholdsSchema = z.strictObject({
  /** Average latency above which the report flags it, in ms or as a duration like "500ms" (the guide: 500 ms). */
  averageLatencyMs: durationIn('ms', z.number().positive()).default(500),
  /** Error rate above which the report flags it (the guide: 1 %). */
  errorPercent: percent.default(1),
  /** Memory usage above which the report flags it (the guide: 80 %). */
  memoryPercent: percent.default(80),
});

export const reportSchema = z.strictObject({
  /** The Prometheus that scrapes the app; without it the monthly report fails saying so. */
  prometheusUrl: httpUrl.optional(),
  /** Prometheus `job` of the app's scrape config; each environment's series carry `environment="<name>"` (monitoring/prometheus/prometheus.yml). */
  job: z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'must be a plain job name').default('llmchat-app'),
  /** Where reports are written (relative to the config file). Default reports. */
  directory: z.string().min(1).default('reports'),
  /** The guide's thresholds: average latency 500 ms, error rate 1 %, memory 80 %. */
  thresholds: reportThresholdsSchema.default({ averageLatencyMs: 500, errorPercent: 1, memoryPercent: 80 }),
  /** Queries slower than this on average count as slow (pg_stat_statements), in ms or as a duration like "100ms". */
  slowQueryMs: durationIn('ms', z.number().positive()).default(100),
});
export type ReportSettings = z.infer<typeof reportSchema>;
