/**
 * What does payload encryption cost? End-to-end latency of the `dailyHealthCheck` workflow (client start → result,
 * real dev server, our worker, a healthy stand-in app) with temporal.encryption on and off: two task queues on one
 * server, one worker each (the same config but for the codec), a client with and one without the codec, runs
 * interleaved so machine drift hits both alike. Prints p50/p99 of each and the added share. Goal: ≤ 5 % at p50.
 * Also the codec alone: encode+decode of a health report sized payload.
 * Run: `npm run bench:codec` (services must be up: scripts/services.sh up).
 */
import { randomBytes, randomUUID } from 'node:crypto';
import { Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { AesGcmCodec, dataConverterFromConfig } from '../src/common/codec.js';
import { createWorker } from '../src/worker.js';
import { privateRedis, scratchDatabase, startAppProcess, tempDir } from '../test/support/services.js';
import { startDevServer, testConfig, workflowBundle } from '../test/support/temporal.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 150);
const WARMUP = 10;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number;

async function main(): Promise<void> {
  process.env.LLMCHAT_BENCH_CODEC_KEYS = `bench:${randomBytes(32).toString('base64')}`;
  const env = await startDevServer();
  const [db, redis] = await Promise.all([scratchDatabase('llmchat_bench'), privateRedis()]);
  const logs = tempDir('bench-codec');
  const app = await startAppProcess({ databaseUrl: db.url, redisUrl: redis.url, logDir: logs });
  const queue = `bench-codec-${randomUUID()}`;
  const plainCfg = testConfig({ address: env.address, taskQueue: `${queue}-plain`, environments: { production: { url: app.url, logs } } });
  const encCfg = testConfig({ address: env.address, taskQueue: `${queue}-enc`, environments: { production: { url: app.url, logs } } });
  encCfg.temporal.encryption = { keysEnv: 'LLMCHAT_BENCH_CODEC_KEYS' };
  const bundle = await workflowBundle();
  const [plainWorker, encWorker] = await Promise.all([createWorker(plainCfg, env.nativeConnection, { workflowBundle: bundle }), createWorker(encCfg, env.nativeConnection, { workflowBundle: bundle })]);
  const plainClient = env.client;
  const encClient = new Client({ connection: env.connection, dataConverter: dataConverterFromConfig(encCfg.temporal.encryption) });
  const run = (client: Client, taskQueue: string) => async () =>
    (await client.workflow.execute('dailyHealthCheck', { taskQueue, workflowId: `bench-${randomUUID()}`, args: [{ environment: 'production' }] })) as { status: string };
  const sides = [['plain', run(plainClient, plainCfg.temporal.taskQueue)], ['encrypted', run(encClient, encCfg.temporal.taskQueue)]] as const;
  const timings = { plain: [] as number[], encrypted: [] as number[] };
  try {
    await plainWorker.runUntil(encWorker.runUntil(async () => {
      for (let i = 0; i < WARMUP + RUNS; i++) {
        for (const [name, fn] of i % 2 ? [...sides].reverse() : sides) {
          const t0 = performance.now();
          const report = await fn();
          const ms = performance.now() - t0;
          if (report.status !== 'healthy') throw new Error(`${name} run ${i} was ${report.status}; the benchmark needs a healthy app`);
          if (i >= WARMUP) timings[name].push(ms);
        }
      }
    }));
  } finally {
    await app.stop();
    await Promise.allSettled([redis.stop(), db.drop()]);
    await env.teardown();
  }
  // The codec alone, on a payload the size of a health report.
  const codec = new AesGcmCodec(new Map([['bench', randomBytes(32)]]), 'bench');
  const payload = defaultPayloadConverter.toPayload({ checks: Array.from({ length: 6 }, (_, i) => ({ name: `check-${i}`, status: 'healthy', detail: 'x'.repeat(200) })) });
  const N = 20_000;
  const t0 = performance.now();
  for (let i = 0; i < N; i++) await codec.decode(await codec.encode([payload]));
  const perPayloadUs = ((performance.now() - t0) / N) * 1000;

  const line = (name: string, xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { name, p50: percentile(s, 50), p99: percentile(s, 99) };
  };
  const p = line('plain', timings.plain);
  const e = line('encrypted', timings.encrypted);
  console.log(`dailyHealthCheck end to end, ${RUNS} runs each (interleaved), real dev server + worker + app`);
  console.log(`  without encryption   p50 ${p.p50.toFixed(1)} ms   p99 ${p.p99.toFixed(1)} ms`);
  console.log(`  with AES-256-GCM     p50 ${e.p50.toFixed(1)} ms   p99 ${e.p99.toFixed(1)} ms`);
  console.log(`  added                p50 ${(((e.p50 - p.p50) / p.p50) * 100).toFixed(1)} %   p99 ${(((e.p99 - p.p99) / p.p99) * 100).toFixed(1)} %   (goal ≤ 5 % at p50)`);
  console.log(`  codec alone: encode+decode of a ${payload.data?.length ?? 0}-byte payload ${perPayloadUs.toFixed(1)} µs`);
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
