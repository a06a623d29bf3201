/**
 * The fault detector's pure parts and its incremental log cursor on real files: Prometheus text parsing,
 * windows over counters and histograms with counter resets, and the log cursor through rotation, truncation,
 * copy-truncate, a file deleted and recreated, partial lines and a large file (cost follows the new bytes).
 */
import assert from 'node:assert/strict';
import { appendFile, open, rename, rm, truncate, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { evaluateFaults, logCheckSuffix, type FaultMeasurements } from '../src/activities/faults/faults.js';
import { scanIncrementally, type LogCursor } from '../src/activities/faults/log-cursor.js';
import { parsePrometheusText } from '../src/activities/faults/prometheus-text.js';
import { histogramQuantile, snapshotFrom, windowBetween } from '../src/activities/faults/window.js';
import { parseAppMetrics } from '../src/activities/release/metrics.js';
import { isClientError, isServerError, PROMQL_SERVER_ERRORS, PROMQL_USER_TRAFFIC } from '../src/common/http-errors.js';
import { parseConfig } from '../src/common/config/index.js';
import { alertmanagerRequester, planRuns } from '../src/activities/faults/alertmanager-receiver.js';
import { requireRequestedBy } from '../src/workflows/common/inputs.js';
import { parseAlertRef } from '../src/cli/faults.js';
import { signWebhookBody, verifyWebhookSignature } from '../src/common/webhook-signature.js';
import http from 'node:http';
import { createAppMetricsActivities } from '../src/activities/faults/app-metrics.js';
import { tempDir } from './support/services.js';

const metricsText = (ok: number, err: number, slowBucketCount: number, start = 1000) => `# HELP llmchat_http_requests_total total
# TYPE llmchat_http_requests_total counter
llmchat_http_requests_total{method="GET",route="/api/sessions/:id",status_code="200"} ${ok}
llmchat_http_requests_total{method="POST",route="/api/debug/error",status_code="500"} ${err}
llmchat_http_requests_total{method="GET",route="/metrics",status_code="200"} 999
llmchat_http_request_duration_seconds_bucket{le="0.1",method="GET",route="/x"} ${ok + err - slowBucketCount}
llmchat_http_request_duration_seconds_bucket{le="2",method="GET",route="/x"} ${ok + err - slowBucketCount}
llmchat_http_request_duration_seconds_bucket{le="5",method="GET",route="/x"} ${ok + err}
llmchat_http_request_duration_seconds_bucket{le="+Inf",method="GET",route="/x"} ${ok + err}
llmchat_http_request_duration_seconds_sum{method="GET",route="/x"} ${(ok + err - slowBucketCount) * 0.01 + slowBucketCount * 3}
llmchat_http_request_duration_seconds_count{method="GET",route="/x"} ${ok + err}
process_start_time_seconds ${start}
`;

describe('Prometheus text and windows', () => {
  it('parses labels with escapes, +Inf, and counts malformed lines', () => {
    const p = parsePrometheusText('a{x="q\\"uote",y="n\\nl"} 1.5\nb +Inf\nbad line here x\nc{broken 3\n# comment\n');
    assert.deepEqual(p.samples.map((s) => [s.name, { ...s.labels }, s.value]), [['a', { x: 'q"uote', y: 'n\nl' }, 1.5], ['b', {}, Infinity]]);
    assert.equal(p.malformed, 2);
  });

  it('one meaning of "error" (src/common/http-errors.ts): 5xx are errors, 4xx apart, scrapes nowhere — in fault detection and the bake alike', () => {
    const text = (n: number) => [
      `llmchat_http_requests_total{route="/a",status_code="200"} ${100 * n}`,
      `llmchat_http_requests_total{route="/a",status_code="404"} ${30 * n}`,
      `llmchat_http_requests_total{route="/a",status_code="429"} ${5 * n}`,
      `llmchat_http_requests_total{route="/a",status_code="500"} ${4 * n}`,
      `llmchat_http_requests_total{route="/a",status_code="503"} ${1 * n}`,
      `llmchat_http_requests_total{route="/a",status_code="5"} ${1 * n}`,
      `llmchat_http_requests_total{route="/metrics",status_code="500"} ${50 * n}`,
    ].join('\n');
    const w = windowBetween(snapshotFrom(parsePrometheusText(text(0)).samples, 0), snapshotFrom(parsePrometheusText(text(1)).samples, 60_000));
    assert.equal(w.requests, 141);
    assert.equal(w.errors, 5, '500 and 503; not 4xx, not a malformed "5", not a failed scrape');
    assert.equal(w.clientErrors, 35);
    assert.equal(w.errorRatePercent, Math.round((5 / 141) * 10_000) / 100);
    const bake = parseAppMetrics(text(1));
    assert.deepEqual([bake.requests, bake.errors], [w.requests, w.errors], 'the deploy bake counts the same');
    assert.equal(PROMQL_SERVER_ERRORS, 'status_code=~"5[0-9][0-9]"');
    assert.equal(PROMQL_USER_TRAFFIC, 'route!~"/metrics|metrics"');
    assert.ok(isServerError(500) && isServerError('599') && !isServerError('404') && !isServerError('5') && !isServerError(undefined));
    assert.ok(isClientError('404') && !isClientError('500'));
  });

  it('window since the previous snapshot: deltas, not totals; scrapes excluded', () => {
    const a = snapshotFrom(parsePrometheusText(metricsText(1000, 10, 0)).samples, 0);
    const b = snapshotFrom(parsePrometheusText(metricsText(1090, 20, 0)).samples, 300_000);
    const w = windowBetween(a, b);
    assert.equal(w.requests, 100);
    assert.equal(w.errors, 10);
    assert.equal(w.errorRatePercent, 10, 'over the window; since start it would be 30/1110 = 2.7 %');
    assert.equal(w.windowSeconds, 300);
    assert.equal(w.counterReset, false);
    assert.equal(windowBetween(undefined, b).hasBaseline, false);
  });

  it('latency from histogram deltas: mean and p95 of the window only', () => {
    const a = snapshotFrom(parsePrometheusText(metricsText(1000, 0, 0)).samples, 0);
    const b = snapshotFrom(parsePrometheusText(metricsText(1010, 0, 10)).samples, 60_000);
    const w = windowBetween(a, b);
    assert.equal(w.requests, 10);
    assert.equal(w.avgLatencyMs, 3000, 'ten slow requests of 3 s in the window');
    assert.ok(w.p95LatencyMs !== undefined && w.p95LatencyMs > 2000 && w.p95LatencyMs <= 5000, String(w.p95LatencyMs));
    assert.equal(histogramQuantile(0.5, [[1, 0], [2, 10], [Infinity, 10]]), 1.5);
    assert.equal(histogramQuantile(0.5, [[Infinity, 0]]), undefined);
  });

  it('a restarted app (new start time, or counters going down) counts from zero', () => {
    const a = snapshotFrom(parsePrometheusText(metricsText(1000, 10, 0, 1000)).samples, 0);
    const restarted = snapshotFrom(parsePrometheusText(metricsText(45, 5, 0, 2000)).samples, 60_000);
    const w = windowBetween(a, restarted);
    assert.equal(w.counterReset, true);
    assert.equal(w.requests, 50);
    assert.equal(w.errors, 5);
    // same start time but lower counters (no process_start_time_seconds exported): still a reset
    const noStart = (t: string) => t.replace(/process_start_time_seconds.*\n/, '');
    const x = snapshotFrom(parsePrometheusText(noStart(metricsText(1000, 10, 0))).samples, 0);
    const y = snapshotFrom(parsePrometheusText(noStart(metricsText(20, 0, 0))).samples, 1);
    assert.equal(windowBetween(x, y).counterReset, true);
    assert.equal(windowBetween(x, y).requests, 20);
  });

  it('judges the guide thresholds from the config defaults', () => {
    const cfg = parseConfig('environments: { p: { url: "http://127.0.0.1:1", database: { name: d, user: u }, redis: { url: "redis://127.0.0.1:6379" }, compose: { file: f, project: p, service: app }, paths: { logs: l, uploads: u, config: c, backups: b, temp: t, app: a } } }', 't', '/');
    const t = cfg.environments.p!.faultDetection.thresholds;
    assert.deepEqual([t.errorRatePercent, t.responseTimeMs, t.memoryPercent, t.diskPercent, t.logErrorLines, t.logStaleMinutes], [5, 2000, 90, 85, 10, 60]);
    const m: FaultMeasurements = {
      probe: { name: 'service', url: 'u', ok: true, httpStatus: 200, responseTimeMs: 12 },
      metrics: { scraped: true, window: { hasBaseline: true, counterReset: false, windowSeconds: 300, requests: 100, errors: 6, errorRatePercent: 6, avgLatencyMs: 2500 } },
      memory: { usedPercent: 91, totalBytes: 1, availableBytes: 0 },
      disks: [{ path: '/', usedPercent: 84, totalBytes: 1, availableBytes: 0 }],
      container: { found: true, state: 'running', name: 'app' },
      logs: [{ file: '/l/app.log', exists: true, baseline: false, rotated: false, truncated: false, bytesRead: 1, newLines: 11, errorLines: 11, sizeBytes: 1, ageMinutes: 61 }],
    };
    const failing = evaluateFaults('p', m, t).filter((c) => !c.ok).map((c) => c.check);
    assert.deepEqual(failing, ['error-rate', 'response-time', 'memory', 'log-errors-app-log', 'log-stale-app-log']);
    const few = { ...m, metrics: { scraped: true, window: { ...m.metrics.window!, requests: 5, errors: 5, errorRatePercent: 100 } } };
    assert.ok(evaluateFaults('p', few, t).find((c) => c.check === 'error-rate')?.ok, 'five requests say nothing about a rate');
    const down = { ...m, container: { found: true, state: 'exited', name: 'app' } };
    assert.equal(evaluateFaults('p', down, t).find((c) => c.check === 'app-down')?.ok, false);
    assert.equal(logCheckSuffix('/var/log/nginx/access.log'), 'access-log');
  });
});

describe('the metrics snapshot between runs (real HTTP /metrics, real state files)', () => {
  it('is kept per environment and app instance, and a retried attempt of a run keeps its window', async () => {
    let ok = 1000;
    let err = 0;
    const server = http.createServer((_req, res) => res.end(metricsText(ok, err, 0)));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    try {
      const dir = tempDir('metrics-state');
      const env = (name: string) => `  ${name}: { url: "${url}", database: { name: d, user: u }, redis: { url: "redis://127.0.0.1:6379" }, compose: { file: f, project: p, service: app }, paths: { logs: l, uploads: u, config: c, backups: b, temp: ${dir}, app: a } }`;
      const cfg = parseConfig(`environments:\n${env('production')}\n${env('staging')}\n`, 't', '/');
      const { measureMetricsWindow } = createAppMetricsActivities(cfg);
      assert.equal((await measureMetricsWindow({ environment: 'production', runKey: 'p/1' })).window?.hasBaseline, false);
      ok += 23;
      err += 77;
      // staging measures the same /metrics, with the same paths, in between: production's snapshot is its own
      assert.equal((await measureMetricsWindow({ environment: 'staging', runKey: 's/1' })).window?.hasBaseline, false);
      const first = await measureMetricsWindow({ environment: 'production', runKey: 'p/2' });
      assert.deepEqual([first.window?.requests, first.window?.errors, first.window?.counterReset], [100, 77, false]);
      // the same run's activity retried (its result was lost): the same window, not the seconds since the attempt
      ok += 5;
      const retried = await measureMetricsWindow({ environment: 'production', runKey: 'p/2' });
      assert.deepEqual([retried.window?.requests, retried.window?.errors], [105, 77]);
      const next = await measureMetricsWindow({ environment: 'production', runKey: 'p/3' });
      assert.deepEqual([next.window?.requests, next.window?.errors], [0, 0]);
      // the environment pointed at another app instance does not reuse the old instance's snapshot
      const moved = parseConfig(`environments:\n${env('production').replace(url, `${url}/`).replace('project: p', 'project: q')}\n`, 't', '/');
      assert.equal((await createAppMetricsActivities(moved).measureMetricsWindow({ environment: 'production', runKey: 'p/4' })).window?.hasBaseline, false);
    } finally {
      server.close();
    }
  });
});

describe('incremental log cursor (real files)', () => {
  const dir = tempDir('log-cursor');
  const scan = (file: string, prev?: LogCursor) => scanIncrementally(file, prev, { pattern: 'ERROR' });
  const lines = (n: number, level: string) => Array.from({ length: n }, (_, i) => `2026-11-26T00:00:00Z ${level} line ${i}\n`).join('');

  it('first sight starts at the end; then only appended complete lines are counted', async () => {
    const file = path.join(dir, 'app.log');
    await writeFile(file, lines(50, 'ERROR'));
    const first = await scan(file);
    assert.equal(first.scan.baseline, true);
    assert.equal(first.scan.errorLines, 0);
    await appendFile(file, lines(3, 'ERROR') + lines(2, 'INFO') + '2026 ERROR partial');
    const second = await scan(file, first.cursor);
    assert.equal(second.scan.errorLines, 3);
    assert.equal(second.scan.newLines, 5);
    await appendFile(file, ' line completed\n');
    const third = await scan(file, second.cursor);
    assert.equal(third.scan.errorLines, 1, 'the partial line is counted once it is complete');
    assert.equal(third.scan.newLines, 1);
  });

  it('rotation by rename: the rest of the old file, then the new one', async () => {
    const file = path.join(dir, 'rot.log');
    await writeFile(file, lines(5, 'INFO'));
    const a = await scan(file);
    await appendFile(file, lines(4, 'ERROR'));
    await rename(file, `${file}.1`);
    await writeFile(file, lines(2, 'ERROR'));
    const b = await scan(file, a.cursor);
    assert.equal(b.scan.rotated, true);
    assert.equal(b.scan.errorLines, 6, '4 written before the rotation + 2 after');
  });

  it('truncation and copy-truncate: read again from the start', async () => {
    const file = path.join(dir, 'trunc.log');
    await writeFile(file, lines(100, 'INFO'));
    const a = await scan(file);
    await truncate(file, 0);
    await appendFile(file, lines(3, 'ERROR'));
    const b = await scan(file, a.cursor);
    assert.equal(b.scan.truncated, true);
    assert.equal(b.scan.errorLines, 3);
    // copy-truncate, then more written than before: the head changed, so it is still seen as a new file
    await truncate(file, 0);
    await appendFile(file, lines(200, 'ERROR').replace(/2026-11-26/g, '2026-11-27'));
    const c = await scan(file, b.cursor);
    assert.equal(c.scan.truncated, true);
    assert.equal(c.scan.errorLines, 200);
  });

  it('deleted: reported missing, cursor kept; recreated: read from its start', async () => {
    const file = path.join(dir, 'gone.log');
    await writeFile(file, lines(10, 'INFO'));
    const a = await scan(file);
    await rm(file);
    const b = await scan(file, a.cursor);
    assert.equal(b.scan.exists, false);
    assert.deepEqual(b.cursor, a.cursor);
    await writeFile(file, lines(12, 'ERROR'));
    const c = await scan(file, b.cursor);
    assert.equal(c.scan.errorLines, 12);
  });

  it('a large file: only the appended bytes are read', async () => {
    const file = path.join(dir, 'big.log');
    const fh = await open(file, 'w');
    const block = Buffer.from(lines(10_000, 'INFO'));
    let size = 0;
    while (size < 200 * 1024 * 1024) {
      await fh.write(block);
      size += block.length;
    }
    await fh.close();
    const a = await scan(file);
    const added = lines(1000, 'ERROR');
    await appendFile(file, added);
    const b = await scan(file, a.cursor);
    assert.equal(b.scan.errorLines, 1000);
    assert.equal(b.scan.bytesRead, Buffer.byteLength(added));
    await rm(file);
  });
});

describe('webhook signatures, alert references, Alertmanager plans', () => {
  it('a signature verifies only for the same secret, body and a recent timestamp', () => {
    const body = JSON.stringify({ id: 'x', severity: 'critical' });
    const now = Date.now();
    const headers = signWebhookBody('s3cret', body, Math.floor(now / 1000));
    assert.match(headers['x-llmchat-signature'] ?? '', /^sha256=[0-9a-f]{64}$/);
    assert.equal(verifyWebhookSignature('s3cret', headers, body, { now }), true);
    assert.equal(verifyWebhookSignature('s3cret', headers, `${body} `, { now }), false);
    assert.equal(verifyWebhookSignature('other', headers, body, { now }), false);
    assert.equal(verifyWebhookSignature('s3cret', headers, body, { now: now + 301_000 }), false, 'a replay after 5 minutes is refused');
    assert.equal(verifyWebhookSignature('s3cret', { ...headers, 'x-llmchat-signature': 'md5=abc' }, body, { now }), false);
    assert.equal(verifyWebhookSignature('s3cret', {}, body, { now }), false);
  });

  it('alert references: <env>/<check> or the alert id; anything else is refused', () => {
    assert.equal(parseAlertRef('production/app-down'), 'llmchat-alert-production-app-down');
    assert.equal(parseAlertRef('llmchat-alert-staging-log-errors-app-log'), 'llmchat-alert-staging-log-errors-app-log');
    for (const bad of ['production/app-down; rm -rf /', '../etc/passwd', 'Production/app-down', 'llmchat-alert-x y', '']) {
      assert.throws(() => parseAlertRef(bad), /Expected an alert id/, bad);
    }
  });

  it('Alertmanager payloads: firing alerts per known environment; resolved ones start nothing; bad ones are refused', () => {
    const cfg = parseConfig(
      'environments: { production: { url: "http://127.0.0.1:1", database: { name: d, user: u }, redis: { url: "redis://127.0.0.1:6379" }, compose: { file: f, project: p, service: app }, paths: { logs: l, uploads: u, config: c, backups: b, temp: t, app: a } } }',
      't',
      '/',
    );
    const alert = (status: string, labels: Record<string, string>) => ({ status, labels });
    assert.deepEqual(
      planRuns(cfg, { version: '4', status: 'firing', alerts: [alert('firing', { alertname: 'LLMChatDown', environment: 'production' }), alert('firing', { alertname: 'Odd name!', environment: 'production' }), alert('resolved', { alertname: 'X', environment: 'production' })] }),
      [{ environment: 'production', alertnames: ['LLMChatDown', 'Odd_name_'] }],
    );
    assert.deepEqual(planRuns(cfg, { version: '4', status: 'resolved', alerts: [alert('resolved', { alertname: 'X', environment: 'production' })] }), []);
    assert.throws(() => planRuns(cfg, { version: '3', status: 'firing', alerts: [] }), /version 4/);
    assert.throws(() => planRuns(cfg, { version: '4', status: 'firing', alerts: [alert('firing', { environment: '__proto__' })] }), (e: Error) => /not an environment of this installation/.test(e.message) && !/production/.test(e.message));
    assert.throws(() => planRuns(cfg, { version: '4', status: 'firing', alerts: Array.from({ length: 1001 }, () => alert('firing', { environment: 'production' })) }), /version 4/);
  });

  it('any number of alert names for one environment make one valid requestedBy', () => {
    assert.equal(alertmanagerRequester(['LLMChatHighErrorRate', 'LLMChatDown']), 'alertmanager:LLMChatDown+LLMChatHighErrorRate');
    assert.equal(alertmanagerRequester(['A', 'A', 'B']), 'alertmanager:A+B');
    const many = alertmanagerRequester(Array.from({ length: 40 }, (_, i) => `LLMChatAlertNumber${String(i).padStart(2, '0')}`));
    assert.ok(many.length <= 128, many);
    assert.match(many, /^alertmanager:LLMChatAlertNumber00\+.*\+\d+-more$/);
    const n = Number(/\+(\d+)-more$/.exec(many)?.[1]);
    assert.equal(many.split('+').length - 1 + n, 40, `every name is shown or counted: ${many}`);
    for (const names of [['x'.repeat(64), 'y'.repeat(64), 'z'.repeat(64)], ['Odd name!', '日本'], ['']]) {
      const by = alertmanagerRequester(names);
      assert.equal(requireRequestedBy(by, 'x'), by, by);
    }
  });

  it('the Alertmanager receiver needs a token unless explicitly unauthenticated', () => {
    const env = 'environments: { production: { url: "http://127.0.0.1:1", database: { name: d, user: u }, redis: { url: "redis://127.0.0.1:6379" }, compose: { file: f, project: p, service: app }, paths: { logs: l, uploads: u, config: c, backups: b, temp: t, app: a } } }';
    assert.throws(() => parseConfig(`${env}\nalertmanagerReceiver: { enabled: true }`, 't', '/'), /alertmanagerReceiver: the receiver needs a token/);
    assert.throws(() => parseConfig(`${env}\nalertmanagerReceiver: { enabled: true, tokenFile: x, tokenEnv: Y }`, 't', '/'), /not both/);
    assert.equal(parseConfig(`${env}\nalertmanagerReceiver: { enabled: true, tokenFile: s/token }`, 't', '/srv').alertmanagerReceiver.tokenFile, '/srv/s/token');
    assert.equal(parseConfig(`${env}\nalertmanagerReceiver: { enabled: true, allowUnauthenticated: true }`, 't', '/').alertmanagerReceiver.allowUnauthenticated, true);
  });
});
