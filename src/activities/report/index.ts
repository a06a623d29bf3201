/** The monthly performance report: Prometheus queries and the report files. */
import type { OpsConfig } from '../../common/config/index.js';
import { createPrometheusActivities } from './prometheus.js';
import { createReportFileActivities } from './report-files.js';

export function reportActivities(cfg: OpsConfig) {
  return {
    ...createPrometheusActivities(cfg),
    ...createReportFileActivities(cfg),
  };
}

/** What the feature's workflows proxy: `proxyActivities<ReportActivities>(…)`. */
export type ReportActivities = ReturnType<typeof reportActivities>;
