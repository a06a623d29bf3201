/**
 * Throughput with one worker and with two (issue 17): 300 short workflows (`dailyHealthCheck` against the demo
 * app) kept BENCH_CONCURRENCY (default 30) in flight, on the dev server and on the self-hosted Temporal server with
 * PostgreSQL persistence (skip it with BENCH_SELF_HOSTED=0; it needs the server built by
 * `scripts/services.sh up temporalserver`). Workers are real processes (`node dist/src/worker.js`), as on two
 * hosts. Prints runs per second and p50/p99 end-to-end latency (client start → result), side by side.
 *   Run: `npm run bench:throughput` (services must be up: scripts/services.sh up).
 */
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Client, Connection } from '@temporalio/client';
import pg from 'pg';
import { dropDatabaseOf, PG, privateRedis, scratchDatabase, startAppProcess, tempDir } from '../test/support/services.js';
import { startDevServer, testConfigYaml } from '../test/support/temporal.js';
import { createTemporalDatabases, SERVER_BIN, startRealServer } from '../test/support/temporal-server.js';
import { startHost, type WorkerProcess } from '../test/support/worker-processes.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 300);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 30);
const WARMUP = 10;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

interface Row {
  server: string;
  workers: number;
  perSecond: number;
  p50: number;
  p99: number;
}

async function measure(client: Client, address: string, app: { url: string; logs: string }, workers: number, server: string): Promise<Row> {
  const taskQueue = `bench-throughput-${randomUUID()}`;
  const dir = tempDir('bench-throughput');
  const base = path.join(dir, 'ops.config.yaml');
  await writeFile(base, testConfigYaml({ address, taskQueue, environments: { production: { url: app.url, logs: app.logs } } }));
  const procs: WorkerProcess[] = [];
  try {
    for (let i = 0; i < workers; i++) procs.push(await startHost(base, { host: `bench-host-${i}`, dataHost: 'bench-host-0' }));
    const one = async () => {
      const t0 = performance.now();
      await client.workflow.execute('dailyHealthCheck', { taskQueue, workflowId: `bench-${randomUUID()}`, args: [{ environment: 'production', requestedBy: 'bench' }] });
      return performance.now() - t0;
    };
    for (let i = 0; i < WARMUP; i++) await one();
    const latencies: number[] = [];
    let next = 0;
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < RUNS) {
          next++;
          latencies.push(await one());
        }
      }),
    );
    const wall = performance.now() - t0;
    latencies.sort((x, y) => x - y);
    return { server, workers, perSecond: (RUNS / wall) * 1000, p50: percentile(latencies, 50), p99: percentile(latencies, 99) };
  } finally {
    for (const p of procs) await p.kill('SIGTERM');
  }
}

async function main(): Promise<void> {
  process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
  const [db, redis] = await Promise.all([scratchDatabase('llmchat_bench'), privateRedis()]);
  const logs = tempDir('bench-logs');
  const app = await startAppProcess({ databaseUrl: db.url, redisUrl: redis.url, logDir: logs });
  const rows: Row[] = [];
  try {
    const dev = await startDevServer();
    try {
      for (const n of [1, 2]) rows.push(await measure(dev.client, dev.address, { url: app.url, logs }, n, 'dev server'));
    } finally {
      await dev.teardown();
    }
    if (process.env.BENCH_SELF_HOSTED === '0') {
      console.log('self-hosted server skipped (BENCH_SELF_HOSTED=0)');
    } else if (!existsSync(SERVER_BIN)) {
      console.log(`self-hosted server skipped: ${SERVER_BIN} is not built (scripts/services.sh up temporalserver)`);
    } else {
      const suffix = randomUUID().slice(0, 8).replace(/-/g, '');
      const pgp = { database: `temporal_bench_${suffix}`, visibility: `temporal_vis_bench_${suffix}`, user: PG.user, password: PG.password, port: PG.port };
      await createTemporalDatabases(pgp);
      const server = await startRealServer(tempDir('bench-server'), undefined, pgp);
      const connection = await Connection.connect({ address: server.address });
      try {
        const client = new Client({ connection });
        for (const n of [1, 2]) rows.push(await measure(client, server.address, { url: app.url, logs }, n, 'self-hosted (PostgreSQL)'));
      } finally {
        await connection.close();
        await server.stop();
        const c = new pg.Client({ ...PG, database: 'postgres' });
        await c.connect();
        for (const name of [pgp.database, pgp.visibility]) await dropDatabaseOf(c, name).catch(() => undefined);
        await c.end();
      }
    }
  } finally {
    await app.stop();
    await Promise.allSettled([redis.stop(), db.drop()]);
  }
  console.log(`\n${RUNS} dailyHealthCheck runs, ${CONCURRENCY} in flight, worker processes on one task queue`);
  console.log(`${'server'.padEnd(26)} ${'workers'.padStart(7)} ${'runs/s'.padStart(8)} ${'p50 ms'.padStart(8)} ${'p99 ms'.padStart(8)}`);
  for (const r of rows) console.log(`${r.server.padEnd(26)} ${String(r.workers).padStart(7)} ${r.perSecond.toFixed(1).padStart(8)} ${r.p50.toFixed(0).padStart(8)} ${r.p99.toFixed(0).padStart(8)}`);
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
