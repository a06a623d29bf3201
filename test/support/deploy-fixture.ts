/**
 * A blue/green test environment for deploy and rollback tests: a scratch database at migration level 1, a
 * private nginx front and two slot ports (all free ports), unique compose projects, its own release records;
 * brought up at v1 by `upEnvironment` (what `llmchat-ops up` does). `teardown()` removes what it created.
 */
import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { WorkflowFailedError } from '@temporalio/client';
import { execa } from 'execa';
import pg from 'pg';
import { parse, stringify } from 'yaml';
import { parseConfig, type OpsConfig } from '../../src/common/config/index.js';
import { upEnvironment, downEnvironment } from '../../src/activities/release/bootstrap.js';
import { freePort, PG, ROOT, scratchDatabase, tempDir } from './services.js';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { createWorker } from '../../src/worker.js';
import { alertReceiver, startDevServer, testConfigYaml, workflowBundle } from './temporal.js';

export interface DeployFixture {
  cfg: OpsConfig;
  /** The same config as a file, for the CLI and a worker process. */
  configFile: string;
  url: string;
  dir: string;
  project: string;
  database: { name: string; url: string; drop: () => Promise<void> };
  slots: { blue: number; green: number };
  teardown: () => Promise<void>;
}

export interface DeployFixtureOptions {
  address: string;
  taskQueue: string;
  webhookUrl?: string;
  strategy?: 'blue-green' | 'recreate';
  /** Extra keys of the environment's deploy section. */
  deploy?: Record<string, unknown>;
  commands?: Record<string, string[]>;
  approvals?: { allowSelfApproval: boolean };
  /** The worker's metrics port (a worker process needs its own). */
  metricsPort?: number;
  /** Version brought up first (default v1); none: nothing is brought up. */
  initial?: string | null;
  /** The front's nginx binary (default nginx): a test stand-in that makes its reload fail. */
  nginx?: string;
  /** blue/green: how long the old slot drains after the switch (default 1s). */
  drain?: string;
}

/** Brings the database to migration `level` with the app's own migrate.js. */
export async function migrateTo(databaseUrl: string, level: number): Promise<void> {
  // Up to the newest level, then down to the one asked for: either direction ends at `level`.
  const opts = { cwd: ROOT, env: { DATABASE_URL: databaseUrl, PGPASSWORD: PG.password } };
  await execa('node', ['app/migrate.js', 'up'], opts);
  await execa('node', ['app/migrate.js', 'down', '--to', String(level)], opts);
}

export async function startDeployFixture(opts: DeployFixtureOptions): Promise<DeployFixture> {
  const [frontPort, blue, green] = [await freePort(), await freePort(), await freePort()];
  const database = await scratchDatabase('llmchat_deploy');
  await migrateTo(database.url, 1);
  const dir = tempDir('deploy');
  const logs = path.join(dir, 'logs');
  await mkdir(path.join(logs, 'uploads'), { recursive: true });
  const project = `llmchat-t${process.pid}-${frontPort}`;
  const url = `http://127.0.0.1:${frontPort}`;
  const doc = parse(testConfigYaml({ address: opts.address, taskQueue: opts.taskQueue, environments: { production: { url, logs, database: database.name, composeProject: project } }, ...(opts.webhookUrl ? { webhookUrl: opts.webhookUrl } : {}) }));
  const env = doc.environments.production;
  const strategy = opts.strategy ?? 'blue-green';
  env.deploy = {
    strategy,
    stateDir: path.join(dir, 'releases'),
    ...(strategy === 'blue-green' ? { front: { slots: { blue, green }, drain: opts.drain ?? '1s', ...(opts.nginx ? { nginx: opts.nginx } : {}) } } : {}),
    composeEnv: {
      LLMCHAT_LOG_DIR: logs,
      LLMCHAT_UPLOADS_DIR: path.join(logs, 'uploads'),
      LLMCHAT_DATABASE_URL: database.url,
      LLMCHAT_REDIS_URL: 'redis://127.0.0.1:6379/0',
      LLMCHAT_DB_PASSWORD: PG.password,
    },
    healthTimeout: '20s',
    healthySuccesses: 2,
    bake: { duration: '0s', interval: '2s' },
    ...(opts.deploy ?? {}),
  };
  if (opts.commands) env.commands = opts.commands;
  if (opts.approvals) doc.approvals = opts.approvals;
  if (opts.metricsPort) doc.worker = { ...(doc.worker ?? {}), metricsPort: opts.metricsPort };
  const configFile = path.join(dir, 'ops.config.yaml');
  await writeFile(configFile, stringify(doc));
  const cfg = parseConfig(stringify(doc), 'deploy test config', ROOT);
  if (opts.initial !== null) await upEnvironment(cfg, 'production', opts.initial ?? 'v1', () => {});
  return {
    cfg,
    configFile,
    url,
    dir,
    project,
    database,
    slots: { blue, green },
    teardown: async () => {
      await downEnvironment(cfg, 'production', () => {}).catch((err) => console.error('teardown:', err));
      await database.drop().catch((err) => console.error('teardown:', err));
      await forgetSharedState(database.name);
    },
  };
}

/** Removes the shared-state rows (src/common/postgres/ops-state.ts) keyed by a scratch database that is gone. */
async function forgetSharedState(databaseName: string): Promise<void> {
  const c = new pg.Client({ ...PG, database: 'llmchat_ops' });
  try {
    await c.connect();
    await c.query('DELETE FROM ops_state WHERE database_name = $1', [databaseName]);
  } catch {
    // no state database yet: nothing to forget
  } finally {
    await c.end().catch(() => {});
  }
}

