/**
 * End to end: the worker as its own process (as `npm start` runs it), driven by the real `temporal` CLI and by
 * our CLI, against the stand-in app, real PostgreSQL and Redis.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import pg from 'pg';
import type { HealthReport } from '../src/workflows/health/daily-health-check.js';
import { dropDatabaseOf, freePort, httpOk, PG, privateRedis, ROOT, scratchDatabase, startAppProcess, tempDir, waitFor, type AppProcess } from './support/services.js';
import { alertReceiver, startDevServer, temporalBinary, testConfigYaml } from './support/temporal.js';

describe('end to end: worker process + temporal CLI + llmchat-ops CLI', () => {
  let env: TestWorkflowEnvironment;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  let redis: Awaited<ReturnType<typeof privateRedis>>;
  let sink: Awaited<ReturnType<typeof alertReceiver>>;
  let app: AppProcess;
  let worker: ChildProcess;
  let workerOutput = '';
  let configFile: string;
  let metricsPort: number;
  let appDir: string;
  const taskQueue = `test-e2e-${randomUUID()}`;

  before(async () => {
    [env, db, redis, sink, metricsPort] = await Promise.all([startDevServer(), scratchDatabase(), privateRedis(), alertReceiver(), freePort()]);
    const logs = tempDir('e2e');
    app = await startAppProcess({ databaseUrl: db.url, redisUrl: redis.url, logDir: logs });
    configFile = path.join(logs, 'ops.config.yaml');
    appDir = path.join(logs, 'app');
    await mkdir(path.join(logs, 'config'), { recursive: true });
    await mkdir(appDir, { recursive: true });
    await writeFile(path.join(logs, 'config', 'llmchat.env'), 'LLMCHAT_ENVIRONMENT=production\n');
    await writeFile(path.join(appDir, 'package.json'), '{}\n');
    await writeFile(
      configFile,
      testConfigYaml({ address: env.address, taskQueue, metricsPort, environments: { production: { url: app.url, logs, database: db.name, app: appDir } }, webhookUrl: sink.url }),
    );
    worker = spawn('node', ['dist/src/worker.js', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LLMCHAT_DB_PASSWORD: PG.password } });
    worker.stdout?.on('data', (c) => (workerOutput += c));
    worker.stderr?.on('data', (c) => (workerOutput += c));
    await waitFor('worker started', async () => workerOutput.includes('llmchat-ops worker started'), 60_000);
  });

  after(async () => {
    if (worker && worker.exitCode === null) worker.kill('SIGKILL');
    await app?.stop();
    await Promise.allSettled([redis?.stop(), sink?.close(), db?.drop()]);
    await env?.teardown();
  });

  it('`temporal workflow execute --type dailyHealthCheck` runs on the worker and returns the report', async () => {
    const out = await execa(temporalBinary(), [
      'workflow', 'execute', '--type', 'dailyHealthCheck', '--task-queue', taskQueue,
      '--workflow-id', `e2e-${randomUUID()}`, '--input', '{"environment":"production","requestedBy":"e2e"}',
      '--address', env.address, '--output', 'json',
    ]);
    const parsed = JSON.parse(out.stdout);
    const report: HealthReport = parsed.result ?? parsed;
    assert.equal(report.status, 'healthy', out.stdout);
    assert.equal(report.checks.length, 6);
  });

  it('`llmchat-ops health` follows the run and exits 0 when healthy, 2 when not', async () => {
    const cli = (...args: string[]) => execa('node', ['bin/llmchat-ops.js', '--config', configFile, ...args], { cwd: ROOT, reject: false });
    const healthy = await cli('health', '--env', 'production');
    assert.equal(healthy.exitCode, 0, healthy.stderr);
    assert.match(healthy.stdout, /^LLMChat production: HEALTHY/);
    assert.match(healthy.stdout, /^ {2}ok {3}redis +redis \(\/health\/redis\) answered 200/m);

    await redis.stop();
    const degraded = await cli('health', '--env', 'production', '--json');
    assert.equal(degraded.exitCode, 2, degraded.stderr);
    const report = JSON.parse(degraded.stdout) as HealthReport;
    assert.equal(report.status, 'degraded');
    assert.ok(sink.received.some((r) => r.body.type === 'endpoint_down' && String(r.body.message).includes('redis')));
  });

  it('`llmchat-ops health` rejects an unknown environment before starting anything, naming the known ones', async () => {
    const res = await execa('node', ['bin/llmchat-ops.js', '--config', configFile, 'health', '--env', 'prod'], { cwd: ROOT, reject: false });
    assert.equal(res.exitCode, 1);
    assert.match(res.stderr, /Unknown environment "prod"; known environments: production/);
  });

  it('the CLI lists every config problem and exits 1 on a malformed config; unknown commands exit non-zero', async () => {
    const bad = path.join(tempDir('badcfg'), 'ops.config.yaml');
    await writeFile(bad, 'environments:\n  production:\n    url: nope\n');
    const res = await execa('node', ['bin/llmchat-ops.js', '--config', bad, 'health', '--env', 'production'], { cwd: ROOT, reject: false });
    assert.equal(res.exitCode, 1);
    for (const key of ['url', 'database', 'redis', 'compose', 'paths']) assert.match(res.stderr, new RegExp(`environments\\.production\\.${key}: `));
    const check = await execa('node', ['bin/llmchat-ops.js', 'config', 'check', '--config', bad], { cwd: ROOT, reject: false });
    assert.equal(check.exitCode, 1);
    assert.equal(check.stderr, res.stderr, 'config check reports the same problems');
    const good = await execa('node', ['bin/llmchat-ops.js', 'config', 'check', '--config', configFile], { cwd: ROOT, reject: false });
    assert.equal(good.exitCode, 0, good.stderr);
    assert.match(good.stdout, /^config ok: .*environments: production/);
    const unknown = await execa('node', ['bin/llmchat-ops.js', 'deploy-everything'], { cwd: ROOT, reject: false });
    assert.notEqual(unknown.exitCode, 0);
    assert.match(unknown.stderr, /unknown command 'deploy-everything'/);
  });

  it('`llmchat-ops backup`, `backups list`, `restore --target`, and a live restore approved with `approve`', async () => {
    const cli = (...args: string[]) =>
      execa('node', ['bin/llmchat-ops.js', '--config', configFile, ...args], { cwd: ROOT, reject: false, env: { LLMCHAT_OPS_OPERATOR: 'dana' } });
    const made = await cli('backup', '--env', 'production', '--kinds', 'database,config', '--reason', 'e2e', '--json');
    assert.equal(made.exitCode, 0, made.stderr);
    const { backupId, manifest } = JSON.parse(made.stdout) as { backupId: string; manifest: { verification: { status: string }; requestedBy: string } };
    assert.equal(manifest.verification.status, 'verified');
    assert.equal(manifest.requestedBy, 'dana');

    const list = await cli('backups', 'list', '--env', 'production');
    assert.equal(list.exitCode, 0, list.stderr);
    assert.match(list.stdout, new RegExp(`^${backupId}\\s+complete\\s+verified`, 'm'));

    const target = `e2e_${Date.now().toString(36)}`;
    const intoNew = await cli('restore', backupId, '--kind', 'database', '--target', target);
    assert.equal(intoNew.exitCode, 0, intoNew.stderr);
    assert.match(intoNew.stdout, new RegExp(`restored database of ${backupId} into ${target}: \\d+ tables, row counts match`));
    const c = new pg.Client({ ...PG, database: 'llmchat' });
    await c.connect();
    await dropDatabaseOf(c, target);
    await c.end();

    const bad = await cli('restore', '../../etc/passwd', '--kind', 'database');
    assert.equal(bad.exitCode, 1);
    assert.match(bad.stderr, /Expected a backup id/);
    // The innermost cause and its type, not "Activity task failed".
    const missing = await cli('restore', 'production-20200101T000000Z-abcdef', '--kind', 'database', '--target', 'e2e_missing');
    assert.equal(missing.exitCode, 1);
    assert.match(missing.stderr, /workflow failed: BackupNotFound: Unknown backup production-20200101T000000Z-abcdef/);
    const noKinds = await cli('backup', '--env', 'production', '--kinds', '');
    assert.equal(noKinds.exitCode, 1);
    assert.match(noKinds.stderr, /Unknown backup kind\(s\) ""/);
    const version = await cli('--version');
    assert.equal(version.exitCode, 0);
    assert.equal(version.stdout.trim(), JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')).version);
    const nothing = await cli('approve', 'production');
    assert.equal(nothing.exitCode, 1);
    assert.match(nothing.stderr, /no restore of production is waiting for approval/);

    const configFileLive = path.join(path.dirname(configFile), 'config', 'llmchat.env');
    await writeFile(configFileLive, 'BROKEN=1\n');
    const started = await cli('restore', backupId, '--kind', 'config', '--no-wait');
    assert.equal(started.exitCode, 0, started.stderr);
    await waitFor('restore awaiting approval', async () => (await env.client.workflow.getHandle('llmchat-data-production').query<{ state: string }>('restoreStatus')).state === 'awaiting-approval');
    const busy = await cli('backup', '--env', 'production');
    assert.equal(busy.exitCode, 1);
    assert.match(busy.stderr, /a backup or restore of production is already running/);
    // Consent follows the information: `approve` without --gate shows the gate and what it would approve.
    const bare = await cli('approve', 'production', '--comment', 'config got clobbered');
    assert.equal(bare.exitCode, 1);
    const gate = /waits at gate (restore-[0-9a-f]{8}):/.exec(bare.stderr)?.[1];
    assert.ok(gate, bare.stderr);
    assert.match(bare.stderr, /restore config of backup .* since the backup is LOST/);
    // Four eyes: dana asked for the restore, so dana's approval is refused, with the workflow's answer.
    const self = await cli('approve', 'production', '--gate', gate, '--comment', 'config got clobbered');
    assert.equal(self.exitCode, 1);
    assert.match(self.stderr, /approve refused .*dana requested this operation and cannot approve it/);
    const approved = await execa('node', ['bin/llmchat-ops.js', '--config', configFile, 'approve', 'production', '--gate', gate, '-m', 'config got clobbered'], {
      cwd: ROOT,
      reject: false,
      env: { LLMCHAT_OPS_OPERATOR: 'erin' },
    });
    assert.equal(approved.exitCode, 0, approved.stderr);
    assert.match(approved.stdout, /approved by erin/);
    const outcome = (await env.client.workflow.getHandle('llmchat-data-production').result()) as { approvedBy: string; safetyBackupId: string };
    assert.equal(outcome.approvedBy, 'erin');
    assert.ok(outcome.safetyBackupId);
    assert.equal(await readFile(configFileLive, 'utf8'), 'LLMCHAT_ENVIRONMENT=production\n');
  });

  it('the worker exposes Prometheus metrics, logs JSON, and shuts down gracefully on SIGTERM', async () => {
    await waitFor('metrics endpoint', httpOk(`http://127.0.0.1:${metricsPort}/metrics`));
    const metrics = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
    assert.match(metrics, /temporal_workflow_completed\{/);
    assert.match(metrics, /temporal_activity_execution_latency/);
    const started = workerOutput.split('\n').find((l) => l.includes('llmchat-ops worker started'));
    const json = JSON.parse(started ?? '{}');
    assert.equal(json.level, 'INFO');
    assert.equal(json.taskQueue, taskQueue);
    const exited = new Promise<number | null>((r) => worker.once('exit', (code) => r(code)));
    worker.kill('SIGTERM');
    assert.equal(await exited, 0, workerOutput.slice(-2000));
  });
});
