/**
 * Payload encryption end to end on the real dev server: the CLI starts a backup whose reason carries a unique marker,
 * `schedules apply` creates a schedule that is triggered, the worker runs both — all with temporal.encryption on.
 * The histories as the server stores them (fetched without the codec) hold no plaintext marker; the codec endpoint
 * (`llmchat-ops codec-server`, token + CORS) and `temporal workflow show --codec-endpoint` decode them; a rotated
 * key set still reads the old runs.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Client } from '@temporalio/client';
import proto, { type temporal as T } from '@temporalio/proto';
const { temporal } = proto;
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { parse as parseYaml, stringify } from 'yaml';
import { AesGcmCodec, dataConverterFromConfig, ENCODING_ENCRYPTED, METADATA_KEY_ID, parseKeys } from '../src/common/codec.js';
import { parseConfig, type OpsConfig } from '../src/common/config/index.js';
import { createWorker } from '../src/worker.js';
import { seedFixture, type Fixture } from './support/backup-fixture.js';
import { PG, ROOT, tempDir, waitFor } from './support/services.js';
import { startDevServer, temporalBinary, testConfigYaml, workflowBundle } from './support/temporal.js';

const key = () => randomBytes(32).toString('base64');
const K1 = `k1:${key()}`;
const K2 = `k2:${key()}`;
const TOKEN = randomBytes(16).toString('hex');
const MARKER = `secret-marker-${randomUUID()}`;

/** Runs of a query, listed raw (the SDK's list() decodes memos, which a client without the codec cannot). */
async function listRaw(env: TestWorkflowEnvironment, query: string): Promise<{ workflowId: string; runId: string; type: string; status: number }[]> {
  const r = await env.client.workflowService.listWorkflowExecutions({ namespace: 'default', query });
  return r.executions.map((e) => ({ workflowId: e.execution!.workflowId!, runId: e.execution!.runId!, type: e.type!.name!, status: e.status ?? 0 }));
}

/** Every base64 `data` of a `temporal … --output json` text, decoded and joined. */
function decodedData(json: string): string {
  return [...json.matchAll(/"data": "([A-Za-z0-9+/=]*)"/g)].map((m) => Buffer.from(m[1]!, 'base64').toString('latin1')).join('\n');
}

function historyBytes(h: T.api.history.v1.IHistory): Buffer {
  return Buffer.from(temporal.api.history.v1.History.encode(h).finish());
}