/** GET <url>/version → the version the environment serves (fresh connection). */
export async function servingVersion(url: string): Promise<string | undefined> {
  const r = await fetch(`${url}/version`, { signal: AbortSignal.timeout(3000) }).catch(() => undefined);
  if (!r?.ok) return undefined;
  return ((await r.json()) as { version?: string }).version;
}

/** A constant request loop against the front door; counts answers that were not 2xx and the longest gap without success. */
export function requestLoop(url: string, ratePerSecond = 50) {
  let stop = false;
  const stats = { ok: 0, failed: 0, failedAfterRetry: 0, errors: [] as string[], longestGapMs: 0 };
  let lastOk = performance.now();
  const one = async () => {
    try {
      const r = await fetch(`${url}/health/db`, { signal: AbortSignal.timeout(5000) });
      await r.arrayBuffer();
      if (r.ok) {
        const now = performance.now();
        stats.longestGapMs = Math.max(stats.longestGapMs, now - lastOk);
        lastOk = now;
        stats.ok++;
      } else {
        stats.failed++;
        if (stats.errors.length < 10) stats.errors.push(`HTTP ${r.status}`);
      }
    } catch (err) {
      stats.failed++;
      const why = String((err as Error & { cause?: Error }).cause?.message ?? (err as Error).message);
      if (stats.errors.length < 10) stats.errors.push(why);
      // What a browser does (RFC 9112 §9.3.1): an idempotent request on a reused connection that the server closed
      // is sent again once on a new one. Counted separately; `failed` stays the raw count.
      const again = await fetch(`${url}/health/db`, { signal: AbortSignal.timeout(5000) }).then((r) => r.arrayBuffer().then(() => r.ok), () => false);
      if (!again) stats.failedAfterRetry++;
    }
  };
  const inflight = new Set<Promise<void>>();
  const loop = (async () => {
    const every = 1000 / ratePerSecond;
    while (!stop) {
      const p = one();
      inflight.add(p);
      void p.finally(() => inflight.delete(p));
      await new Promise((r) => setTimeout(r, every));
    }
    await Promise.all(inflight);
  })();
  return {
    stats,
    stop: async () => {
      stop = true;
      await loop;
      return stats;
    },
  };
}

export interface DeployStack {
  env: TestWorkflowEnvironment;
  fx: DeployFixture;
  /** The webhook receiver the fixture's alerts go to (when asked for). */
  sink?: Awaited<ReturnType<typeof alertReceiver>>;
  /** Stops the worker, then removes the fixture, the receiver and the server (each part that was started). */
  stop: () => Promise<void>;
}

/**
 * What every deploy test file needs: a Temporal server (the dev server unless given), optionally a webhook receiver
 * for the alerts, the deploy fixture on the test's task queue and a worker running for it. If a part fails to
 * start, what was started is stopped again.
 */
export async function startDeployStack(opts: Omit<DeployFixtureOptions, 'address' | 'webhookUrl'> & { alerts?: boolean; server?: () => Promise<TestWorkflowEnvironment> }): Promise<DeployStack> {
  const { alerts, server, ...fixture } = opts;
  const parts: { env?: TestWorkflowEnvironment; sink?: DeployStack['sink']; fx?: DeployFixture; worker?: Worker; running?: Promise<void> } = {};
  const stop = async () => {
    parts.worker?.shutdown();
    await parts.running?.catch(() => {});
    await parts.fx?.teardown();
    await parts.sink?.close();
    await parts.env?.teardown();
  };
  try {
    parts.env = await (server ?? startDevServer)();
    if (alerts) parts.sink = await alertReceiver();
    parts.fx = await startDeployFixture({ ...fixture, address: parts.env.address, ...(parts.sink ? { webhookUrl: parts.sink.url } : {}) });
    parts.worker = await createWorker(parts.fx.cfg, parts.env.nativeConnection, { workflowBundle: await workflowBundle() });
    parts.running = parts.worker.run();
  } catch (err) {
    await stop();
    throw err;
  }
  return { env: parts.env, fx: parts.fx, ...(parts.sink ? { sink: parts.sink } : {}), stop };
}

/** Rows of one query on a database of the fixture (a fresh connection each time). */
export async function sql<T extends pg.QueryResultRow>(database: string, text: string): Promise<T[]> {
  const c = new pg.Client({ ...PG, database });
  await c.connect();
  try {
    return (await c.query<T>(text)).rows;
  } finally {
    await c.end();
  }
}
/** The app's migration level as its schema_migrations table says. */
export const levelOf = async (db: string) => Number((await sql<{ v: number }>(db, 'SELECT max(version) AS v FROM schema_migrations'))[0]?.v ?? 0);
/** Whether migration 002's column is there. */
export const hasTokenCount = async (db: string) => (await sql(db, "SELECT 1 FROM information_schema.columns WHERE table_name = 'messages' AND column_name = 'token_count'")).length === 1;

/** The failure a workflow ended with: its outer type (else the innermost cause's), message and details. */
export async function failureOf(p: Promise<unknown>): Promise<{ type?: string; message: string; details?: unknown[] }> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof WorkflowFailedError, String(err));
    const outer = err.cause as Error & { type?: string; details?: unknown[] };
    let inner = outer;
    while (inner.cause instanceof Error) inner = inner.cause as Error & { type?: string; details?: unknown[] };
    return { type: outer.type ?? inner.type, message: outer.message, details: outer.details };
  }
  assert.fail('the workflow should have failed');
}
