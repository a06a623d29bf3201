/**
 * Test support for Temporal: the real dev server binary, Temporal's time-skipping test server, a test config, and
 * local alert receivers.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import type { temporal } from '@temporalio/proto';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { WorkflowBundle } from '@temporalio/worker';
import { stringify } from 'yaml';
import { parseConfig, type OpsConfig } from '../../src/common/config/index.js';
import { encodeSearchAttributeIndexedValueType } from '@temporalio/common/lib/search-attributes.js';
import { ALL_SEARCH_ATTRIBUTES } from '../../src/common/search-attributes.js';
import { loadWorkflowBundle } from '../../src/workflow-bundle.js';
import { ROOT } from './services.js';

/** The official `temporal` CLI that scripts/services.sh installed (or one on PATH). */
export function temporalBinary(): string {
  const candidates = [process.env.TEMPORAL_CLI_PATH, path.join(ROOT, '.tools/venv/bin/temporal'), path.join(ROOT, '.tools/bin/temporal')];
  for (const c of candidates) if (c && existsSync(c)) return c;
  try {
    return execFileSync('sh', ['-c', 'command -v temporal'], { encoding: 'utf8' }).trim();
  } catch {
    throw new Error('no temporal CLI found: run scripts/services.sh up temporal (or set TEMPORAL_CLI_PATH)');
  }
}

/** A real dev server (SQLite in memory) with our search attributes, on loopback. */
export async function startDevServer(): Promise<TestWorkflowEnvironment> {
  return TestWorkflowEnvironment.createLocal({
    server: {
      executable: { type: 'existing-path', path: temporalBinary() },
      ip: '127.0.0.1',
      searchAttributes: [...ALL_SEARCH_ATTRIBUTES],
    },
  });
}

/** The wrapper that starts Temporal's time-skipping test server (Java, installed by `scripts/services.sh up timeskip`). */
export const TEST_SERVER = path.join(ROOT, 'scripts/timeskip/temporal-test-server');

/**
 * A private time-skipping test server (Temporal's Java test server from Maven Central) with our search attributes:
 * workflow time jumps to the next timer whenever a workflow result is awaited (or `env.sleep`) and nothing else is
 * running, so a 24 h wait takes a moment. The SDK gives a server 5 s to answer after its start; a JVM on a loaded
 * machine can take longer, so a start that timed out is tried twice more.
 */
export async function startTimeSkippingServer(): Promise<TestWorkflowEnvironment> {
  if (!existsSync(path.join(ROOT, '.tools/temporal-test-server/installed'))) {
    throw new Error(`Temporal's test server is not installed: run scripts/services.sh up timeskip`);
  }
  let env: TestWorkflowEnvironment | undefined;
  for (let attempt = 1; !env; attempt++) {
    try {
      env = await TestWorkflowEnvironment.createTimeSkipping({ server: { executable: { type: 'existing-path', path: TEST_SERVER } } });
    } catch (err) {
      if (attempt >= 3 || !/did not start within/.test(String(err))) throw err;
    }
  }
  await env.connection.operatorService.addSearchAttributes({
    namespace: 'default',
    searchAttributes: Object.fromEntries(ALL_SEARCH_ATTRIBUTES.map((k) => [k.name, encodeSearchAttributeIndexedValueType(k.type) as number])),
  });
  return env;
}

let bundle: Promise<WorkflowBundle> | undefined;
/** The workflow bundle, built once per test process. */
export function workflowBundle(): Promise<WorkflowBundle> {
  // The bundle `npm run build` wrote when it matches the compiled code (scripts/test.sh builds it), else one made now.
  bundle ??= loadWorkflowBundle().then((l) => l.bundle);
  return bundle;
}

export interface TestEnvironmentSpec {
  url: string;
  logs: string;
  database?: string;
  redisUrl?: string;
  composeFile?: string;
  composeProject?: string;
  thresholds?: Partial<OpsConfig['environments'][string]['thresholds']>;
  /** The application dir (default: the repo's app/ — never restore over that one). */
  app?: string;
}

