/**
 * monitoring/ for real: promtool and amtool check the files; the Grafana provisioning and dashboard are checked
 * structurally (Grafana cannot run here); then Debian's Prometheus, Alertmanager and node-exporter run with the
 * same files (targets and intervals rewritten for the test) against the stand-in app in a real container — the app
 * is killed, LLMChatDown fires, Alertmanager posts to llmchat-ops' receiver, faultDetection restarts the container
 * without waiting for a schedule — Alertmanager authenticating with the token file scripts/receiver-token.sh generated
 * (credentials_file, as monitoring/alertmanager/alertmanager.yml ships it). Hostile webhook requests are refused and
 * start nothing.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import Docker from 'dockerode';
import { execa } from 'execa';
import { parse, stringify } from 'yaml';
import { WorkflowNotFoundError } from '@temporalio/client';
import { alertmanagerRunId, startAlertmanagerReceiver, type AlertmanagerReceiver } from '../src/activities/faults/alertmanager-receiver.js';
import { RequestedByKey } from '../src/common/search-attributes.js';
import type { FaultDetectionReport } from '../src/workflows/faults/shared.js';
import { faultFixture, type FaultFixture } from './support/fault-fixture.js';
import { freePort, httpOk, ROOT, tempDir, waitFor } from './support/services.js';

const MON = path.join(ROOT, 'monitoring');

describe('monitoring/ configuration checked by the real tools', () => {
  it('promtool check config / check rules / test rules and amtool check-config pass', async () => {
    const cfg = await execa('promtool', ['check', 'config', path.join(MON, 'prometheus/prometheus.yml')], { reject: false });
    assert.equal(cfg.exitCode, 0, cfg.stdout + cfg.stderr);
    const rules = await execa('promtool', ['check', 'rules', path.join(MON, 'prometheus/alerts.yml')], { reject: false });
    assert.equal(rules.exitCode, 0, rules.stdout + rules.stderr);
    const unit = await execa('promtool', ['test', 'rules', 'alerts.test.yml'], { cwd: path.join(MON, 'prometheus'), reject: false });
    assert.equal(unit.exitCode, 0, unit.stdout + unit.stderr);
    const am = await execa('amtool', ['check-config', path.join(MON, 'alertmanager/alertmanager.yml')], { reject: false });
    assert.equal(am.exitCode, 0, am.stdout + am.stderr);
  });

  it('promtool test rules can fail: a rule test expecting staging (4 % errors) to fire fails', async () => {
    const dir = tempDir('promtool-neg');
    const test = (await readFile(path.join(MON, 'prometheus/alerts.test.yml'), 'utf8'))
      .replace('rule_files:\n  - alerts.yml', `rule_files:\n  - ${path.join(MON, 'prometheus/alerts.yml')}`)
      .replace('exp_labels: { severity: critical, environment: production }\n            exp_annotations:\n              summary: "LLMChat production error rate', 'exp_labels: { severity: critical, environment: staging }\n            exp_annotations:\n              summary: "LLMChat production error rate');
    await writeFile(path.join(dir, 'neg.test.yml'), test);
    const r = await execa('promtool', ['test', 'rules', 'neg.test.yml'], { cwd: dir, reject: false });
    assert.notEqual(r.exitCode, 0, 'the changed expectation must fail');
  });

  it('Grafana (not runnable here): provisioning and dashboard JSON are well-formed and query only known metrics', async () => {
    const ds = parse(await readFile(path.join(MON, 'grafana/provisioning/datasources/prometheus.yml'), 'utf8')) as { datasources: { uid: string; type: string; url: string }[] };
    const provider = parse(await readFile(path.join(MON, 'grafana/provisioning/dashboards/llmchat.yml'), 'utf8')) as { providers: { type: string; options: { path: string } }[] };
    assert.equal(ds.datasources[0]?.type, 'prometheus');
    assert.equal(provider.providers[0]?.type, 'file');
    const compose = parse(await readFile(path.join(MON, 'docker-compose.yml'), 'utf8')) as { services: Record<string, { volumes?: string[] }> };
    assert.deepEqual(Object.keys(compose.services).sort(), ['alertmanager', 'grafana', 'node-exporter', 'prometheus']);
    assert.ok(compose.services.grafana?.volumes?.some((v) => v.endsWith(`:${provider.providers[0]?.options.path}:ro`)), 'the dashboards directory is mounted where the provider reads');
    const dash = JSON.parse(await readFile(path.join(MON, 'grafana/dashboards/llmchat.json'), 'utf8')) as {
      uid: string;
      panels: { id: number; title: string; type: string; gridPos: { x: number; y: number; w: number; h: number }; datasource: { uid: string }; targets: { expr: string; refId: string; datasource: { uid: string } }[] }[];
    };
    assert.ok(dash.uid && dash.panels.length >= 10);
    assert.equal(new Set(dash.panels.map((p) => p.id)).size, dash.panels.length, 'panel ids are unique');
    const appSource = await readFile(path.join(ROOT, 'app/src/metrics.js'), 'utf8');
    const appMetrics = [...appSource.matchAll(/name: '(llmchat_[a-z_]+)'/g)].map((m) => m[1] as string);
    const opsSource = (await Promise.all(['src/workflows/faults/alert-lifecycle.ts', 'src/workflows/faults/fault-detection.ts', 'src/activities/faults/alertmanager-receiver.ts'].map((f) => readFile(path.join(ROOT, f), 'utf8')))).join('\n');
    const opsMetrics = [...opsSource.matchAll(/createCounter\('(llmchat_ops_[a-z_]+)'/g)].map((m) => m[1] as string);
    const known = new Set([...appMetrics.flatMap((n) => [n, `${n}_bucket`, `${n}_sum`, `${n}_count`]), ...opsMetrics, 'up']);
    for (const p of dash.panels) {
      assert.equal(p.datasource.uid, ds.datasources[0]?.uid, `${p.title}: provisioned datasource`);
      assert.ok(p.gridPos.w > 0 && p.gridPos.w <= 24 && p.gridPos.h > 0, `${p.title}: grid position`);
      assert.ok(p.targets.length > 0, `${p.title}: has a query`);
      for (const t of p.targets) {
        const names = [...t.expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\{/g)].map((m) => m[1] as string);
        assert.ok(names.length > 0, `${p.title}: ${t.expr}`);
        for (const n of names) assert.ok(known.has(n) || n.startsWith('node_'), `${p.title}: unknown metric ${n}`);
      }
    }
    for (const m of opsMetrics) assert.ok(dash.panels.some((p) => p.targets.some((t) => t.expr.includes(m))), `the dashboard shows ${m}`);
  });
});

describe('Prometheus → Alertmanager → llmchat-ops (real Debian binaries, real container)', () => {
  let f: FaultFixture;
  let receiver: AlertmanagerReceiver;
  const children: ChildProcess[] = [];
  let promUrl = '';
  let token = '';
  const docker = new Docker();

  const spawnLogged = (bin: string, args: string[], dir: string) => {
    const child = spawn(bin, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let log = '';
    child.stderr?.on('data', (c: Buffer) => (log = (log + c.toString()).slice(-4000)));
    child.on('error', (err) => (log += `\n${err.message}`));
    children.push(child);
    return () => `${bin} (${dir}): ${log}`;
  };

  before(async () => {
    const dir = tempDir('monitoring');
    const tokenFile = path.join(dir, 'state', 'alertmanager-receiver.token');
    await execa(path.join(ROOT, 'scripts/receiver-token.sh'), [tokenFile]);
    token = (await readFile(tokenFile, 'utf8')).trim();
    f = await faultFixture({ environments: { prod: { faultDetection: { recovery: { restarts: 3, per: '1h', healthyTimeout: '60s' } } } }, alertmanagerReceiver: { enabled: false, tokenFile } });
    await f.startWorker();
    receiver = await startAlertmanagerReceiver({ cfg: f.cfg, client: f.env.client, host: '127.0.0.1', port: 0 });
    const [promPort, amPort, nodePort] = [await freePort(), await freePort(), await freePort()];

    const prom = parse(await readFile(path.join(MON, 'prometheus/prometheus.yml'), 'utf8'));
    prom.global = { scrape_interval: '1s', evaluation_interval: '1s', scrape_timeout: '900ms' };
    prom.rule_files = [path.join(MON, 'prometheus/alerts.yml')];
    prom.alerting.alertmanagers[0].static_configs[0].targets = [`127.0.0.1:${amPort}`];
    const app = new URL(f.app.url);
    for (const job of prom.scrape_configs) {
      if (job.job_name === 'llmchat-app') job.static_configs = [{ targets: [app.host], labels: { environment: 'prod' } }];
      if (job.job_name === 'node') job.static_configs = [{ targets: [`127.0.0.1:${nodePort}`], labels: { environment: 'prod' } }];
      if (job.job_name === 'prometheus') job.static_configs = [{ targets: [`127.0.0.1:${promPort}`] }];
      if (job.job_name === 'llmchat-ops') job.static_configs = [{ targets: [`127.0.0.1:${await freePort()}`] }];
    }
    await writeFile(path.join(dir, 'prometheus.yml'), stringify(prom));
    const am = parse(await readFile(path.join(MON, 'alertmanager/alertmanager.yml'), 'utf8'));
    const hook = am.receivers.find((r: { name: string }) => r.name === 'llmchat-ops').webhook_configs[0];
    hook.url = receiver.url;
    assert.equal(hook.http_config.authorization.type, 'Bearer', 'the shipped config sends a bearer token');
    hook.http_config.authorization.credentials_file = tokenFile; // the shipped path is the compose secret's
    await writeFile(path.join(dir, 'alertmanager.yml'), stringify(am));

    const logs = [
      spawnLogged('prometheus-node-exporter', [`--web.listen-address=127.0.0.1:${nodePort}`, '--collector.disable-defaults', '--collector.meminfo', '--collector.filesystem'], dir),
      spawnLogged('prometheus-alertmanager', [`--config.file=${path.join(dir, 'alertmanager.yml')}`, `--storage.path=${path.join(dir, 'am-data')}`, `--web.listen-address=127.0.0.1:${amPort}`, '--cluster.listen-address='], dir),
      spawnLogged('prometheus', [`--config.file=${path.join(dir, 'prometheus.yml')}`, `--storage.tsdb.path=${path.join(dir, 'prom-data')}`, `--web.listen-address=127.0.0.1:${promPort}`], dir),
    ];
    promUrl = `http://127.0.0.1:${promPort}`;
    await waitFor('Prometheus, Alertmanager, node-exporter ready', async () =>
      (await httpOk(`${promUrl}/-/ready`)()) && (await httpOk(`http://127.0.0.1:${amPort}/-/ready`)()) && (await httpOk(`http://127.0.0.1:${nodePort}/metrics`)()),
    ).catch((err: Error) => {
      throw new Error(`${err.message}\n${logs.map((l) => l()).join('\n')}`);
    });
  });

  after(async () => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
    await Promise.all(children.map((c) => (c.exitCode === null ? new Promise((r) => c.once('exit', r)) : undefined)));
    await receiver?.close();
    await f?.teardown();
  });

  const promQuery = async (expr: string) => {
    const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(expr)}`);
    return { status: res.status, body: (await res.json()) as { status: string; data: { result: { metric: Record<string, string>; value: [number, string] }[] } } };
  };

  it('Prometheus scrapes the app and node-exporter; every dashboard query is valid PromQL', async () => {
    await waitFor('app and node targets up', async () => {
      const r = await promQuery('up{job=~"llmchat-app|node"} == 1');
      return r.body.data.result.length === 2;
    });
    const dash = JSON.parse(await readFile(path.join(MON, 'grafana/dashboards/llmchat.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
    for (const p of dash.panels) {
      for (const t of p.targets) {
        const r = await promQuery(t.expr.replaceAll('$environment', '.*'));
        assert.equal(r.status, 200, `${p.title}: ${t.expr}`);
        assert.equal(r.body.status, 'success');
      }
    }
  });

  it('the app container killed → LLMChatDown fires → Alertmanager calls llmchat-ops → restarted and healthy, no schedule involved', async () => {
    const [info] = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${f.app.project}`] } });
    assert.ok(info);
    const container = docker.getContainer(info.Id);
    const onset = Date.now();
    await container.kill();
    await waitFor('the app healthy again', async () => (await container.inspect()).State.Running && (await httpOk(`${f.app.url}/health`)()), 120_000, 500);
    const seconds = (Date.now() - onset) / 1000;
    console.log(`fault onset (container killed) → healthy again through Prometheus → Alertmanager → llmchat-ops: ${seconds.toFixed(1)} s`);
    const handle = f.env.client.workflow.getHandle(alertmanagerRunId('prod'));
    const report = (await handle.result()) as FaultDetectionReport;
    assert.ok(report.faults.includes('app-down'));
    assert.deepEqual(report.recoveries.map((r) => [r.action, r.outcome]), [['restart', 'recovered']]);
    const desc = await handle.describe();
    assert.match(String(desc.typedSearchAttributes.get(RequestedByKey) ?? ''), /^alertmanager:LLMChatDown/);
  });

  it('hostile webhook requests are refused with a clear answer and start nothing', async () => {
    const auth = { authorization: `Bearer ${token}` };
    const post = (body: string, headers: Record<string, string> = { 'content-type': 'application/json', ...auth }) => fetch(receiver.url, { method: 'POST', headers, body });
    const payload = (labels: Record<string, string>) => JSON.stringify({ version: '4', status: 'firing', alerts: [{ status: 'firing', labels }] });
    const cases: [string, Response, number, RegExp][] = [
      ['malformed JSON', await post('{"version":'), 400, /not valid JSON/],
      ['not an Alertmanager payload', await post(JSON.stringify({ hello: 'world' })), 400, /version 4/],
      ['no token', await post(payload({ alertname: 'LLMChatDown', environment: 'prod' }), { 'content-type': 'application/json' }), 401, /bearer token/],
      ['wrong token', await post(payload({ alertname: 'LLMChatDown', environment: 'prod' }), { 'content-type': 'application/json', authorization: `Bearer ${token.replace(/^./, (c) => (c === 'a' ? 'b' : 'a'))}` }), 401, /bearer token/],
      ['unknown environment', await post(payload({ alertname: 'LLMChatDown', environment: 'nope' })), 422, /^alert "LLMChatDown": its "environment" label is not an environment of this installation$/],
      ['no environment label', await post(payload({ alertname: 'LLMChatDown' })), 422, /no "environment" label/],
      ['oversized', await post(JSON.stringify({ version: '4', status: 'firing', alerts: [{ status: 'firing', labels: { environment: 'staging', pad: 'x'.repeat(300 * 1024) } }] })), 413, /larger than/],
      ['wrong content type', await post(payload({ environment: 'prod' }), { 'content-type': 'text/plain', ...auth }), 415, /application\/json/],
    ];
    for (const [what, res, status, message] of cases) {
      assert.equal(res.status, status, what);
      assert.match(((await res.json()) as { error: string }).error, message, what);
    }
    // nothing was started by any of them: the only alertmanager run is the one from the previous test, completed
    const runs: string[] = [];
    for await (const wf of f.env.client.workflow.list({ query: `WorkflowId="${alertmanagerRunId('prod')}"` })) runs.push(wf.runId);
    assert.equal(runs.length, 1, 'only the earlier, legitimate run exists');
    await f.env.client.workflow.getHandle(alertmanagerRunId('staging')).describe().then(
      () => assert.fail('no run for staging'),
      (err: unknown) => assert.ok(err instanceof WorkflowNotFoundError),
    );
  });
});
