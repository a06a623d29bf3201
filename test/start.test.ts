/**
 * `npm start` (scripts/start.sh) brings up the monitoring stack. In a scratch state dir, with a config whose
 * production environment is the stand-in app (a process, no demo stack) and whose ports are free ones, start.sh
 * starts Debian's Prometheus, Alertmanager and node-exporter on loopback with monitoring/'s files wired to the
 * config. Then, against exactly what it started: the monthly report runs (once the previous month's samples are in
 * Prometheus' data dir), an alert Prometheus raises reaches the worker's Alertmanager receiver with its bearer token
 * and starts fault detection at once, Ctrl-C ends start.sh cleanly, and `scripts/services.sh status/stop` cover the
 * three daemons; a port held by something else is refused with a clear message.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { mkdir, readFile, stat, writeFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { alertmanagerRunId } from '../src/activities/faults/alertmanager-receiver.js';
import { monthRange, previousMonth } from '../src/activities/report/analysis.js';
import { RequestedByKey } from '../src/common/search-attributes.js';
import type { FaultDetectionReport } from '../src/workflows/faults/shared.js';
import { backfillMonth, expectedFigures } from './support/prometheus.js';
import { freePort, PG, privateRedis, ROOT, scratchDatabase, startAppProcess, tempDir, waitFor, type AppProcess } from './support/services.js';
import { startDevServer, temporalBinary, testConfigYaml } from './support/temporal.js';

const TOKEN_ENV = 'LLMCHAT_TEST_RECEIVER_TOKEN';
const portOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

describe('npm start brings up Prometheus, Alertmanager and node-exporter wired to the config', () => {
  let env: TestWorkflowEnvironment;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let redis: Awaited<ReturnType<typeof privateRedis>>;
  let app: AppProcess;
  let start: ChildProcess;
  let output = '';
  let startExit: Promise<number | null>;
  const state = tempDir('start-state');
  const work = tempDir('start');
  const configFile = path.join(work, 'ops.config.yaml');
  const token = randomBytes(24).toString('hex');
  const month = previousMonth(new Date());
  const ports = { prometheus: 0, alertmanager: 0, nodeExporter: 0, metrics: 0, receiver: 0, inbox: 0 };
  let childEnv: NodeJS.ProcessEnv;
  const services = (...args: string[]) => execa('scripts/services.sh', args, { cwd: ROOT, env: childEnv, reject: false, all: true });
  const cli = (...args: string[]) => execa('node', ['bin/llmchat-ops.js', '--config', configFile, ...args], { cwd: ROOT, env: childEnv, reject: false });
  const prom = async (pathAndQuery: string) => (await (await fetch(`http://127.0.0.1:${ports.prometheus}${pathAndQuery}`)).json()) as { data: any };

  before(async () => {
    // The shared dockerd (a scratch state dir would otherwise mean a second dockerd for the same machine).
    const dockerHost = process.env.DOCKER_HOST ?? (await execa('bash', ['-c', 'source scripts/env.sh && printf %s "$DOCKER_HOST"'], { cwd: ROOT })).stdout;
    [env, db, redis] = await Promise.all([startDevServer(), scratchDatabase('llmchat_start'), privateRedis()]);
    for (const k of Object.keys(ports) as (keyof typeof ports)[]) ports[k] = await freePort();
    const logs = path.join(work, 'logs');
    app = await startAppProcess({ databaseUrl: db.url, redisUrl: redis.url, logDir: logs });
    await mkdir(path.join(logs, 'config'), { recursive: true });
    const doc = parse(
      testConfigYaml({
        address: env.address,
        taskQueue: `test-start-${randomUUID()}`,
        metricsPort: ports.metrics,
        environments: { production: { url: app.url, logs, database: db.name, redisUrl: redis.url, app: path.join(work, 'app') } },
        webhookUrl: `http://127.0.0.1:${ports.inbox}/alerts`,
        extra: {
          report: { prometheusUrl: `http://127.0.0.1:${ports.prometheus}`, directory: path.join(work, 'reports') },
          alertmanagerReceiver: { enabled: true, host: '127.0.0.1', port: ports.receiver, tokenEnv: TOKEN_ENV },
        },
      }),
    );
    // The app runs as a plain process here: fault detection reports, but does not try to restart it with compose.
    doc.environments.production.faultDetection = { recovery: { enabled: false } };
    await writeFile(configFile, stringify(doc));
    childEnv = {
      ...process.env,
      LLMCHAT_OPS_STATE: state,
      LLMCHAT_OPS_CONFIG: configFile, // what start.sh exports to services.sh; the test's own services.sh calls need it too
      DOCKER_HOST: dockerHost,
      TEMPORAL_ADDRESS: env.address,
      TEMPORAL_CLI_PATH: temporalBinary(),
      LLMCHAT_DB_PASSWORD: PG.password,
      LLMCHAT_START_BUILD: '0', // the test run installed and built; a rebuild would rewrite dist/ under other test files
      LLMCHAT_DEMO_ENVIRONMENTS: '',
      LLMCHAT_ALERT_INBOX_PORT: String(ports.inbox),
      LLMCHAT_ALERTMANAGER_PORT: String(ports.alertmanager),
      LLMCHAT_NODE_EXPORTER_PORT: String(ports.nodeExporter),
      [TOKEN_ENV]: token,
    };
    const t0 = Date.now();
    // Its own process group, like a terminal's foreground job: Ctrl-C reaches the whole group.
    start = spawn('scripts/start.sh', [configFile], { cwd: ROOT, env: childEnv, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    start.stdout?.on('data', (c) => (output += c));
    start.stderr?.on('data', (c) => (output += c));
    startExit = new Promise((r) => start.once('exit', (code) => r(code)));
    await waitFor('npm start: the worker started', async () => {
      if (start.exitCode !== null) throw new Error(`start.sh exited ${start.exitCode}:\n${output}`);
      return output.includes('llmchat-ops worker started');
    }, 240_000, 300).catch((err: Error) => {
      throw new Error(`${err.message}\n${output}`);
    });
    console.log(`npm start (services, monitoring, schedules, worker) ready in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  });

  after(async () => {
    if (start && start.exitCode === null && start.signalCode === null) {
      try {
        process.kill(-start.pid!, 'SIGTERM');
      } catch {}
      await startExit;
    }
    if (childEnv) await services('stop', 'monitoring');
    await writeFile(path.join(work, 'start.log'), output); // kept with LLMCHAT_KEEP_TEST_DIRS=1
    await app?.stop();
    await Promise.allSettled([redis?.stop(), db?.drop()]);
    await env?.teardown();
  });

  it('the three daemons run on loopback only, from the state dir, scraping what the config names', async () => {
    for (const d of ['prometheus', 'alertmanager', 'node-exporter']) {
      const pid = Number((await readFile(path.join(state, 'monitoring', `${d}.pid`), 'utf8')).trim());
      assert.ok(pid > 0, d);
      // every socket the daemon listens on is 127.0.0.1 (Alertmanager has no cluster port either)
      const ss = await execa('ss', ['-Hltnp']);
      const mine = ss.stdout.split('\n').filter((l) => l.includes(`pid=${pid},`));
      assert.ok(mine.length > 0, `${d} (pid ${pid}) listens`);
      for (const l of mine) assert.match(l.trim().split(/\s+/)[3] ?? '', /^127\.0\.0\.1:\d+$/, `${d}: ${l}`);
    }
    await waitFor('Prometheus scrapes the app, the worker, node-exporter and itself', async () => {
      const r = await prom(`/api/v1/query?query=${encodeURIComponent('up == 1')}`);
      const jobs = r.data.result.map((s: { metric: Record<string, string> }) => `${s.metric.job}/${s.metric.environment ?? ''}`).sort();
      return JSON.stringify(jobs) === JSON.stringify(['llmchat-app/production', 'llmchat-ops/', 'node/production', 'prometheus/']);
    }, 90_000, 1000);
    const targets = await prom('/api/v1/targets');
    const appTarget = targets.data.activeTargets.find((t: { labels: Record<string, string> }) => t.labels.job === 'llmchat-app');
    assert.equal(appTarget.scrapeUrl, `${app.url}/metrics`);
    const ams = await prom('/api/v1/alertmanagers');
    assert.deepEqual(ams.data.activeAlertmanagers.map((a: { url: string }) => a.url), [`http://127.0.0.1:${ports.alertmanager}/api/v2/alerts`]);
    const rules = await prom('/api/v1/rules');
    assert.ok(rules.data.groups.some((g: { rules: { name: string }[] }) => g.rules.some((x) => x.name === 'LLMChatDown')), 'monitoring/prometheus/alerts.yml is loaded');
    // the receiver's token reaches Alertmanager as a file only (0600), never inside its config
    const amConfig = await readFile(path.join(state, 'monitoring', 'alertmanager.yml'), 'utf8');
    assert.ok(!amConfig.includes(token));
    assert.match(amConfig, new RegExp(`url: http://127.0.0.1:${ports.receiver}/alertmanager`));
    assert.equal((await stat(path.join(state, 'monitoring', 'receiver.token'))).mode & 0o777, 0o600);
    const status = await services('status', 'monitoring');
    assert.equal(status.exitCode, 0, status.all);
    for (const [d, p] of [['prometheus', ports.prometheus], ['alertmanager', ports.alertmanager], ['node-exporter', ports.nodeExporter]] as const) {
      assert.match(status.all ?? '', new RegExp(`^${d}: up on 127\\.0\\.0\\.1:${p}, pid \\d+$`, 'm'));
    }
  });

  it('the monthly report runs against the Prometheus npm start started', { timeout: 180_000 }, async () => {
    // A fresh machine: Prometheus answers, but holds nothing of last month yet; the report says exactly that.
    const empty = await cli('report', '--env', 'production', '--month', month);
    assert.notEqual(empty.exitCode, 0);
    assert.match(empty.stderr + empty.stdout, new RegExp(`Prometheus at http://127.0.0.1:${ports.prometheus} has no llmchat_http_requests_total series`));
    // A month of scraping later: last month's samples in Prometheus' own data dir (kept: retention 100d), restarted.
    const stopped = await services('stop', 'monitoring');
    assert.equal(stopped.exitCode, 0, stopped.all);
    assert.match(stopped.all ?? '', /^prometheus: stopped \(pid \d+\)$/m);
    const { start: from, end, days } = monthRange(month);
    await backfillMonth('llmchat-app', from, end, path.join(state, 'monitoring', 'prometheus-data'));
    const up = await services('up', 'monitoring');
    assert.equal(up.exitCode, 0, up.all);
    const r = await cli('report', '--env', 'production', '--month', month, '--json');
    assert.equal(r.exitCode, 0, r.stderr + r.stdout);
    const report = JSON.parse(r.stdout) as { month: string; markdownFile: string; htmlFile: string; figures: { requests: number } };
    assert.equal(report.month, month);
    assert.ok(Math.abs(report.figures.requests - expectedFigures(days).requests) <= expectedFigures(days).requests * 0.01, `requests ${report.figures.requests}`);
    assert.match(await readFile(report.markdownFile, 'utf8'), new RegExp(month));
    await stat(report.htmlFile);
  });

  it('the app stops → Prometheus fires LLMChatDown → Alertmanager posts with the token → fault detection runs at once', { timeout: 180_000 }, async () => {
    // The receiver refuses a request without the token: Alertmanager's own delivery below must carry it.
    const bare = await fetch(`http://127.0.0.1:${ports.receiver}/alertmanager`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
    assert.equal(bare.status, 401);
    await waitFor('the app scraped since the restart', async () => (await prom(`/api/v1/query?query=${encodeURIComponent('up{job="llmchat-app"} == 1')}`)).data.result.length === 1, 60_000, 1000);
    const onset = Date.now();
    await app.stop();
    const handle = env.client.workflow.getHandle(alertmanagerRunId('production'));
    await waitFor('faultDetection started by Alertmanager', async () => Boolean(await handle.describe()), 150_000, 1000);
    console.log(`app stopped → fault detection started through Prometheus → Alertmanager → receiver: ${((Date.now() - onset) / 1000).toFixed(1)} s`);
    const desc = await handle.describe();
    assert.match(String(desc.typedSearchAttributes.get(RequestedByKey) ?? ''), /^alertmanager:LLMChatDown/);
    const report = (await handle.result()) as FaultDetectionReport;
    assert.ok(report.faults.includes('app-down'), JSON.stringify(report.faults));
  });

  it('Ctrl-C ends npm start cleanly; the monitoring stack keeps running until services.sh stop', { timeout: 120_000 }, async () => {
    process.kill(-start.pid!, 'SIGINT');
    const code = await startExit;
    assert.equal(code, 130, output.slice(-2000));
    assert.equal(await portOpen(ports.metrics), false, 'the worker is gone');
    assert.equal(await portOpen(ports.receiver), false, 'its receiver is gone');
    assert.equal(await portOpen(ports.inbox), false, 'the alert inbox is gone');
    const status = await services('status', 'monitoring');
    assert.equal(status.exitCode, 0, status.all);

    const stop = await services('stop', 'monitoring');
    assert.equal(stop.exitCode, 0, stop.all);
    for (const d of ['prometheus', 'alertmanager', 'node-exporter']) assert.match(stop.all ?? '', new RegExp(`^${d}: stopped \\(pid \\d+\\)$`, 'm'));
    for (const p of [ports.prometheus, ports.alertmanager, ports.nodeExporter]) assert.equal(await portOpen(p), false, `port ${p} closed`);
    const down = await services('status', 'monitoring');
    assert.equal(down.exitCode, 1);
    assert.match(down.all ?? '', /^prometheus: DOWN/m);
  });

  it('a port held by something else is refused, not reused', { timeout: 120_000 }, async () => {
    const squatter = net.createServer((s) => s.destroy());
    await new Promise<void>((r) => squatter.listen(ports.alertmanager, '127.0.0.1', () => r()));
    try {
      const up = await services('up', 'monitoring');
      assert.notEqual(up.exitCode, 0);
      assert.match(up.all ?? '', new RegExp(`alertmanager: ERROR: 127\\.0\\.0\\.1:${ports.alertmanager} is held by something these scripts did not start`));
    } finally {
      await new Promise((r) => squatter.close(r));
      await services('stop', 'monitoring');
    }
  });
});
