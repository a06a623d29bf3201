/**
 * dailyHealthCheck on the real dev server, against the stand-in app in a real container, real PostgreSQL and
 * a private real Redis: healthy → degraded (Redis killed) → unhealthy (container stopped).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { OpsConfig } from '../src/common/config/index.js';
import { OutcomeKey } from '../src/common/search-attributes.js';
import { createWorker } from '../src/worker.js';
import { dailyHealthCheck, type HealthReport } from '../src/workflows/health/daily-health-check.js';
import { startAppContainer, type AppContainer } from './support/app-container.js';
import { privateRedis, scratchDatabase, waitFor } from './support/services.js';
import { alertReceiver, startDevServer, testConfig, workflowBundle } from './support/temporal.js';

describe('dailyHealthCheck workflow (real dev server, container, PostgreSQL, Redis)', () => {
  let env: TestWorkflowEnvironment;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let redis: Awaited<ReturnType<typeof privateRedis>>;
  let app: AppContainer;
  let sink: Awaited<ReturnType<typeof alertReceiver>>;
  let cfg: OpsConfig;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-health-${randomUUID()}`;

  before(async () => {
    [env, db, redis, sink] = await Promise.all([startDevServer(), scratchDatabase(), privateRedis(), alertReceiver()]);
    app = await startAppContainer({ databaseUrl: db.url, redisUrl: redis.url });
    cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: app.url, logs: app.logDir }, staging: { url: 'http://127.0.0.1:9', logs: app.logDir } }, webhookUrl: sink.url });
    worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await app?.down();
    await Promise.allSettled([redis?.stop(), sink?.close(), db?.drop()]);
    await env?.teardown();
  });

  const run = (input: unknown, id = `health-${randomUUID()}`) =>
    env.client.workflow.execute(dailyHealthCheck, { taskQueue, workflowId: id, args: [input as { environment: string }] });

  const outcomeOf = async (workflowId: string) => {
    const desc = await env.client.workflow.getHandle(workflowId).describe();
    return desc.typedSearchAttributes.get(OutcomeKey);
  };

  it('healthy: every check passes, no alert is sent, outcome is searchable', async () => {
    const id = `health-healthy-${randomUUID()}`;
    const report: HealthReport = await run({ environment: 'production', requestedBy: 'test' }, id);
    assert.equal(report.status, 'healthy', JSON.stringify(report.checks, null, 2));
    assert.deepEqual(report.checks.map((c) => [c.name, c.status]), [
      ['service', 'healthy'], ['database', 'healthy'], ['redis', 'healthy'], ['disk', 'healthy'], ['memory', 'healthy'], ['log', 'healthy'],
    ]);
    assert.deepEqual(report.alerts, []);
    assert.equal(sink.received.length, 0);
    assert.equal(await outcomeOf(id), 'healthy');
    await waitFor('visibility of the outcome', async () => {
      const found = [];
      for await (const w of env.client.workflow.list({ query: `WorkflowId = '${id}' AND LlmchatOutcome = 'healthy' AND LlmchatEnvironment = 'production' AND LlmchatOperation = 'dailyHealthCheck' AND LlmchatRequestedBy = 'test'` })) found.push(w);
      return found.length === 1;
    });
  });

  it('degraded: Redis stopped → /health/redis fails, critical alert delivered to the webhook', async () => {
    await redis.stop();
    const id = `health-degraded-${randomUUID()}`;
    const report = await run({ environment: 'production' }, id);
    assert.equal(report.status, 'degraded', JSON.stringify(report.checks, null, 2));
    assert.equal(report.checks.find((c) => c.name === 'redis')?.status, 'unhealthy');
    assert.equal(report.checks.find((c) => c.name === 'database')?.status, 'healthy');
    const redisAlert = report.alerts.find((a) => a.type === 'endpoint_down');
    assert.ok(redisAlert, JSON.stringify(report.alerts));
    assert.match(redisAlert.message, /redis \(\/health\/redis\) failed: HTTP 503/);
    assert.ok(report.notifications.some((n) => n.channel === 'webhook' && n.delivered));
    const posted = sink.received.find((r) => r.body.type === 'endpoint_down');
    assert.ok(posted, 'the webhook received the alert');
    assert.equal(posted.body.severity, 'critical');
    assert.match(String(posted.headers['idempotency-key']), new RegExp(`^${id}/`));
    assert.equal(await outcomeOf(id), 'degraded');
  });

  it('unhealthy: app container stopped → service, database and redis all fail', async () => {
    await app.stop();
    const id = `health-unhealthy-${randomUUID()}`;
    const report = await run({ environment: 'production' }, id);
    assert.equal(report.status, 'unhealthy');
    for (const name of ['service', 'database', 'redis']) {
      const check = report.checks.find((c) => c.name === name);
      assert.equal(check?.status, 'unhealthy', name);
      assert.match(check?.message ?? '', /ECONNREFUSED/);
    }
    assert.equal(report.alerts.filter((a) => a.type === 'endpoint_down').length, 3);
    assert.equal(await outcomeOf(id), 'unhealthy');
  });

  it('an unknown environment fails at once with a non-retryable error naming the known environments', async () => {
    const id = `health-unknown-${randomUUID()}`;
    await assert.rejects(run({ environment: 'prod' }, id), (err: unknown) => {
      assert.ok(err instanceof WorkflowFailedError);
      const cause = err.cause?.cause ?? err.cause;
      assert.ok(cause instanceof ApplicationFailure, String(cause));
      assert.equal(cause.nonRetryable, true);
      assert.match(cause.message, /Unknown environment "prod"; known environments: production, staging/);
      return true;
    });
    // The checks are local activities, each recorded as a marker: describeEnvironment fails once (no retries of
    // a permanent error) and no probe is started after it.
    const history = await env.client.workflow.getHandle(id).fetchHistory();
    const markers = history.events?.filter((e) => e.markerRecordedEventAttributes) ?? [];
    assert.equal(markers.length, 1, 'exactly one local activity (describeEnvironment) ran');
    const timedOut = history.events?.filter((e) => e.workflowTaskTimedOutEventAttributes) ?? [];
    assert.equal(timedOut.length, 0, 'no workflow task timed out');
  });

  for (const [label, input] of [
    ['shell metacharacters', { environment: 'production; rm -rf /' }],
    ['path traversal', { environment: '../../etc/passwd' }],
    ['an oversized value', { environment: 'p'.repeat(10_000) }],
    ['a non-string', { environment: 42 }],
    ['no object at all', 'production'],
    ['a hostile requestedBy', { environment: 'production', requestedBy: '$(reboot)\n' }],
  ] as const) {
    it(`bad input (${label}) fails with BadInput before any activity runs`, async () => {
      const id = `health-bad-${randomUUID()}`;
      await assert.rejects(run(input, id), (err: unknown) => {
        assert.ok(err instanceof WorkflowFailedError);
        assert.ok(err.cause instanceof ApplicationFailure);
        assert.equal(err.cause.type, 'BadInput');
        assert.equal(err.cause.nonRetryable, true);
        return true;
      });
      const history = await env.client.workflow.getHandle(id).fetchHistory();
      assert.equal(history.events?.some((e) => e.activityTaskScheduledEventAttributes || e.markerRecordedEventAttributes), false);
    });
  }
});
