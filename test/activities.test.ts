import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { MockActivityEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { SMTPServer } from 'smtp-server';
import { createActivities } from '../src/activities/index.js';
import { filesystemUsage, memoryUsage, scanLog } from '../src/activities/health/host.js';
import type { Alert, LogScan } from '../src/common/health.js';
import { privateRedis, scratchDatabase, startAppProcess, tempDir, type AppProcess } from './support/services.js';
import { alertReceiver, testConfig } from './support/temporal.js';

const alert: Alert = { severity: 'critical', type: 'endpoint_down', title: 'LLMChat service check failed', message: 'production: service failed', environment: 'production' };

describe('http health activities against the real stand-in app, PostgreSQL and Redis', () => {
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let redis: Awaited<ReturnType<typeof privateRedis>>;
  let app: AppProcess;
  let acts: ReturnType<typeof createActivities>;

  before(async () => {
    db = await scratchDatabase();
    redis = await privateRedis();
    app = await startAppProcess({ databaseUrl: db.url, redisUrl: redis.url, logDir: tempDir('app') });
    acts = createActivities(testConfig({ address: 'unused:7233', taskQueue: 'unused', environments: { production: { url: app.url, logs: tempDir('logs') } } }));
  });
  after(async () => {
    await app?.stop();
    await redis?.stop();
    await db?.drop();
  });

  it('probes /health, /health/db and /health/redis as healthy', async () => {
    for (const endpoint of ['service', 'database', 'redis'] as const) {
      const probe = await acts.probeEndpoint({ environment: 'production', endpoint });
      assert.equal(probe.ok, true, JSON.stringify(probe));
      assert.equal(probe.httpStatus, 200);
      assert.ok(probe.responseTimeMs >= 0);
    }
  });

  it('sees Redis going away: /health/redis fails with 503 while /health/db stays healthy', async () => {
    await redis.stop();
    const r = await acts.probeEndpoint({ environment: 'production', endpoint: 'redis' });
    assert.equal(r.ok, false);
    assert.equal(r.httpStatus, 503);
    assert.equal((await acts.probeEndpoint({ environment: 'production', endpoint: 'database' })).ok, true);
  });

  it('reports a dead app as a failed probe (connection refused), not as an exception', async () => {
    await app.stop();
    const r = await acts.probeEndpoint({ environment: 'production', endpoint: 'service' });
    assert.equal(r.ok, false);
    assert.equal(r.httpStatus, undefined);
    assert.equal(r.error, 'ECONNREFUSED');
  });

  it('refuses an unknown environment with a non-retryable failure naming the known ones', async () => {
    await assert.rejects(acts.probeEndpoint({ environment: 'prod', endpoint: 'service' }), (e: unknown) => {
      assert.ok(e instanceof ApplicationFailure);
      assert.equal(e.nonRetryable, true);
      assert.equal(e.type, 'UnknownEnvironmentError');
      assert.match(e.message, /Unknown environment "prod"; known environments: production/);
      return true;
    });
  });
});

describe('host activities', () => {
  it('measures filesystem usage like df', async () => {
    const u = await filesystemUsage('/');
    const df = await execa('df', ['-P', '/']);
    const dfPercent = Number(/(\d+)%/.exec(df.stdout.split('\n')[1] ?? '')?.[1]);
    assert.ok(Math.abs(Math.ceil(u.usedPercent) - dfPercent) <= 1, `ours ${u.usedPercent} vs df ${dfPercent}`);
  });

  it('measures memory as total minus available, like free', async () => {
    const m = await memoryUsage();
    const free = (await execa('free', ['-b'])).stdout.split('\n')[1]?.trim().split(/\s+/) ?? [];
    const total = Number(free[1]);
    const available = Number(free[6]);
    assert.equal(m.totalBytes, total);
    assert.ok(Math.abs(m.availableBytes - available) / total < 0.05, `ours ${m.availableBytes} vs free ${available}`);
    assert.ok(m.usedPercent > 0 && m.usedPercent < 100);
  });

  it('checkDiskUsage covers the environment paths, once per filesystem, even before they exist', async () => {
    const logs = path.join(tempDir('disk'), 'not', 'yet');
    const acts = createActivities(testConfig({ address: 'x:1', taskQueue: 'q', environments: { production: { url: 'http://127.0.0.1:1', logs } } }));
    const disks = await acts.checkDiskUsage({ environment: 'production' });
    assert.ok(disks.length >= 1);
    assert.equal(disks[0]?.path, '/');
    assert.equal(new Set(disks.map((d) => d.path)).size, disks.length);
  });

  it('counts ERROR lines and staleness of the app log (including a last line without newline)', async () => {
    const dir = tempDir('log');
    const file = path.join(dir, 'app.log');
    await writeFile(file, 'x INFO a\ny ERROR b\nz ERROR c\nw INFO d\nlast ERROR e');
    const old = new Date(Date.now() - 90 * 60_000);
    await utimes(file, old, old);
    const scan = await scanLog(file);
    assert.equal(scan.exists, true);
    assert.equal(scan.lines, 5);
    assert.equal(scan.errorLines, 3);
    assert.ok(scan.ageMinutes !== undefined && scan.ageMinutes > 89 && scan.ageMinutes < 92, String(scan.ageMinutes));
    assert.deepEqual(await scanLog(path.join(dir, 'missing.log')), { file: path.join(dir, 'missing.log'), exists: false, errorLines: 0, lines: 0, bytes: 0 });
  });

  it('streams a large log, heartbeating its progress, and stops when cancelled', async () => {
    const dir = tempDir('biglog');
    const file = path.join(dir, 'app.log');
    const out = createWriteStream(file);
    const line = '2026-11-25T10:00:00.000Z INFO request handled {"route":"/api/sessions"}\n';
    for (let i = 0; i < 200_000; i++) {
      if (!out.write(i % 1000 === 0 ? line.replace('INFO', 'ERROR') : line)) await once(out, 'drain');
    }
    out.end();
    await once(out, 'finish');

    const env = new MockActivityEnvironment();
    const beats: unknown[] = [];
    env.on('heartbeat', (d: unknown) => beats.push(d));
    const scan = await env.run<[string], LogScan, typeof scanLog>(scanLog, file);
    assert.equal(scan.lines, 200_000);
    assert.equal(scan.errorLines, 200);
    assert.ok(beats.length >= 10, `heartbeats: ${beats.length}`);
    assert.deepEqual(beats.at(-1), { bytes: scan.bytes, of: scan.bytes });

    // As a local activity (how dailyHealthCheck runs it) there is no heartbeat to send: none is attempted.
    const local = new MockActivityEnvironment({ isLocal: true });
    let localBeats = 0;
    local.on('heartbeat', () => localBeats++);
    assert.equal((await local.run<[string], LogScan, typeof scanLog>(scanLog, file)).errorLines, 200);
    assert.equal(localBeats, 0);

    const cancelling = new MockActivityEnvironment();
    cancelling.once('heartbeat', () => cancelling.cancel('CANCELLED'));
    await assert.rejects(cancelling.run(scanLog, file), (e: Error) => e.name === 'AbortError' || /cancel|abort/i.test(e.message));
  });
});

describe('notify activities against real receivers', () => {
  it('POSTs the alert to the webhook with an idempotency key', async () => {
    const sink = await alertReceiver();
    try {
      const acts = createActivities(testConfig({ address: 'x:1', taskQueue: 'q', environments: { production: { url: 'http://127.0.0.1:1', logs: '/tmp' } }, webhookUrl: sink.url }));
      const res = await acts.deliverAlert({ channel: 'webhook', alert, alertId: 'wf/run/alert-0/webhook' });
      assert.deepEqual(res, { channel: 'webhook', delivered: true, detail: 'HTTP 200' });
      assert.equal(sink.received.length, 1);
      assert.equal(sink.received[0]?.headers['idempotency-key'], 'wf/run/alert-0/webhook');
      assert.equal(sink.received[0]?.body.severity, 'critical');
      assert.equal(sink.received[0]?.body.message, 'production: service failed');
    } finally {
      await sink.close();
    }
  });

  it('treats a 4xx answer as permanent and a 5xx as retryable', async () => {
    for (const [status, retryable] of [[400, false], [503, true]] as const) {
      const sink = await alertReceiver(status);
      try {
        const acts = createActivities(testConfig({ address: 'x:1', taskQueue: 'q', environments: { production: { url: 'http://127.0.0.1:1', logs: '/tmp' } }, webhookUrl: sink.url }));
        await assert.rejects(acts.deliverAlert({ channel: 'webhook', alert, alertId: 'a' }), (e: unknown) => {
          assert.equal(e instanceof ApplicationFailure && e.nonRetryable, !retryable, String(e));
          return true;
        });
      } finally {
        await sink.close();
      }
    }
  });

  it('posts Slack text to the webhook URL read from the worker environment, and skips unconfigured channels', async () => {
    const sink = await alertReceiver();
    process.env.LLMCHAT_TEST_SLACK_URL = sink.url;
    try {
      const acts = createActivities(testConfig({ address: 'x:1', taskQueue: 'q', environments: { production: { url: 'http://127.0.0.1:1', logs: '/tmp' } }, slackEnv: 'LLMCHAT_TEST_SLACK_URL' }));
      assert.equal((await acts.deliverAlert({ channel: 'slack', alert, alertId: 'a' })).delivered, true);
      assert.match(String(sink.received[0]?.body.text), /\[CRITICAL\] LLMChat service check failed — production: service failed/);
      assert.deepEqual(await acts.deliverAlert({ channel: 'email', alert, alertId: 'a' }), { channel: 'email', delivered: false, detail: 'email channel not configured' });
    } finally {
      await sink.close();
    }
  });

  it('sends email through a real SMTP server', async () => {
    const mails: { to: string[]; data: string }[] = [];
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      onData(stream, session, cb) {
        let data = '';
        stream.on('data', (c) => (data += c));
        stream.on('end', () => {
          mails.push({ to: session.envelope.rcptTo.map((r) => r.address), data });
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
    const port = (smtp.server.address() as { port: number }).port;
    try {
      const acts = createActivities(testConfig({ address: 'x:1', taskQueue: 'q', environments: { production: { url: 'http://127.0.0.1:1', logs: '/tmp' } }, email: { host: '127.0.0.1', port, to: ['oncall@llmchat.test'] } }));
      const res = await acts.deliverAlert({ channel: 'email', alert, alertId: 'wf/run/alert-0/email' });
      assert.equal(res.delivered, true, res.detail);
      assert.equal(mails.length, 1);
      assert.deepEqual(mails[0]?.to, ['oncall@llmchat.test']);
      const body = (mails[0]?.data ?? '').replace(/=\r\n/g, ''); // undo quoted-printable soft line breaks
      assert.match(body, /\[CRITICAL\] LLMChat service check failed =E2=80=94 production: service failed/);
      assert.match(body, /^alert id: wf\/run\/alert-0\/email\r?$/m);
      assert.match(mails[0]?.data ?? '', /^Message-ID: <wf-run-alert-0-email@llmchat-ops>\r?$/m);
    } finally {
      await new Promise<void>((r) => smtp.close(() => r()));
    }
  });
});

describe('environment activity', () => {
  it('returns thresholds and only the configured channels of each route', async () => {
    const acts = createActivities(testConfig({ address: 'x:1', taskQueue: 'q', environments: { production: { url: 'http://127.0.0.1:1', logs: '/tmp', thresholds: { diskPercent: 70 } } }, webhookUrl: 'http://127.0.0.1:9/a' }));
    const env = await acts.describeEnvironment('production');
    assert.equal(env.thresholds.diskPercent, 70);
    assert.deepEqual(env.alertRoutes, { critical: ['webhook'], warning: ['webhook'], info: ['webhook'] });
  });
});
