/**
 * Fault detection benchmarks (printed, not asserted):
 *  1. log scan — the incremental cursor after 1 MB of new lines appended to a ≥ 1 GB log, against `grep -c ERROR`
 *     over the whole file (goal ≤ 0.01×) and against the guide's read-the-whole-file count (our streaming scanLog,
 *     the daily check's full scan);
 *  2. alert storm — 1 000 fault reports for 50 fault keys within a minute through signal-with-start: exactly 50
 *     pages must reach the webhook receiver; p50/p99 from a key's first report to its page;
 *  3. recovery through the schedule alone — the container killed, one faultDetection run (what the schedule
 *     starts) until the app is healthy; a schedule adds the wait for its next tick (0–300 s).
 *     The Alertmanager path is measured by test/monitoring.test.ts (it prints "fault onset … → healthy again").
 * Run: `npm run bench:fault` (services up: scripts/services.sh up; app images built).   BENCH_LOG_GB=1 by default.
 */
import { randomUUID } from 'node:crypto';
import { appendFile, open, rm } from 'node:fs/promises';
import path from 'node:path';
import Docker from 'dockerode';
import { execa } from 'execa';
import { scanLog } from '../src/activities/health/host.js';
import { scanIncrementally } from '../src/activities/faults/log-cursor.js';
import { alertWorkflowId } from '../src/activities/faults/faults.js';
import { alertLifecycle } from '../src/workflows/faults/alert-lifecycle.js';
import { faultReportedSignal } from '../src/workflows/faults/shared.js';
import { faultDetection } from '../src/workflows/faults/fault-detection.js';
import { faultFixture } from '../test/support/fault-fixture.js';
import { httpOk, tempDir, waitFor } from '../test/support/services.js';

const ROUNDS = 5;
const pct = (xs: number[], p: number) => [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.ceil((p / 100) * xs.length) - 1)] as number;
const ms = (n: number) => `${n.toFixed(1)} ms`;
const line = (i: number, level: string) => `2026-11-27T00:00:00.000Z ${level} request {"method":"GET","path":"/api/sessions/${i}","status":200,"durationMs":3.1}\n`;

async function logScan(): Promise<void> {
  const gb = Number(process.env.BENCH_LOG_GB ?? 1);
  const file = path.join(tempDir('bench-log'), 'app.log');
  const block = Buffer.from(Array.from({ length: 10_000 }, (_, i) => line(i, i % 1000 === 0 ? 'ERROR' : 'INFO')).join(''));
  const fh = await open(file, 'w');
  let size = 0;
  while (size < gb * 1024 ** 3) {
    await fh.write(block);
    size += block.length;
  }
  await fh.close();
  const mb = Buffer.from(Array.from({ length: Math.ceil((1024 * 1024) / line(0, 'INFO').length) }, (_, i) => line(i, i % 100 === 0 ? 'ERROR' : 'INFO')).join(''));
  let cursor = (await scanIncrementally(file, undefined, { pattern: 'ERROR' })).cursor;
  const ours: number[] = [];
  const grep: number[] = [];
  const whole: number[] = [];
  // The incremental scan is a few milliseconds, so it is measured over more rounds (after JIT warm-up) than the
  // whole-file baselines; on a loaded 2-core machine single rounds jitter by tens of milliseconds.
  for (let r = 0; r < 3 * ROUNDS + 3; r++) {
    await appendFile(file, mb);
    const t0 = performance.now();
    const res = await scanIncrementally(file, cursor, { pattern: 'ERROR' });
    if (r >= 3) ours.push(performance.now() - t0);
    cursor = res.cursor;
    if (res.scan.bytesRead !== mb.length) throw new Error(`read ${res.scan.bytesRead} bytes, expected ${mb.length}`);
  }
  for (let r = 0; r < ROUNDS; r++) {
    await appendFile(file, mb);
    cursor = (await scanIncrementally(file, cursor, { pattern: 'ERROR' })).cursor;
    let t = performance.now();
    await execa('grep', ['-c', 'ERROR', file]);
    grep.push(performance.now() - t);
    if (r < 2) {
      t = performance.now();
      await scanLog(file);
      whole.push(performance.now() - t);
    }
  }
  const [o, g, w] = [pct(ours, 50), pct(grep, 50), pct(whole, 50)];
  console.log(`\n1. log scan: 1 MB appended to a ${(size / 1024 ** 3).toFixed(2)} GB log (p50: ours over ${3 * ROUNDS} rounds, grep over ${ROUNDS}, whole-file count over 2; page cache warm)`);
  console.log(`   incremental cursor ${ms(o)}   grep -c ERROR (whole file) ${ms(g)}   guide-style whole-file count ${ms(w)}`);
  console.log(`   ratio vs grep ${(o / g).toFixed(4)}× (goal ≤ 0.01×: ${o / g <= 0.01 ? 'met' : 'NOT met'})   vs whole-file count ${(o / w).toFixed(4)}×`);
  await rm(path.dirname(file), { recursive: true, force: true });
}

