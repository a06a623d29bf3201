/**
 * The monthly report as Markdown (the guide's layout) and as one self-contained HTML page: inline CSS and inline
 * SVG charts (latency percentiles and error rate per day), no script, no font, no image from anywhere — a
 * Content-Security-Policy of default-src 'none' makes sure it renders with no network at all.
 */
import type { DatabasePerformance, DailyPoint, PerformanceAnalysis, PerformanceFigures } from './analysis.js';

export const CHART_COLOURS = { average: '#16a34a', p95: '#2563eb', p99: '#dc2626', errors: '#f59e0b' } as const;

const f = (n: number | null | undefined, digits = 1, unit = '') => (n === null || n === undefined ? 'not measured' : `${n.toFixed(digits)}${unit}`);
const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

export function renderMarkdown(fig: PerformanceFigures, db: DatabasePerformance, analysis: PerformanceAnalysis, generatedAt: string): string {
  const st = db.statements;
  const lines = [
    `# LLMChat 性能分析报告 / performance report — ${fig.environment}, ${fig.month}`,
    '',
    `Generated ${generatedAt} from Prometheus (job \`${fig.job}\`).`,
    '',
    '## 响应时间 Response time',
    `- 平均响应时间 average: ${f(fig.averageMs, 2, ' ms')}`,
    `- P50: ${f(fig.p50Ms, 1, ' ms')}`,
    `- P95响应时间: ${f(fig.p95Ms, 1, ' ms')}`,
    `- P99响应时间: ${f(fig.p99Ms, 1, ' ms')}`,
    '',
    '## 错误率 Error rate',
    `- 错误率 error rate (5xx, as fault detection counts it): ${f(fig.errorPercent, 2, ' %')}`,
    `- 5xx错误: ${fig.serverErrors}次`,
    `- 4xx错误: ${fig.clientErrors}次 (client errors, not counted as errors: ${f(fig.clientErrorPercent, 2, ' %')} of the requests)`,
    '',
    '## 吞吐量 Throughput',
    `- 每秒请求数 requests per second: ${fig.requestsPerSecond.toFixed(3)}`,
    `- 每日请求数 requests per day: ${Math.round(fig.requestsPerDay)}`,
    `- requests in the month: ${fig.requests}`,
    '',
    '### Busiest routes',
    '| route | requests |',
    '|---|---:|',
    ...fig.busiestRoutes.map((r) => `| \`${r.route}\` | ${r.requests} |`),
    '',
    '## 资源使用 Resources',
    `- CPU使用率: ${f(fig.cpuPercent, 1, ' %')}`,
    `- 内存使用率 memory: ${f(fig.memoryPercent, 1, ' %')}`,
    `- 磁盘使用率 disk: ${f(fig.diskPercent, 1, ' %')}`,
    '',
    '## 数据库性能 Database',
    `- 连接数 connections (app pool, average / max over the month): ${f(fig.databaseConnections.average, 1)} / ${f(fig.databaseConnections.max, 0)}; open now: ${db.connections}`,
    ...(st.enabled
      ? [
          `- 查询平均时间 average query time (pg_stat_statements, since its last reset): ${st.averageMs.toFixed(2)} ms`,
          `- 慢查询数量 query shapes averaging over ${st.slowQueryMs} ms: ${st.slowQueries}`,
          ...st.slowest.map((q) => `  - ${q.meanMs.toFixed(1)} ms × ${q.calls}: \`${q.query.replace(/\s+/g, ' ').replace(/`/g, "'").slice(0, 160)}\``),
        ]
      : [`- query times: not measured (${st.reason})`]),
    '',
    '## 每日 Per day',
    '| day | requests | avg ms | p95 ms | p99 ms | 5xx % |',
    '|---|---:|---:|---:|---:|---:|',
    ...fig.daily.map((d) => `| ${d.day} | ${d.requests} | ${f(d.averageMs, 1)} | ${f(d.p95Ms, 1)} | ${f(d.p99Ms, 1)} | ${f(d.errorPercent, 2)} |`),
    '',
    '## 告警 Alerts',
    ...(analysis.alerts.length ? analysis.alerts.map((a) => `- **${a.severity}**: ${a.message}`) : ['- none']),
    '',
    '## 建议 Recommendations',
    ...analysis.recommendations.map((r) => `- ${r}`),
    '',
  ];
  return lines.join('\n');
}

interface Line {
  label: string;
  colour: string;
  values: (number | null)[];
}