export interface TestConfigOptions {
  address: string;
  taskQueue: string;
  environments: Record<string, TestEnvironmentSpec>;
  webhookUrl?: string;
  slackEnv?: string;
  email?: { host: string; port: number; to: string[] };
  schedules?: Record<string, { cron: string; environments: string[]; paused?: boolean }>;
  metricsPort?: number;
  /** Further top-level config sections (e.g. `approvals`, `backup`), merged as they are. */
  extra?: Record<string, unknown>;
}

/** The YAML text of a config like ops.config.yaml, for the given environments, on `taskQueue`. */
export function testConfigYaml(opts: TestConfigOptions): string {
  const environments = Object.fromEntries(
    Object.entries(opts.environments).map(([name, e]) => [
      name,
      {
        url: e.url,
        database: { host: '127.0.0.1', name: e.database ?? 'llmchat', user: 'llmchat', passwordEnv: 'LLMCHAT_DB_PASSWORD' },
        redis: { url: e.redisUrl ?? 'redis://127.0.0.1:6379/0' },
        compose: { file: e.composeFile ?? path.join(ROOT, 'app/compose/docker-compose.production.yml'), project: e.composeProject ?? `llmchat-test-${name}`, service: 'app' },
        paths: { logs: e.logs, uploads: path.join(e.logs, 'uploads'), config: path.join(e.logs, 'config'), backups: path.join(e.logs, 'backups'), temp: path.join(e.logs, 'tmp'), app: e.app ?? path.join(ROOT, 'app') },
        thresholds: e.thresholds ?? {},
      },
    ]),
  );
  const doc = {
    temporal: { address: opts.address, namespace: 'default', taskQueue: opts.taskQueue },
    ...(opts.metricsPort ? { worker: { metricsPort: opts.metricsPort } } : {}),
    environments,
    notifications: {
      ...(opts.webhookUrl ? { webhook: { url: opts.webhookUrl } } : {}),
      ...(opts.slackEnv ? { slack: { webhookUrlEnv: opts.slackEnv } } : {}),
      ...(opts.email ? { email: { host: opts.email.host, port: opts.email.port, from: 'ops@llmchat.test', to: opts.email.to } } : {}),
    },
    schedules: opts.schedules ?? {},
    ...opts.extra,
  };
  return stringify(doc);
}

/** The same config, through the real parser. */
export function testConfig(opts: TestConfigOptions): OpsConfig {
  return parseConfig(testConfigYaml(opts), 'test config', ROOT);
}

export interface Received {
  path: string;
  headers: http.IncomingHttpHeaders;
  body: Record<string, unknown>;
  /** The exact bytes received (for signature checks). */
  raw: string;
  /** When it arrived (ms since the epoch). */
  at: number;
}

/** A real HTTP receiver for webhook and Slack alerts; `status` decides what it answers. */
export async function alertReceiver(status = 200): Promise<{ url: string; received: Received[]; close: () => Promise<void> }> {
  const received: Received[] = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      received.push({ path: req.url ?? '', headers: req.headers, body: JSON.parse(body || '{}'), raw: body, at: Date.now() });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as { port: number };
  return {
    url: `http://127.0.0.1:${port}/alerts`,
    received,
    close: () => new Promise((r) => server.close(() => r())),
  };
}

/**
 * `temporal workflow reset` of a closed run, as an operator would: to the last workflow task completed before the
 * first history event that `at` picks (which must exist). Returns the new run's id and the original's.
 */
export async function resetBefore(env: TestWorkflowEnvironment, h: WorkflowHandle, at: (e: temporal.api.history.v1.IHistoryEvent) => boolean): Promise<{ runId: string; originalRunId: string }> {
  const { runId: originalRunId } = await h.describe();
  const events = (await h.fetchHistory()).events ?? [];
  let i = events.findIndex(at);
  assert.ok(i > 0, 'the run has the event to reset before');
  while (i > 0 && !events[i]?.workflowTaskCompletedEventAttributes) i--;
  const reset = await env.client.workflowService.resetWorkflowExecution({
    namespace: 'default',
    workflowExecution: { workflowId: h.workflowId, runId: originalRunId },
    workflowTaskFinishEventId: events[i]?.eventId,
    requestId: randomUUID(),
    reason: 'operator reset',
  });
  assert.ok(reset.runId, 'the reset started a new run');
  return { runId: reset.runId, originalRunId };
}