async function stormAndRecovery(): Promise<void> {
  const f = await faultFixture({ environments: { prod: { faultDetection: { recovery: { restarts: 10, per: '1h', healthyTimeout: '60s' } } } }, alerts: { escalateAfter: '1h', grace: '0s' } });
  try {
    await f.startWorker();
    // 2. alert storm
    const KEYS = 50;
    const REPORTS = 1000;
    const first = new Map<string, number>();
    const started = performance.now();
    const batch = 25;
    for (let i = 0; i < REPORTS; i += batch) {
      await Promise.all(
        Array.from({ length: batch }, async (_, j) => {
          const check = `storm-${(i + j) % KEYS}`;
          if (!first.has(check)) first.set(check, Date.now());
          await f.env.client.workflow.signalWithStart(alertLifecycle, {
            taskQueue: f.taskQueue,
            workflowId: alertWorkflowId('prod', check),
            args: [{ environment: 'prod', check }],
            signal: faultReportedSignal,
            signalArgs: [{ severity: 'warning', title: `storm ${check}`, message: `report ${i + j}`, detectedBy: 'bench' }],
          });
        }),
      );
    }
    const sentIn = (performance.now() - started) / 1000;
    const pages = () => f.webhook.received.filter((x) => String(x.body.type).startsWith('storm-') && !String(x.body.title).startsWith('ESCALATED'));
    await waitFor('50 pages', async () => pages().length >= KEYS, 120_000, 200);
    await new Promise((r) => setTimeout(r, 3000)); // any duplicate page would arrive by now
    console.log(`\n2. alert storm: ${REPORTS} reports for ${KEYS} fault keys sent in ${sentIn.toFixed(1)} s → ${pages().length} pages (expected exactly ${KEYS})`);
    console.log(`   slack pages ${f.slack.received.filter((x) => String(x.body.text).includes('storm')).length} (expected ${KEYS})`);
    console.log(`   first report → page, per key: p50 ${ms(pct(pageDelays(f, first), 50))}  p99 ${ms(pct(pageDelays(f, first), 99))}`);

    // 3. recovery through one detection run (what the schedule starts)
    const docker = new Docker();
    const [info] = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${f.app.project}`] } });
    if (!info) throw new Error('no app container');
    const container = docker.getContainer(info.Id);
    await f.env.client.workflow.execute(faultDetection, { taskQueue: f.taskQueue, workflowId: `fd-${randomUUID()}`, args: [{ environment: 'prod' }] });
    const times: number[] = [];
    for (let r = 0; r < 3; r++) {
      await container.kill();
      const t = performance.now();
      await f.env.client.workflow.execute(faultDetection, { taskQueue: f.taskQueue, workflowId: `fd-${randomUUID()}`, args: [{ environment: 'prod' }] });
      await waitFor('healthy', httpOk(`${f.app.url}/health`), 60_000, 100);
      times.push(performance.now() - t);
    }
    console.log(`\n3. container killed → one faultDetection run → healthy: p50 ${(pct(times, 50) / 1000).toFixed(1)} s over 3 rounds`);
    console.log(`   through the 5-minute schedule alone: + the wait for the next tick (0–300 s, 150 s on average)`);
  } finally {
    await f.teardown();
  }
}

/** Milliseconds from a key's first report to its first page at the webhook receiver (arrival time recorded by the receiver). */
function pageDelays(f: Awaited<ReturnType<typeof faultFixture>>, first: Map<string, number>): number[] {
  const out: number[] = [];
  for (const [check, t0] of first) {
    const page = f.webhook.received.find((x) => x.body.type === check);
    if (page) out.push(page.at - t0);
  }
  return out;
}

async function main(): Promise<void> {
  if (!process.argv.includes('--no-log')) await logScan();
  if (!process.argv.includes('--no-storm')) await stormAndRecovery();
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