describe('encrypted payloads (real dev server, CLI, schedules, codec endpoint)', () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let cfg: OpsConfig;
  let configFile: string;
  let worker: Worker;
  let running: Promise<void>;
  let codecServer: ChildProcess | undefined;
  let codecUrl = '';
  let backupId = '';
  const taskQueue = `test-encryption-${randomUUID()}`;
  const childEnv = (keys: string) => ({ ...process.env, LLMCHAT_DB_PASSWORD: PG.password, LLMCHAT_TEST_CODEC_KEYS: keys, LLMCHAT_OPS_CODEC_TOKEN: TOKEN, LLMCHAT_OPS_OPERATOR: 'alice' });
  const cli = (args: string[], keys = K1) => execa('node', ['bin/llmchat-ops.js', '--config', configFile, ...args], { cwd: ROOT, env: childEnv(keys), reject: false });

  before(async () => {
    [env, fx] = await Promise.all([startDevServer(), seedFixture(200)]);
    const dir = tempDir('encryption');
    const doc = parseYaml(
      testConfigYaml({
        address: env.address,
        taskQueue,
        environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } },
        schedules: { dailyHealthCheck: { cron: '0 8 * * *', environments: ['production'], paused: true } },
      }),
    ) as { temporal: Record<string, unknown> };
    doc.temporal.encryption = { keysEnv: 'LLMCHAT_TEST_CODEC_KEYS' };
    doc.temporal.codecServer = { port: 0 };
    configFile = path.join(dir, 'ops.config.yaml');
    await writeFile(configFile, stringify(doc));
    process.env.LLMCHAT_TEST_CODEC_KEYS = K1;
    cfg = parseConfig(stringify(doc), configFile, dir);
    worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });

  after(async () => {
    codecServer?.kill('SIGTERM');
    worker?.shutdown();
    await running;
    await fx?.database.drop();
    await env?.teardown();
  });

  it('the CLI starts a backup with the marker in its reason; the worker runs it encrypted; the result reads back', async () => {
    const r = await cli(['backup', '--env', 'production', '--reason', MARKER, '--json']);
    assert.equal(r.exitCode, 0, r.stderr);
    const result = JSON.parse(r.stdout) as { backupId: string };
    backupId = result.backupId;
    assert.match(r.stdout, new RegExp(MARKER), 'the CLI decoded the result (the manifest keeps the reason)');
  });

  it('schedules apply and a triggered run carry encrypted arguments', async () => {
    const r = await cli(['schedules', 'apply']);
    assert.equal(r.exitCode, 0, r.stderr + r.stdout);
    const id = 'dailyHealthCheck-production';
    const d = await env.client.workflowService.describeSchedule({ namespace: 'default', scheduleId: id });
    const input = d.schedule?.action?.startWorkflow?.input?.payloads?.[0];
    assert.equal(Buffer.from(input?.metadata?.encoding ?? []).toString(), ENCODING_ENCRYPTED, 'the stored schedule action is encrypted');
    await env.client.schedule.getHandle(id).trigger();
    const encrypted = new Client({ connection: env.connection, dataConverter: dataConverterFromConfig(cfg.temporal.encryption) });
    const q = `TaskQueue = '${taskQueue}' AND WorkflowType = 'dailyHealthCheck'`;
    await waitFor('the triggered health check to finish', async () => (await listRaw(env, `${q} AND ExecutionStatus = 'Completed'`)).length === 1, 60_000);
    const [h] = await listRaw(env, q);
    const report = (await encrypted.workflow.getHandle(h!.workflowId, h!.runId).result()) as { environment: string };
    assert.equal(report.environment, 'production');
  });

  it('the stored histories hold no plaintext marker; every payload is encrypted with key k1', async () => {
    let checked = 0;
    for (const w of await listRaw(env, `TaskQueue = '${taskQueue}'`)) {
      const history = await env.client.workflow.getHandle(w.workflowId, w.runId).fetchHistory();
      const bytes = historyBytes(history);
      assert.equal(bytes.includes(MARKER), false, `${w.workflowId} stores the marker in plaintext`);
      const started = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
      assert.equal(Buffer.from(started?.metadata?.[METADATA_KEY_ID] ?? []).toString(), 'k1');
      checked++;
    }
    assert.ok(checked >= 2, `checked ${checked} histories`);
  });

  it('codec endpoint: decodes with the token (header or path), refuses without it, answers CORS only for the Web UI', async () => {
    codecServer = spawn('node', ['bin/llmchat-ops.js', '--config', configFile, 'codec-server'], { cwd: ROOT, env: childEnv(K1), stdio: ['ignore', 'pipe', 'pipe'] });
    codecUrl = await new Promise<string>((resolve, reject) => {
      let out = '';
      codecServer!.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /codec endpoint (http:\/\/\S+)/.exec(out);
        if (m) resolve(m[1]!);
      });
      codecServer!.once('exit', (code) => reject(new Error(`codec-server exited ${code}: ${out}`)));
    });
    const history = await env.client.workflow.getHandle(`llmchat-data-production`).fetchHistory();
    const input = history.events![0]!.workflowExecutionStartedEventAttributes!.input!.payloads![0]!;
    const body = JSON.stringify({ payloads: [{ metadata: Object.fromEntries(Object.entries(input.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v).toString('base64')])), data: Buffer.from(input.data!).toString('base64') }] });
    const post = (url: string, headers: Record<string, string> = {}) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body });
    const decoded = async (res: Response) => {
      assert.equal(res.status, 200);
      const out = (await res.json()) as { payloads: { data: string; metadata: Record<string, string> }[] };
      return { data: Buffer.from(out.payloads[0]!.data, 'base64').toString(), encoding: Buffer.from(out.payloads[0]!.metadata.encoding!, 'base64').toString() };
    };
    const viaHeader = await decoded(await post(`${codecUrl}/decode`, { authorization: `Bearer ${TOKEN}` }));
    assert.equal(viaHeader.encoding, 'json/plain');
    assert.match(viaHeader.data, new RegExp(MARKER));
    assert.match((await decoded(await post(`${codecUrl}/t/${TOKEN}/default/decode`, { 'x-namespace': 'default', origin: 'http://127.0.0.1:8233' }))).data, new RegExp(MARKER));
    assert.equal((await post(`${codecUrl}/decode`)).status, 401, 'no token');
    assert.equal((await post(`${codecUrl}/decode`, { authorization: `Bearer ${TOKEN}x` })).status, 401, 'wrong token');
    assert.equal((await post(`${codecUrl}/t/nope/decode`)).status, 401, 'wrong path token');
    const preflight = (origin: string) => fetch(`${codecUrl}/decode`, { method: 'OPTIONS', headers: { origin, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-namespace' } });
    const ok = await preflight('http://127.0.0.1:8233');
    assert.equal(ok.status, 204);
    assert.equal(ok.headers.get('access-control-allow-origin'), 'http://127.0.0.1:8233');
    assert.match(ok.headers.get('access-control-allow-headers') ?? '', /x-namespace/);
    const evil = await preflight('http://evil.example');
    assert.equal(evil.status, 403);
    assert.equal(evil.headers.get('access-control-allow-origin'), null);
  });

  it('`temporal workflow show --codec-endpoint --codec-auth` shows the decoded input; without the codec it does not', async () => {
    const show = (extra: string[]) => execa(temporalBinary(), ['workflow', 'show', '--address', env.address, '--workflow-id', 'llmchat-data-production', '--output', 'json', ...extra], { reject: false });
    const withCodec = await show(['--codec-endpoint', codecUrl, '--codec-auth', `Bearer ${TOKEN}`]);
    assert.equal(withCodec.exitCode, 0, withCodec.stderr);
    assert.match(decodedData(withCodec.stdout), new RegExp(MARKER));
    const without = await show([]);
    assert.equal(without.exitCode, 0, without.stderr);
    assert.doesNotMatch(decodedData(without.stdout), new RegExp(MARKER));
    assert.match(without.stdout, /"encoding": "YmluYXJ5L2VuY3J5cHRlZA=="/, 'binary/encrypted');
  });

  it('rotation: worker and CLI with k2 first: new payloads use k2 and the k1 runs still decode; k1 removed, they name the missing key', async () => {
    // Rotation order: every decoder (the worker) learns k2 first, then encoders switch to it.
    worker.shutdown();
    await running;
    process.env.LLMCHAT_TEST_CODEC_KEYS = `${K2},${K1}`;
    worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
    const rotated = new AesGcmCodec(new Map([...parseKeys(K2, 'k2'), ...parseKeys(K1, 'k1')]), 'k2');
    const client = new Client({ connection: env.connection, dataConverter: { payloadCodecs: [rotated] } });
    const old = (await client.workflow.getHandle('llmchat-data-production').result()) as { backupId: string };
    assert.equal(old.backupId, backupId);
    const r = await cli(['backups', 'list', '--env', 'production', '--json'], `${K2},${K1}`);
    assert.equal(r.exitCode, 0, r.stderr);
    const listRun = (await listRaw(env, `TaskQueue = '${taskQueue}' AND WorkflowType = 'listBackups'`))[0]?.workflowId;
    assert.ok(listRun, 'the CLI ran listBackups');
    const started = (await env.client.workflow.getHandle(listRun).fetchHistory()).events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads?.[0];
    assert.equal(Buffer.from(started?.metadata?.[METADATA_KEY_ID] ?? []).toString(), 'k2', 'the CLI encrypted with the new key');
    const onlyK2 = new Client({ connection: env.connection, dataConverter: { payloadCodecs: [new AesGcmCodec(parseKeys(K2, 'k2'), 'k2')] } });
    await assert.rejects(onlyK2.workflow.getHandle('llmchat-data-production').result(), /key "k1", which is not configured/);
  });

  it('an encrypted history replays with the codec', async () => {
    const history = await env.client.workflow.getHandle('llmchat-data-production').fetchHistory();
    await Worker.runReplayHistory({ workflowBundle: await workflowBundle(), dataConverter: dataConverterFromConfig(cfg.temporal.encryption) }, history, 'llmchat-data-production');
  });
});

