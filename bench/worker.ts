/**
 * The worker process itself: how long from `node dist/src/worker.js` to RUNNING, and how much memory it holds
 * after a start and after a workload. Goal (issue 18): RUNNING within 2 s; ≤ 200 MB resident after an hour of the
 * demo schedules plus 100 health checks.
 *
 * Each variant runs the real worker as a child process against a private dev server and the stand-in app:
 *   - "bundle at start": the workflow bundle made by webpack at every start (what the worker did before);
 *   - "prebuilt": the bundle `npm run build` wrote (src/workflow-bundle.ts);
 *   - "scripts/worker.sh": the prebuilt bundle with the node/V8 settings `npm start` uses (see that script).
 * Start time is measured over BENCH_ROUNDS fresh processes (default 3). The workload, per round, is what the demo
 * schedules start in an hour (faultDetection every 5 minutes for two environments = 24 runs; the daily ones at most
 * once) compressed into one go, plus 100 dailyHealthCheck runs; resident memory is read from /proc after it, with
 * the worker's own breakdown (SIGUSR2 → "worker memory" log line). The load average is printed with each figure:
 * this machine has 2 cores.   Run: `npm run bench:worker` (services up first: scripts/services.sh up);
 * BENCH_VARIANTS='prebuilt,scripts/worker.sh' runs only those.
 */
import { randomUUID } from 'node:crypto';
import { existsSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { loadavg } from 'node:os';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { freePort, privateRedis, scratchDatabase, startAppProcess, tempDir } from '../test/support/services.js';
import { startDevServer, testConfigYaml } from '../test/support/temporal.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const HEALTH_CHECKS = Number(process.env.BENCH_HEALTH_CHECKS ?? 100);
const FAULT_RUNS = 24;
const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const DIGEST = path.join(ROOT, 'dist/workflow-bundle.json');

interface Variant {
  name: string;
  prebuilt: boolean;
  command: [string, ...string[]];
}
const VARIANTS: Variant[] = [
  { name: 'bundle at start', prebuilt: false, command: ['node', path.join(ROOT, 'dist/src/worker.js')] },
  { name: 'prebuilt', prebuilt: true, command: ['node', path.join(ROOT, 'dist/src/worker.js')] },
  { name: 'scripts/worker.sh', prebuilt: true, command: [path.join(ROOT, 'scripts/worker.sh')] },
];

const load = () => loadavg()[0]!.toFixed(1);
const rssMB = (pid: number) => Math.round(Number(/^VmRSS:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))![1]) / 1024);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  if (!existsSync(DIGEST)) throw new Error('no prebuilt workflow bundle: run npm run build first');
  const env = await startDevServer();
  const [db, redis] = await Promise.all([scratchDatabase('llmchat_bench_worker'), privateRedis()]);
  const logs = tempDir('bench-worker');
  const app = await startAppProcess({ databaseUrl: db.url, redisUrl: redis.url, logDir: logs });
  const rows: string[] = [];
  try {
    const only = process.env.BENCH_VARIANTS?.split(',');
    for (const v of VARIANTS.filter((x) => !only || only.includes(x.name))) {
      const starts: number[] = [];
      const startRss: number[] = [];
      const afterRss: number[] = [];
      const loads: string[] = [];
      let breakdown = '';
      for (let round = 1; round <= ROUNDS; round++) {
        const taskQueue = `bench-worker-${randomUUID()}`;
        const cfgFile = path.join(logs, `${taskQueue}.yaml`);
        writeFileSync(cfgFile, testConfigYaml({ address: env.address, taskQueue, metricsPort: await freePort(), environments: { production: { url: app.url, logs, database: db.name, redisUrl: redis.url }, staging: { url: app.url, logs, database: db.name, redisUrl: redis.url } }, extra: { alertmanagerReceiver: { enabled: false } } }));
        const hide = !v.prebuilt;
        if (hide) renameSync(DIGEST, `${DIGEST}.bench-hidden`);
        let child: ResultPromise | undefined;
        try {
          const t0 = performance.now();
          child = execa(v.command[0], [...v.command.slice(1), cfgFile], { env: { LLMCHAT_OPS_STATE: logs }, reject: false, buffer: false });
          const out: string[] = [];
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`worker not RUNNING after 60 s:\n${out.join('')}`)), 60_000);
            child!.stdout!.on('data', (d: Buffer) => {
              out.push(d.toString());
              if (/"state":"RUNNING"/.test(d.toString())) {
                clearTimeout(timer);
                resolve();
              }
            });
            child!.stderr!.on('data', (d: Buffer) => out.push(d.toString()));
          });
          starts.push(performance.now() - t0);
          loads.push(load());
          if (hide) renameSync(`${DIGEST}.bench-hidden`, DIGEST);
          if (v.prebuilt && out.join('').includes('workflow bundle built at start')) throw new Error('the prebuilt bundle was not used');
          await new Promise((r) => setTimeout(r, 1000));
          startRss.push(rssMB(child.pid!));
          // The hour of demo schedules (compressed) and the health checks.
          for (let i = 0; i < FAULT_RUNS; i++) {
            await env.client.workflow.execute('faultDetection', { taskQueue, workflowId: `bench-fault-${randomUUID()}`, args: [{ environment: i % 2 ? 'staging' : 'production', requestedBy: 'bench' }] }).catch(() => undefined);
          }
          for (let i = 0; i < HEALTH_CHECKS; i++) {
            await env.client.workflow.execute('dailyHealthCheck', { taskQueue, workflowId: `bench-health-${randomUUID()}`, args: [{ environment: 'production' }] });
          }
          afterRss.push(rssMB(child.pid!));
          const mark = out.length;
          process.kill(child.pid!, 'SIGUSR2');
          await new Promise((r) => setTimeout(r, 500));
          const line = out.slice(mark).join('').split('\n').find((l) => l.includes('"worker memory"'));
          if (line) {
            const m = JSON.parse(line) as Record<string, number>;
            breakdown = `rss ${m.rssMB} = file ${m.fileMB} + anon ${m.anonMB} MB (main V8 heap ${m.heapUsedMB}/${m.heapTotalMB}, external ${m.externalMB}, threads ${m.threads}, cached workflows ${m.cachedWorkflows})`;
          }
        } finally {
          if (hide && existsSync(`${DIGEST}.bench-hidden`)) renameSync(`${DIGEST}.bench-hidden`, DIGEST);
          child?.kill('SIGTERM');
          await child;
        }
      }
      const line = `${v.name.padEnd(18)} RUNNING after ${starts.map((s) => `${Math.round(s)}`).join(' / ')} ms (median ${Math.round(median(starts))}; load ${loads.join(' / ')})  rss after start ${startRss.join(' / ')} MB  after workload ${afterRss.join(' / ')} MB`;
      console.log(line);
      console.log(`${''.padEnd(18)} ${breakdown}`);
      rows.push(line);
    }
    console.log(`\nworkload per round: ${FAULT_RUNS} faultDetection (an hour of the demo's 5-minute schedule for two environments) + ${HEALTH_CHECKS} dailyHealthCheck`);
  } finally {
    await app.stop();
    await db.drop();
    await redis.stop();
    await env.teardown();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
