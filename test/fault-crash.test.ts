/**
 * Crash test for auto-recovery: the worker process is SIGKILLed while restartAppService is restarting the app and
 * waiting for /health. After a new worker takes over, the container was started exactly once (Docker's own event
 * stream counts it), the detection run finished as recovered, and the alert's state is intact with one page.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { parse, stringify } from 'yaml';
import { alertWorkflowId } from '../src/activities/faults/faults.js';
import { alertStateQuery } from '../src/workflows/faults/shared.js';
import { faultDetection } from '../src/workflows/faults/fault-detection.js';
import { type FaultDetectionReport } from '../src/workflows/faults/shared.js';
import { faultFixture, type FaultFixture } from './support/fault-fixture.js';
import { freePort, httpOk, PG, ROOT, waitFor } from './support/services.js';

describe('crash test: worker SIGKILLed during restart-and-wait', () => {
  let f: FaultFixture;
  let worker: ChildProcess | undefined;
  let metricsPort = 0;
  const docker = new Docker();

  function startWorker(): Promise<ChildProcess> {
    const child = spawn('node', ['dist/src/worker.js', f.configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LLMCHAT_DB_PASSWORD: PG.password } });
    let output = '';
    child.stdout?.on('data', (c) => (output += c));
    child.stderr?.on('data', (c) => (output += c));
    worker = child;
    return waitFor('worker started', async () => output.includes('llmchat-ops worker started'), 60_000).then(() => child);
  }
  async function kill(child: ChildProcess): Promise<void> {
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;
  }

  before(async () => {
    f = await faultFixture({ environments: { prod: { faultDetection: { recovery: { restarts: 3, per: '1h', healthyTimeout: '60s' } } } } });
    const doc = parse(await readFile(f.configFile, 'utf8'));
    metricsPort = await freePort();
    doc.worker = { metricsPort }; // a worker of `npm start` may hold the default port
    await writeFile(f.configFile, stringify(doc));
    await startWorker();
  });
  after(async () => {
    if (worker && worker.exitCode === null) await kill(worker);
    await f?.teardown();
  });

  it('exactly one restart, run recovered, alert intact', async () => {
    const [info] = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${f.app.project}`] } });
    assert.ok(info);
    const container = docker.getContainer(info.Id);
    await container.kill();
    const since = Math.floor(Date.now() / 1000);
    // the environment's own ledger: <paths.state>/<environment>/recovery-ledger-<app instance>.json
    const ledgerDir = path.join(f.stateRoot, 'prod', 'prod');
    const ledgerFile = async () => {
      const name = (await readdir(ledgerDir).catch(() => [] as string[])).find((n) => /^recovery-ledger-[0-9a-f]{12}\.json$/.test(n));
      return name ? path.join(ledgerDir, name) : undefined;
    };

    const id = `faultDetection-prod-crash-${randomUUID()}`;
    const run = f.env.client.workflow.execute(faultDetection, { taskQueue: f.taskQueue, workflowId: id, args: [{ environment: 'prod', requestedBy: 'crash-test' }] });
    await waitFor('the recovery reserved in the ledger', async () => (await ledgerFile()) !== undefined, 60_000, 20);
    await kill(worker as ChildProcess); // mid restart-and-wait
    await new Promise((r) => setTimeout(r, 1000));
    await startWorker();

    const report: FaultDetectionReport = await run;
    assert.deepEqual(report.recoveries.map((r) => [r.action, r.outcome]), [['restart', 'recovered']]);
    assert.ok(await httpOk(`${f.app.url}/health`)());

    // the activity was interrupted and retried on the new worker …
    // (in the environment's one run, which this trigger joined)
    assert.match(report.ranIn ?? '', /^llmchat-faults-prod\//);
    const [ranId, ranRun] = (report.ranIn ?? '').split('/');
    const history = await f.env.client.workflow.getHandle(ranId as string, ranRun).fetchHistory();
    const scheduled = new Map<string, string>();
    let attempts = 0;
    for (const e of history.events ?? []) {
      if (e.activityTaskScheduledEventAttributes) scheduled.set(String(e.eventId), e.activityTaskScheduledEventAttributes.activityType?.name ?? '');
      const st = e.activityTaskStartedEventAttributes;
      if (st && scheduled.get(String(st.scheduledEventId)) === 'restartAppService') attempts = Math.max(attempts, st.attempt ?? 0);
    }
    assert.ok(attempts >= 2, `restartAppService was retried after the crash (attempt ${attempts})`);

    // … and the container was started exactly once since it was killed
    const stream = await docker.getEvents({ since, until: Math.floor(Date.now() / 1000) + 1, filters: { container: [info.Id], event: ['start'] } });
    const text = await new Promise<string>((resolve) => {
      let buf = '';
      stream.on('data', (c: Buffer) => (buf += c.toString()));
      stream.on('end', () => resolve(buf));
    });
    const starts = text.split('\n').filter((l) => l.includes('"start"')).length;
    assert.equal(starts, 1, `container start events since the kill: ${starts}`);
    const stored = JSON.parse(await readFile((await ledgerFile()) as string, 'utf8')) as { environment: string; data: { key: string }[] };
    assert.equal(stored.environment, 'prod');
    assert.equal(stored.data.length, 1, 'one recovery in the budget ledger');

    const state = await f.env.client.workflow.getHandle(alertWorkflowId('prod', 'app-down')).query(alertStateQuery);
    await waitFor('alert resolved', async () => (await f.env.client.workflow.getHandle(alertWorkflowId('prod', 'app-down')).query(alertStateQuery)).status === 'resolved');
    const final = await f.env.client.workflow.getHandle(alertWorkflowId('prod', 'app-down')).query(alertStateQuery);
    assert.equal(final.history.filter((h) => h.event === 'paged').length, 1, JSON.stringify(final.history));
    assert.equal(final.history.filter((h) => h.event === 'recovery').length, 1);
    assert.ok(state.reports >= 1);
  });

  it("llmchat-ops' own metrics are on the worker's metrics endpoint", async () => {
    // The restarted worker finished the run: its runs, recoveries, deliveries and the alert's resolution are its own.
    let text = '';
    await waitFor('own metrics exported', async () => {
      text = await (await fetch(`http://127.0.0.1:${metricsPort}/metrics`)).text();
      return /^llmchat_ops_runs\{[^}]*outcome="recovered"[^}]*\} 1$/m.test(text);
    }, 30_000).catch((err: Error) => assert.fail(`${err.message}\n${text.split('\n').filter((l) => l.includes('llmchat_ops')).join('\n')}`));
    assert.match(text, /^llmchat_ops_runs\{[^}]*workflow="faultDetection"[^}]*\} 1$/m);
    assert.match(text, /^llmchat_ops_recoveries\{[^}]*action="restart"[^}]*outcome="recovered"[^}]*\} 1$/m);
    assert.match(text, /^llmchat_ops_alerts\{[^}]*event="resolved"[^}]*severity="critical"[^}]*\} 1$/m);
    assert.match(text, /^llmchat_ops_alert_deliveries\{[^}]*channel="webhook"[^}]*outcome="delivered"[^}]*\} \d+$/m);
    assert.match(text, /^temporal_/m, "beside the SDK's own worker metrics");
  });
});
