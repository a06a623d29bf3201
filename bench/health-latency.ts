/**
 * What does durability cost the daily health check? End-to-end latency of the `dailyHealthCheck` workflow
 * (client start → result, on a real dev server and worker) against calling the very same check functions
 * directly in this process, on the same app. Prints p50/p99 of each, the difference and the ratio, and the
 * floor: an empty workflow on the same server and worker setup, i.e. what any workflow run costs here.
 * Goal: ≤ 40 ms added at p50.   Run: `npm run bench:health` (services must be up: scripts/services.sh up).
 */
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { createActivities } from '../src/activities/index.js';
import { evaluateHealth } from '../src/common/health.js';
import { createWorker } from '../src/worker.js';
import { privateRedis, scratchDatabase, startAppProcess, tempDir } from '../test/support/services.js';
import { startDevServer, testConfig, workflowBundle } from '../test/support/temporal.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 200);
const WARMUP = 10;

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;
}

async function main(): Promise<void> {
  const env = await startDevServer();
  const [db, redis] = await Promise.all([scratchDatabase('llmchat_bench'), privateRedis()]);
  const logs = tempDir('bench');
  const app = await startAppProcess({ databaseUrl: db.url, redisUrl: redis.url, logDir: logs });
  const taskQueue = `bench-${randomUUID()}`;
  const cfg = testConfig({ address: env.address, taskQueue, environments: { production: { url: app.url, logs } } });
  const acts = createActivities(cfg);
  const worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
  const floorWorker = await Worker.create({
    connection: env.nativeConnection,
    taskQueue: `${taskQueue}-floor`,
    workflowBundle: await bundleWorkflowCode({
      workflowsPath: fileURLToPath(new URL('./floor-workflow.js', import.meta.url)),
      logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error } as never,
    }),
  });

  const direct = async () => {
    const environment = 'production';
    const summary = await acts.describeEnvironment(environment);
    const [service, database, redisProbe, disks, memory, log] = await Promise.all([
      acts.probeEndpoint({ environment, endpoint: 'service' }),
      acts.probeEndpoint({ environment, endpoint: 'database' }),
      acts.probeEndpoint({ environment, endpoint: 'redis' }),
      acts.checkDiskUsage({ environment }),
      acts.checkMemoryUsage(),
      acts.scanAppLog({ environment }),
    ]);
    return evaluateHealth(environment, { endpoints: [service, database, redisProbe], disks, memory, log }, summary.thresholds).status;
  };
  const viaWorkflow = async () =>
    (await env.client.workflow.execute('dailyHealthCheck', { taskQueue, workflowId: `bench-${randomUUID()}`, args: [{ environment: 'production' }] })).status;

  const empty = async () =>
    env.client.workflow.execute('emptyWorkflow', { taskQueue: `${taskQueue}-floor`, workflowId: `bench-floor-${randomUUID()}` });

  const timings = { direct: [] as number[], workflow: [] as number[], empty: [] as number[] };
  try {
    await worker.runUntil(floorWorker.runUntil(async () => {
      for (let i = 0; i < WARMUP + RUNS; i++) {
        // Interleaved, so drift on the machine (log growth, caches) hits all sides alike.
        for (const [name, fn] of [['direct', direct], ['workflow', viaWorkflow], ['empty', empty]] as const) {
          const t0 = performance.now();
          const status = await fn();
          const ms = performance.now() - t0;
          if (status !== 'healthy') throw new Error(`${name} run ${i} was ${status}; the benchmark needs a healthy app`);
          if (i >= WARMUP) timings[name].push(ms);
        }
      }
    }));
  } finally {
    await app.stop();
    await Promise.allSettled([redis.stop(), db.drop()]);
    await env.teardown();
  }

  const d = timings.direct.sort((a, b) => a - b);
  const w = timings.workflow.sort((a, b) => a - b);
  const row = (label: string, p: number) => {
    const a = percentile(d, p);
    const b = percentile(w, p);
    return `${label.padEnd(4)} direct ${a.toFixed(2).padStart(8)} ms   workflow ${b.toFixed(2).padStart(8)} ms   added ${(b - a).toFixed(2).padStart(8)} ms   ratio ${(b / a).toFixed(2)}x`;
  };
  console.log(`dailyHealthCheck: workflow vs direct check functions, ${RUNS} runs each (after ${WARMUP} warm-up)`);
  console.log(row('p50', 50));
  console.log(row('p99', 99));
  const e = timings.empty.sort((a, b) => a - b);
  console.log(`floor: an empty workflow on this server  p50 ${percentile(e, 50).toFixed(2)} ms   p99 ${percentile(e, 99).toFixed(2)} ms`);
  const added = percentile(w, 50) - percentile(d, 50);
  console.log(`goal: <= 40 ms added at p50 -> ${added <= 40 ? 'MET' : 'NOT MET'} (${added.toFixed(2)} ms)`);
  console.log(`      added beyond the empty-workflow floor at p50: ${(percentile(w, 50) - percentile(d, 50) - percentile(e, 50)).toFixed(2)} ms`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
