/**
 * Fault detection per environment, one run at a time, one page per incident, and an authenticated fast path —
 * against real app containers (two environments given exactly the same `paths`, as the shipped config gives
 * production and staging), the real dev server, the demo alert inbox (scripts/alert-inbox.mjs) and the real
 * Alertmanager receiver.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { randomUUID } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { execa } from 'execa';
import { parse } from 'yaml';
import { startAlertmanagerReceiver, type AlertmanagerReceiver } from '../src/activities/faults/alertmanager-receiver.js';
import { main } from '../src/cli/index.js';
import { loadConfig, parseConfig } from '../src/common/config/index.js';
import { alertWorkflowId } from '../src/activities/faults/faults.js';
import { RequestedByKey } from '../src/common/search-attributes.js';
import { acknowledgeAlertSignal, alertStateQuery, faultClearedSignal, faultReportedSignal, type FaultReport } from '../src/workflows/faults/shared.js';
import { alertLifecycle } from '../src/workflows/faults/alert-lifecycle.js';
import { faultDetection } from '../src/workflows/faults/fault-detection.js';
import { type FaultDetectionReport } from '../src/workflows/faults/shared.js';
import { faultFixture, type FaultFixture } from './support/fault-fixture.js';
import { freePort, httpOk, ROOT, tempDir, waitFor } from './support/services.js';

const docker = new Docker();
const TOKEN_ENV = `LLMCHAT_TEST_AM_TOKEN_${process.pid}`;
const TOKEN = randomUUID();
const ESCALATE_AFTER_MS = 25_000;

interface InboxLine {
  receivedAt: string;
  alert: { type: string; title: string; environment: string; severity: string; message: string };
}

describe('fault detection per environment, one at a time; one page per incident; authenticated fast path', () => {
  let f: FaultFixture;
  let inbox: ChildProcess;
  let inboxFile = '';
  let receiver: AlertmanagerReceiver;
  // In front of the inbox: holds "RESOLVED" deliveries while `holdResolved` is set (to land a report while one is sent).
  let proxy: http.Server;
  let holdResolved = false;
  const held: (() => void)[] = [];

  before(async () => {
    const port = await freePort();
    inboxFile = path.join(tempDir('inbox'), 'alerts.jsonl');
    inbox = spawn('node', [path.join(ROOT, 'scripts/alert-inbox.mjs'), '--port', String(port), '--file', inboxFile], { stdio: 'ignore' });
    await waitFor('alert inbox', async () => (await fetch(`http://127.0.0.1:${port}/alerts`)).ok);
    proxy = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks);
        const forward = () =>
          void fetch(`http://127.0.0.1:${port}/alerts`, { method: 'POST', headers: { 'content-type': 'application/json', ...(req.headers['idempotency-key'] ? { 'idempotency-key': String(req.headers['idempotency-key']) } : {}) }, body }).then(
            (r) => res.writeHead(r.status).end(),
            () => res.writeHead(502).end(),
          );
        if (holdResolved && body.toString().includes('"RESOLVED: ')) held.push(forward);
        else forward();
      });
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    process.env[TOKEN_ENV] = TOKEN;
    const off = { recovery: { enabled: false } };
    f = await faultFixture({
      apps: 2,
      sharedPaths: true, // one temp, one logs directory, no paths.state: what the shipped config gives both environments
      environments: {
        production: { app: 0, faultDetection: off },
        staging: { app: 1, faultDetection: off },
        race: { app: 1, faultDetection: { recovery: { restarts: 3, per: '1h', healthyTimeout: '60s' } } },
        pager: { app: 1, faultDetection: { recovery: { restarts: 1, per: '1h', healthyTimeout: '60s' } } },
      },
      alerts: { escalateAfter: `${ESCALATE_AFTER_MS / 1000}s`, grace: '0s' },
      alertmanagerReceiver: { enabled: false, tokenEnv: TOKEN_ENV },
      webhookUrl: `http://127.0.0.1:${(proxy.address() as { port: number }).port}/alerts`,
    });
    await f.startWorker();
    receiver = await startAlertmanagerReceiver({ cfg: f.cfg, client: f.env.client, host: '127.0.0.1', port: 0 });
  });
  after(async () => {
    await receiver?.close();
    await f?.teardown();
    proxy?.close();
    inbox?.kill('SIGTERM');
  });

  const detect = (environment: string, id = `faultDetection-${environment}-${randomUUID()}`): Promise<FaultDetectionReport> =>
    f.env.client.workflow.execute(faultDetection, { taskQueue: f.taskQueue, workflowId: id, args: [{ environment, requestedBy: 'test' }] });
  const containerOf = async (app: number) => {
    const [c] = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${f.apps[app]?.project}`] } });
    assert.ok(c, 'the app container exists');
    return { id: c.Id, container: docker.getContainer(c.Id) };
  };
  const hit = async (url: string, n: number, method = 'GET') => {
    for (let i = 0; i < n; i += 20) await Promise.all(Array.from({ length: Math.min(20, n - i) }, () => fetch(url, { method }).then((r) => r.arrayBuffer())));
  };
  const inboxLines = async (): Promise<InboxLine[]> =>
    (await readFile(inboxFile, 'utf8').catch(() => ''))
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as InboxLine);
  const pagesOf = async (environment: string, type: string) => (await inboxLines()).filter((l) => l.alert.environment === environment && l.alert.type === type).map((l) => l.alert.title);
  const postAlert = (alerts: { alertname: string; environment: string }[], token: string | undefined = TOKEN) =>
    fetch(receiver.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
      body: JSON.stringify({ version: '4', status: 'firing', alerts: alerts.map((labels) => ({ status: 'firing', labels })) }),
    });

  it('two environments with the same paths: 77 % failing requests in one are measured as 77 % while the other runs', async () => {
    const prodUrl = f.apps[0]?.url as string;
    const stagingUrl = f.apps[1]?.url as string;
    await hit(`${prodUrl}/health`, 2500); // a long healthy history before the window: since the start, 77 errors are ~3 %
    await Promise.all([detect('production'), detect('staging')]); // baselines
    await hit(`${prodUrl}/api/debug/error`, 77, 'POST');
    await hit(`${prodUrl}/health`, 23);
    await hit(`${stagingUrl}/health`, 50);
    const staging1 = await detect('staging'); // the other environment runs in between …
    const [production, staging2] = await Promise.all([detect('production'), detect('staging')]); // … and at the same time
    const w = production.metrics.window;
    assert.ok(w?.hasBaseline, JSON.stringify(production.metrics));
    assert.equal(w.counterReset, false, `production's window is measured against production's own snapshot: ${JSON.stringify(w)}`);
    assert.equal(w.errors, 77, JSON.stringify(w));
    assert.ok(w.requests >= 100 && w.requests <= 103, JSON.stringify(w));
    assert.ok(production.faults.includes('error-rate'), JSON.stringify(production.checks.find((c) => c.check === 'error-rate')));
    assert.ok((production.checks.find((c) => c.check === 'error-rate')?.value ?? 0) > 74);
    for (const s of [staging1, staging2]) {
      assert.equal(s.metrics.window?.counterReset, false, JSON.stringify(s.metrics.window));
      assert.equal(s.metrics.window?.errors, 0);
      assert.ok(!s.faults.includes('error-rate'));
    }
    assert.ok((staging1.metrics.window?.requests ?? 0) >= 50, JSON.stringify(staging1.metrics.window));
    // Both watch the same log file (same paths): each environment counts the new ERROR lines from its own offset.
    assert.equal(production.logs[0]?.errorLines, 77, JSON.stringify(production.logs));
    assert.equal(staging1.logs[0]?.errorLines, 77, JSON.stringify(staging1.logs));
    assert.equal(staging2.logs[0]?.errorLines, 0);
  });

  it('30 racing triggers (Alertmanager, workflow starts, the CLI) for one environment: one run at a time, one restart', async () => {
    await detect('race'); // baseline
    const { id, container } = await containerOf(1);
    await container.kill();
    const since = Math.floor(Date.now() / 1000);
    const out: string[] = [];
    const log = console.log;
    console.log = (...a: unknown[]) => void out.push(a.join(' '));
    let posts: Response[] = [];
    let starts: FaultDetectionReport[] = [];
    let cli: number[] = [];
    try {
      [posts, starts, cli] = await Promise.all([
        Promise.all(Array.from({ length: 10 }, (_, i) => postAlert(i % 2 ? [{ alertname: 'LLMChatDown', environment: 'race' }] : [{ alertname: 'LLMChatDown', environment: 'race' }, { alertname: 'LLMChatHighErrorRate', environment: 'race' }]))),
        Promise.all(Array.from({ length: 10 }, () => detect('race'))),
        Promise.all(Array.from({ length: 10 }, () => main(['node', 'llmchat-ops', '--config', f.configFile, 'detect', '--env', 'race', '--json']))),
      ]);
    } finally {
      console.log = log;
    }
    assert.deepEqual(posts.map((p) => p.status), Array(10).fill(202));
    const started = (await Promise.all(posts.map((p) => p.json()))) as { started: { workflowId: string }[] }[];
    const ids = new Set(started.flatMap((s) => s.started.map((x) => x.workflowId)));
    const amReports = await Promise.all([...ids].map((wid) => f.env.client.workflow.getHandle(wid).result() as Promise<FaultDetectionReport>));
    const cliReports = out.filter((o) => o.trim().startsWith('{')).map((o) => JSON.parse(o) as FaultDetectionReport);
    assert.equal(cliReports.length, 10, `every CLI call printed a report (exit codes ${cli.join(',')})`);
    const reports = [...amReports, ...starts, ...cliReports];
    const restarts = reports.flatMap((r) => r.recoveries.filter((x) => x.action === 'restart').map((x) => `${x.outcome} ${x.detail}`));
    assert.ok(!restarts.some((r) => r.startsWith('refused-budget')), `no trigger used up the restart budget: ${restarts.join('\n')}`);
    assert.ok(!reports.some((r) => r.outcome === 'handed-over'));
    // the app is healthy again and was started exactly once since the kill
    assert.ok(await httpOk(`${f.apps[1]?.url}/health`)());
    const stream = await docker.getEvents({ since, until: Math.floor(Date.now() / 1000) + 1, filters: { container: [id], event: ['start', 'restart'] } });
    const text = await new Promise<string>((resolve) => {
      let buf = '';
      stream.on('data', (c: Buffer) => (buf += c.toString()));
      stream.on('end', () => resolve(buf));
    });
    const events = text.split('\n').filter((l) => /"(start|restart)"/.test(l)).length;
    assert.equal(events, 1, `container start/restart events since the kill: ${events}`);
    // distinct detection runs that restarted: one
    const restartedBy = new Set(reports.filter((r) => r.recoveries.some((x) => x.action === 'restart' && x.outcome === 'recovered')).map((r) => (r as { ranIn?: string }).ranIn ?? r.checkedAt));
    assert.equal(restartedBy.size, 1, [...restartedBy].join(', '));
    const runs = new Set(reports.map((r) => r.ranIn ?? r.checkedAt));
    console.log(`30 triggers → ${runs.size} detection run(s) of llmchat-faults-race, ${restartedBy.size} restart`);
    assert.equal((await pagesOf('race', 'app-down')).filter((t) => !t.startsWith('RESOLVED')).length, 1, 'one page for the fault');
  });

  it('a grouped Alertmanager post (two alertnames, one environment) starts one valid run', async () => {
    const res = await postAlert([
      { alertname: 'LLMChatHighErrorRate', environment: 'staging' },
      { alertname: 'LLMChatDown', environment: 'staging' },
    ]);
    assert.equal(res.status, 202);
    const body = (await res.json()) as { started: { environment: string; workflowId: string; alertnames: string[] }[] };
    assert.equal(body.started.length, 1);
    const handle = f.env.client.workflow.getHandle(body.started[0]?.workflowId as string);
    const report = (await handle.result()) as FaultDetectionReport;
    assert.equal(report.environment, 'staging');
    assert.equal((await handle.describe()).typedSearchAttributes.get(RequestedByKey), 'alertmanager:LLMChatDown+LLMChatHighErrorRate');
  });

  it('after the restart budget is spent: one hand-over page, none for later runs, no escalation after an acknowledgement (alert inbox)', async () => {
    const { container } = await containerOf(1);
    const alert = f.env.client.workflow.getHandle(alertWorkflowId('pager', 'app-down'));
    // incident 1: the budget's one restart
    await container.kill();
    const first = await detect('pager');
    assert.deepEqual(first.recoveries.map((r) => [r.action, r.outcome]), [['restart', 'recovered']]);
    await waitFor('incident 1 resolved in the inbox', async () => (await pagesOf('pager', 'app-down')).some((t) => t.startsWith('RESOLVED')));
    // incident 2: the budget is spent
    await container.kill();
    const second = await detect('pager');
    assert.equal(second.outcome, 'handed-over', JSON.stringify(second.recoveries));
    await waitFor('hand-over paged', async () => (await pagesOf('pager', 'app-down')).length >= 4, 30_000);
    for (let i = 0; i < 3; i++) assert.equal((await detect('pager')).outcome, 'handed-over');
    await alert.signal(acknowledgeAlertSignal, { by: 'alice', comment: 'on it' });
    await waitFor('acknowledged', async () => (await alert.query(alertStateQuery)).acknowledged !== undefined);
    const acked = await alert.query(alertStateQuery);
    const ackAt = Date.parse(acked.acknowledged?.at ?? '');
    const openedAt = Date.parse(acked.openedAt);
    await new Promise((r) => setTimeout(r, Math.max(0, openedAt + ESCALATE_AFTER_MS + 3000 - Date.now())));
    for (let i = 0; i < 2; i++) assert.equal((await detect('pager')).outcome, 'handed-over');
    await new Promise((r) => setTimeout(r, 2000));
    const titles = await pagesOf('pager', 'app-down');
    const escalatedBeforeAck = ackAt > openedAt + ESCALATE_AFTER_MS ? 1 : 0; // only if this machine was too slow to ack in time
    const incident2 = titles.slice(2);
    assert.equal(titles.slice(0, 2).filter((t) => t.startsWith('RESOLVED')).length, 1, `incident 1: page + resolved: ${JSON.stringify(titles)}`);
    assert.equal(incident2.length, 2 + escalatedBeforeAck, `incident 2: the page and one hand-over, nothing for the 5 later runs: ${JSON.stringify(titles)}`);
    assert.equal(incident2.filter((t) => /hand/i.test(t) || /human must take over/.test(t)).length >= 1, true, JSON.stringify(incident2));
    // the alert's query: this incident's pages and why; the later reports were quiet
    const state = await alert.query(alertStateQuery);
    assert.deepEqual(state.pages?.map((p) => p.kind), ['open', 'handover', ...(escalatedBeforeAck ? ['escalated'] : [])]);
    assert.ok(state.pages?.every((p) => p.reason.length > 0 && p.delivered.includes('webhook:sent')), JSON.stringify(state.pages));
    assert.match(state.pages?.[1]?.reason ?? '', /a human must take over/);
    assert.ok((state.quietReports ?? 0) >= 5, `the 5 later runs' reports did not page: ${state.quietReports}`);
    await container.start();
    await waitFor('app back', httpOk(`${f.apps[1]?.url}/health`), 60_000);
    await detect('pager');
    await waitFor('incident 2 resolved', async () => (await pagesOf('pager', 'app-down')).slice(2).some((t) => t.startsWith('RESOLVED')));
  });

  it('the fast path is authenticated by default: the demo generates a token, Alertmanager sends it, 401 without it, 422 names no environment', async () => {
    // the shipped config and Alertmanager config use a generated token file
    const shipped = loadConfig(path.join(ROOT, 'ops.config.yaml'));
    const tokenFile = (shipped.alertmanagerReceiver as { tokenFile?: string }).tokenFile;
    assert.ok(tokenFile, 'ops.config.yaml configures alertmanagerReceiver.tokenFile');
    const am = parse(await readFile(path.join(ROOT, 'monitoring/alertmanager/alertmanager.yml'), 'utf8')) as { receivers: { name: string; webhook_configs?: { http_config?: { authorization?: { credentials_file?: string } } }[] }[] };
    assert.ok(am.receivers.find((r) => r.name === 'llmchat-ops')?.webhook_configs?.[0]?.http_config?.authorization?.credentials_file, 'Alertmanager sends the token from a file');
    // the generator: a new random token, 0600, kept when run again
    const dir = tempDir('receiver-token');
    const file = path.join(dir, 'state', 'alertmanager-receiver.token');
    await execa(path.join(ROOT, 'scripts/receiver-token.sh'), [file]);
    const token = (await readFile(file, 'utf8')).trim();
    assert.match(token, /^[0-9a-f]{64}$/);
    assert.equal((await stat(file)).mode & 0o077, 0, 'not readable by others');
    await execa(path.join(ROOT, 'scripts/receiver-token.sh'), [file]);
    assert.equal((await readFile(file, 'utf8')).trim(), token, 'kept when run again');

    // a receiver without a token does not start
    const open = parseConfig(await readFile(f.configFile, 'utf8'), f.configFile, ROOT);
    open.alertmanagerReceiver = { ...open.alertmanagerReceiver, enabled: true, tokenEnv: undefined } as typeof open.alertmanagerReceiver;
    await assert.rejects(startAlertmanagerReceiver({ cfg: open, client: f.env.client, host: '127.0.0.1', port: 0 }), /token/);

    // one started from a token file: 401 without or with a wrong token; with it, a 422 names no environment
    const withFile = { ...open, alertmanagerReceiver: { ...open.alertmanagerReceiver, tokenFile: file } } as typeof open;
    const r = await startAlertmanagerReceiver({ cfg: withFile, client: f.env.client, host: '127.0.0.1', port: 0 });
    try {
      const post = (labels: Record<string, string>, auth?: string) =>
        fetch(r.url, { method: 'POST', headers: { 'content-type': 'application/json', ...(auth ? { authorization: auth } : {}) }, body: JSON.stringify({ version: '4', status: 'firing', alerts: [{ status: 'firing', labels }] }) });
      assert.equal((await post({ alertname: 'LLMChatDown', environment: 'staging' })).status, 401);
      assert.equal((await post({ alertname: 'LLMChatDown', environment: 'staging' }, `Bearer ${TOKEN}`)).status, 401);
      const unknown = await post({ alertname: 'LLMChatDown', environment: 'nope' }, `Bearer ${token}`);
      assert.equal(unknown.status, 422);
      const text = await unknown.text();
      for (const name of ['production', 'staging', 'race', 'pager']) assert.doesNotMatch(text, new RegExp(name), text);
    } finally {
      await r.close();
    }
  });

  it('a fault reported again while its resolved notice is sent is a new incident; a long alert continues as new past 1 000 events', async () => {
    const id = alertWorkflowId('staging', 'refault');
    const report = (message: string): FaultReport => ({ severity: 'warning', title: 'Refault test', message, detectedBy: 'test' });
    const feed = (message: string) => f.env.client.workflow.signalWithStart(alertLifecycle, { taskQueue: f.taskQueue, workflowId: id, args: [{ environment: 'staging', check: 'refault' }], signal: faultReportedSignal, signalArgs: [report(message)] });
    const handle = f.env.client.workflow.getHandle(id);
    await feed('first');
    await waitFor('incident 1 paged', async () => ((await handle.query(alertStateQuery)).pages ?? []).length === 1);
    await handle.signal(acknowledgeAlertSignal, { by: 'alice', comment: 'incident 1' });
    await waitFor('acknowledged', async () => (await handle.query(alertStateQuery)).acknowledged !== undefined);
    holdResolved = true;
    try {
      await handle.signal(faultClearedSignal, { detectedBy: 'test' });
      await waitFor('the resolved notice on its way', async () => held.length > 0, 30_000);
      await feed('back again'); // lands while the notice is sent
    } finally {
      holdResolved = false;
      held.splice(0).forEach((go) => go());
    }
    await waitFor('incident 2 paged', async () => ((await handle.query(alertStateQuery)).pages ?? []).length === 1 && (await handle.query(alertStateQuery)).incident === 2, 30_000).catch(async (err: Error) => {
      throw new Error(`${err.message}: ${JSON.stringify(await handle.query(alertStateQuery))}`);
    });
    const st = await handle.query(alertStateQuery);
    assert.equal(st.acknowledged, undefined, "incident 1's acknowledgement does not cover incident 2");
    assert.equal(st.status, 'firing');
    assert.equal(st.escalated, false);
    assert.deepEqual(st.pages?.map((p) => p.kind), ['open']);
    assert.equal(st.reports, 1);
    assert.deepEqual(
      (await pagesOf('staging', 'refault')).map((t) => t.replace('Refault test', '')),
      ['', 'RESOLVED: ', ''],
      'page, resolved notice, and the new incident paged',
    );

    // A fault reported for a long time: the alert continues as new past 1 000 events, its state carried, no page.
    const { runId: firstRun } = await handle.describe();
    const t0 = Date.now();
    for (let i = 0; i < 1100; i += 50) await Promise.all(Array.from({ length: 50 }, (_, j) => handle.signal(faultReportedSignal, report(`still ${i + j}`))));
    await waitFor('continued as new', async () => (await handle.describe()).runId !== firstRun, 60_000);
    await waitFor('every report counted', async () => (await handle.query(alertStateQuery)).reports === 1101, 60_000);
    const after = await handle.query(alertStateQuery);
    console.log(`1 100 reports in ${((Date.now() - t0) / 1000).toFixed(1)} s; first run ${(await f.env.client.workflow.getHandle(id, firstRun).fetchHistory()).events?.length} events`);
    assert.equal(after.incident, 2);
    assert.deepEqual(after.pages?.map((p) => p.kind), ['open'], 'no page from the carried state');
    assert.ok((after.quietReports ?? 0) >= 1100);
    const first = (await f.env.client.workflow.getHandle(id, firstRun).fetchHistory()).events ?? [];
    assert.ok(first.length < 1300, `the first run stopped near 1 000 events: ${first.length}`);
    assert.ok(first.at(-1)?.workflowExecutionContinuedAsNewEventAttributes, 'the first run continued as new');
    await handle.signal(faultClearedSignal, { detectedBy: 'test' });
    const final = await handle.result();
    assert.equal(final.status, 'resolved');
  });
});