/** A line chart (or, with `bars`, a bar chart) of per-day values, as inline SVG. */
export function svgChart(title: string, days: DailyPoint[], lines: Line[], unit: string, bars = false): string {
  const W = 900, H = 300, L = 60, R = 20, T = 36, B = 40;
  const all = lines.flatMap((l) => l.values.filter((v): v is number => v !== null));
  const max = Math.max(1e-9, ...all) * 1.1;
  const x = (i: number) => L + ((W - L - R) * (i + 0.5)) / Math.max(1, days.length);
  const y = (v: number) => T + (H - T - B) * (1 - v / max);
  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${W} ${H}" width="${W}" height="${H}" role="img" aria-label="${esc(title)}">`,
    `<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`,
    `<text x="${L}" y="22" font-size="15" font-family="sans-serif" fill="#111">${esc(title)}</text>`,
  ];
  for (let k = 0; k <= 4; k++) {
    const v = (max / 1.1) * (k / 4);
    parts.push(`<line x1="${L}" x2="${W - R}" y1="${y(v).toFixed(1)}" y2="${y(v).toFixed(1)}" stroke="#e5e7eb"/>`);
    parts.push(`<text x="${L - 6}" y="${(y(v) + 4).toFixed(1)}" font-size="10" text-anchor="end" font-family="sans-serif" fill="#555">${v.toFixed(v < 10 ? 2 : 0)}${unit}</text>`);
  }
  days.forEach((d, i) => {
    if (i % 5 === 0) parts.push(`<text x="${x(i).toFixed(1)}" y="${H - B + 16}" font-size="10" text-anchor="middle" font-family="sans-serif" fill="#555">${d.day.slice(5)}</text>`);
  });
  const bw = Math.max(2, ((W - L - R) / Math.max(1, days.length)) * 0.7);
  for (const l of lines) {
    if (bars) {
      l.values.forEach((v, i) => {
        if (v !== null) parts.push(`<rect x="${(x(i) - bw / 2).toFixed(1)}" y="${y(v).toFixed(1)}" width="${bw.toFixed(1)}" height="${(H - B - y(v)).toFixed(1)}" fill="${l.colour}"/>`);
      });
    } else {
      const pts = l.values.map((v, i) => (v === null ? null : `${x(i).toFixed(1)},${y(v).toFixed(1)}`)).filter(Boolean);
      if (pts.length) parts.push(`<polyline fill="none" stroke="${l.colour}" stroke-width="4" points="${pts.join(' ')}"/>`);
    }
  }
  lines.forEach((l, k) => {
    parts.push(`<rect x="${W - R - 150}" y="${T + k * 16 - 10}" width="12" height="12" fill="${l.colour}"/>`);
    parts.push(`<text x="${W - R - 133}" y="${T + k * 16}" font-size="11" font-family="sans-serif" fill="#111">${esc(l.label)}</text>`);
  });
  parts.push(`<line x1="${L}" x2="${W - R}" y1="${H - B}" y2="${H - B}" stroke="#111"/>`, '</svg>');
  return parts.join('\n');
}

export function renderHtml(fig: PerformanceFigures, db: DatabasePerformance, analysis: PerformanceAnalysis, generatedAt: string): string {
  const latency = svgChart('Latency per day (ms)', fig.daily, [
    { label: 'average', colour: CHART_COLOURS.average, values: fig.daily.map((d) => d.averageMs) },
    { label: 'p95', colour: CHART_COLOURS.p95, values: fig.daily.map((d) => d.p95Ms) },
    { label: 'p99', colour: CHART_COLOURS.p99, values: fig.daily.map((d) => d.p99Ms) },
  ], '');
  const errors = svgChart('Error rate (5xx) per day (%)', fig.daily, [{ label: 'errors %', colour: CHART_COLOURS.errors, values: fig.daily.map((d) => d.errorPercent) }], '%', true);
  const row = (k: string, v: string) => `<tr><th>${esc(k)}</th><td>${esc(v)}</td></tr>`;
  const st = db.statements;
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'">
<title>LLMChat performance report ${esc(fig.environment)} ${esc(fig.month)}</title>
<style>
body{font-family:sans-serif;margin:24px;color:#111;background:#fff;max-width:960px}
table{border-collapse:collapse;margin:8px 0 16px}th,td{border:1px solid #ddd;padding:4px 10px;text-align:left}
.alert-critical{color:#b91c1c;font-weight:bold}.alert-warning{color:#b45309;font-weight:bold}
</style></head><body>
<h1>LLMChat performance report — ${esc(fig.environment)}, ${esc(fig.month)}</h1>
<p>Generated ${esc(generatedAt)} from Prometheus job <code>${esc(fig.job)}</code>.</p>
${latency}
${errors}
<h2>Summary</h2>
<table>
${row('average response time', f(fig.averageMs, 2, ' ms'))}
${row('p50 / p95 / p99', `${f(fig.p50Ms, 1, ' ms')} / ${f(fig.p95Ms, 1, ' ms')} / ${f(fig.p99Ms, 1, ' ms')}`)}
${row('error rate (5xx)', `${f(fig.errorPercent, 2, ' %')} (${fig.serverErrors} 5xx)`)}
${row('client errors (4xx), apart', `${fig.clientErrors} (${f(fig.clientErrorPercent, 2, ' %')})`)}
${row('throughput', `${fig.requestsPerSecond.toFixed(3)} req/s, ${Math.round(fig.requestsPerDay)} req/day, ${fig.requests} in the month`)}
${row('CPU / memory / disk', `${f(fig.cpuPercent, 1, ' %')} / ${f(fig.memoryPercent, 1, ' %')} / ${f(fig.diskPercent, 1, ' %')}`)}
${row('database connections (avg / max)', `${f(fig.databaseConnections.average, 1)} / ${f(fig.databaseConnections.max, 0)}`)}
${row('query times', st.enabled ? `${st.averageMs.toFixed(2)} ms average, ${st.slowQueries} slow query shapes (> ${st.slowQueryMs} ms)` : `not measured (${st.reason})`)}
</table>
<h2>Busiest routes</h2>
<table><tr><th>route</th><th>requests</th></tr>${fig.busiestRoutes.map((r) => `<tr><td>${esc(r.route)}</td><td>${r.requests}</td></tr>`).join('')}</table>
<h2>Alerts</h2>
<ul>${analysis.alerts.length ? analysis.alerts.map((a) => `<li class="alert-${a.severity}">${esc(a.severity)}: ${esc(a.message)}</li>`).join('') : '<li>none</li>'}</ul>
<h2>Recommendations</h2>
<ul>${analysis.recommendations.map((r) => `<li>${esc(r)}</li>`).join('')}</ul>
</body></html>
`;
}
