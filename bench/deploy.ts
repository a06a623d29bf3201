/**
 * What a deploy costs and what it spares the users, on the real stack (Docker, the stand-in images, nginx,
 * PostgreSQL, a Temporal dev server), each figure measured in this run:
 *   (a) zero downtime: a constant request loop (BENCH_RATE req/s, default 200) against the environment's URL
 *       during our blue/green deploy v1 → v2, and during the guide's `docker-compose up -d` (recreate in place)
 *       v1 → v2 on a stack without a front, side by side: failed requests and the longest gap without a
 *       successful response.   Goal: ours 0 failed, gap ≤ 100 ms.
 *   (b) wall time of our deploy (no pre-deploy backup, no bake; plan, image, migrate, switch, health gate, verify,
 *       drain, records) vs the same steps run by a plain script (migration level with the image, migrate up, compose
 *       up of the idle slot, readiness poll, nginx config + reload, health gate through the front, version check,
 *       the rest of the drain time counted from the switch, compose down of the old slot) on the
 *       same stack, alternating v1 → v2 → v1 over BENCH_ROUNDS rounds (default 3), p50 of each.   Goal ≤ 1.1×.
 *       And "serving and verified at": when ours reports the new version serving and verified (the servingVerified
 *       update returns) vs the plain script after its version check.   Goal ≤ 1.0× (issue 18). BENCH_PARTS=b: only (b).
 *       The pre-deploy backup and the bake period are reported separately (one deploy with both).
 *   (c) time from a failed verify after the switch to the previous version serving again (front polled every
 *       20 ms).   Goal ≤ 5 s.
 *   (d) a switch that fails after the reload (v1's image tagged as another version, so it reports v1): under the
 *       request loop, the failed requests, and the time from the reload (the first answer of the new config
 *       through the front, which names its slot in X-Llmchat-Slot) to the previous version serving again through
 *       the front (every answer from then on from the old slot, with its version), front polled every 10 ms.
 *       Goal 0 failed, ≤ 2 s.
 * Run: `npm run bench:deploy` (services and images up first: scripts/services.sh up && app/build-images.sh).
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { execa } from 'execa';
import { getEnvironment, type OpsConfig } from '../src/common/config/index.js';
import { applyFront, freshGet, frontSpec } from '../src/activities/release/nginx-front.js';
import { readReleases } from '../src/activities/release/release-store.js';
import { createWorker } from '../src/worker.js';
import type { ReleaseProgress } from '../src/workflows/release/shared.js';
import { requestLoop, startDeployFixture, type DeployFixture } from '../test/support/deploy-fixture.js';
import { freePort, PG, ROOT, tempDir } from '../test/support/services.js';
import { startDevServer, workflowBundle } from '../test/support/temporal.js';

const RATE = Number(process.env.BENCH_RATE ?? 200);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
/** Which figures to measure (BENCH_PARTS=b: only the wall time); default all. */
const PARTS = process.env.BENCH_PARTS ?? 'abcd';
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const load = () => execa('cat', ['/proc/loadavg']).then((r) => r.stdout.split(' ').slice(0, 3).join(' '));

async function withWorker<T>(env: TestWorkflowEnvironment, fx: DeployFixture, fn: (taskQueue: string) => Promise<T>): Promise<T> {
  const taskQueue = fx.cfg.temporal.taskQueue;
  const worker: Worker = await createWorker(fx.cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
  return worker.runUntil(() => fn(taskQueue));
}

/**
 * One deploy as the person waiting for it sees it: `servedMs` when it reports the new version serving and verified
 * (the `servingVerified` update the CLI waits on returns), `ms` when the run has ended (the drain of the old slot,
 * its stop and the release records included). Both from just before the start.
 */
async function deploy(env: TestWorkflowEnvironment, taskQueue: string, version: string, extra: Record<string, unknown> = {}) {
  const t0 = performance.now();
  const h = await env.client.workflow.start('deploy', { taskQueue, workflowId: `bench-${randomUUID()}`, args: [{ environment: 'production', version, requestedBy: 'bench', skipBackup: true, bakeSeconds: 0, ...extra }] });
  const served = h.executeUpdate<{ serving: boolean }, []>('servingVerified', { args: [] }).then(
    (r) => (r.serving ? performance.now() - t0 : NaN),
    () => NaN, // a run recorded before the update existed (or one that ended first)
  );
  const outcome = await h.result().then(() => 'success', (e: Error & { cause?: Error }) => `failed: ${e.cause?.message ?? e.message}`);
  const ms = performance.now() - t0;
  return { ms, servedMs: await served, outcome, progress: await h.query<ReleaseProgress>('progress') };
}

let lastPlainSteps = '';

/** The same steps as our blue/green deploy, as a plain script would run them (no Temporal, no records). */
async function plainDeploy(cfg: OpsConfig, fx: DeployFixture, version: string): Promise<{ ms: number; servedMs: number }> {
  const env = getEnvironment(cfg, 'production');
  const state = await readReleases(env.deploy.stateDir as string, 'production');
  const cur = state.current;
  if (!cur) throw new Error('no current release');
  const slot = cur.slot === 'blue' ? 'green' : 'blue';
  const port = fx.slots[slot];
  const t0 = performance.now();
  const composeEnv = { ...env.deploy.composeEnv, LLMCHAT_VERSION: version, LLMCHAT_APP_PORT: String(port), LLMCHAT_SLOT: slot };
  const compose = (project: string, args: string[], e: Record<string, string>) => execa(path.join(ROOT, 'scripts/compose.sh'), ['-p', project, '-f', env.compose.file, ...args], { env: e });
  const migrate = (args: string[]) =>
    execa('docker', ['run', '--rm', '--network', 'host', '-e', `DATABASE_URL=postgres://llmchat@127.0.0.1:5432/${fx.database.name}`, '-e', 'PGPASSWORD', `llmchat-app:${version}`, 'node', 'migrate.js', ...args, '--json'], { env: { PGPASSWORD: PG.password } });
  const healthy = async (base: string) => {
    for (let ok = 0; ok < env.deploy.healthySuccesses; ) {
      const r = await freshGet(`${base}/health`, 2000).catch(() => undefined);
      ok = r?.status === 200 ? ok + 1 : 0;
      if (ok < env.deploy.healthySuccesses) await new Promise((res) => setTimeout(res, 250));
    }
  };
  const marks: [string, number][] = [];
  const mark = (what: string) => marks.push([what, performance.now()]);
  await migrate(['status']); // the level before, recorded like ours
  await migrate(['up']);
  mark('migrate');
  await compose(`${fx.project}-${slot}`, ['up', '-d', '--remove-orphans'], composeEnv);
  mark('compose up');
  await healthy(`http://127.0.0.1:${port}`);
  mark('ready');
  await applyFront(frontSpec(env.deploy.stateDir as string, env.url, 'nginx'), port, slot);
  mark('front');
  const switchedAt = performance.now();
  await healthy(env.url); // the health gate through the front
  mark('health gate');
  for (;;) {
    const r = await freshGet(`${env.url}/version`, 2000).catch(() => undefined);
    if (r?.status === 200 && JSON.parse(r.body).version === version) break;
    await new Promise((res) => setTimeout(res, 50));
  }
  const servedMs = performance.now() - t0; // serving and verified (health gate and version through the front)
  mark('version');
  await new Promise((res) => setTimeout(res, Math.max(0, (env.deploy.front?.drain ?? 0) - (performance.now() - switchedAt))));
  await compose(`${fx.project}-${cur.slot}`, ['down', '--remove-orphans', '--timeout', '10'], { ...composeEnv, LLMCHAT_SLOT: cur.slot, LLMCHAT_APP_PORT: String(cur.port) });
  const ms = performance.now() - t0;
  mark('drain + compose down');
  lastPlainSteps = marks.map(([what, at], i) => `${what} ${Math.round(at - (i ? (marks[i - 1] as [string, number])[1] : t0))} ms`).join(', ');
  // keep the release records true for the next (workflow) round
  const { updateReleases } = await import('../src/activities/release/release-store.js');
  await updateReleases(env, 'production', (st) => {
    st.previous = st.current;
    st.current = { ...(st.current as NonNullable<typeof st.current>), version, slot, port, image: `llmchat-app:${version}` };
  });
  return { ms, servedMs };
}

/** The guide's recreate (`docker-compose up -d` with the new version) on a stack without a front, under the loop. */
async function guideRecreate(): Promise<{ failed: number; failedAfterRetry: number; ok: number; gap: number; errors: string[] }> {
  const port = await freePort();
  const dir = tempDir('bench-recreate');
  const project = `llmchat-bench-${process.pid}-${port}`;
  const db = `llmchat_bench_${process.pid}`;
  const { scratchDatabase } = await import('../test/support/services.js');
  const database = await scratchDatabase(db);
  const { migrateTo } = await import('../test/support/deploy-fixture.js');
  await migrateTo(database.url, 1);
  const file = path.join(ROOT, 'app/compose/docker-compose.production.yml');
  const envFor = (version: string) => ({ LLMCHAT_VERSION: version, LLMCHAT_APP_PORT: String(port), LLMCHAT_DATABASE_URL: database.url, LLMCHAT_DB_PASSWORD: PG.password, LLMCHAT_LOG_DIR: dir, LLMCHAT_UPLOADS_DIR: dir, LLMCHAT_REDIS_URL: 'redis://127.0.0.1:6379/0' });
  const compose = (version: string, args: string[]) => execa(path.join(ROOT, 'scripts/compose.sh'), ['-p', project, '-f', file, ...args], { env: envFor(version) });
  try {
    await compose('v1', ['up', '-d']);
    for (let i = 0; i < 200; i++) {
      const r = await freshGet(`http://127.0.0.1:${port}/health/db`, 1000).catch(() => undefined);
      if (r?.status === 200) break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const loop = requestLoop(`http://127.0.0.1:${port}`, RATE);
    await new Promise((res) => setTimeout(res, 1000));
    await execa('docker', ['run', '--rm', '--network', 'host', '-e', `DATABASE_URL=${database.url}`, '-e', 'PGPASSWORD', 'llmchat-app:v2', 'node', 'migrate.js', 'up'], { env: { PGPASSWORD: PG.password } });
    await compose('v2', ['up', '-d']);
    for (let i = 0; i < 300; i++) {
      const r = await freshGet(`http://127.0.0.1:${port}/version`, 1000).catch(() => undefined);
      if (r?.status === 200 && JSON.parse(r.body).version === 'v2') break;
      await new Promise((res) => setTimeout(res, 50));
    }
    await new Promise((res) => setTimeout(res, 1000));
    const st = await loop.stop();
    return { failed: st.failed, failedAfterRetry: st.failedAfterRetry, ok: st.ok, gap: st.longestGapMs, errors: st.errors };
  } finally {
    await compose('v2', ['down', '--timeout', '5']).catch(() => {});
    await database.drop().catch(() => {});
  }
}

async function run(): Promise<void> {
  const env = await startDevServer();
  const out: string[] = [];
  const say = (line: string) => {
    out.push(line);
    console.log(line);
  };
  try {
    say(`deploy benchmark — ${new Date().toISOString()}, load ${await load()}, request loop ${RATE} req/s, ${ROUNDS} rounds`);
    // (a) zero downtime, ours
    const fx = await startDeployFixture({ address: env.address, taskQueue: `bench-deploy-${randomUUID()}` }); // backups on; the timed deploys skip them
    try {
      await withWorker(env, fx, async (taskQueue) => {
        if (PARTS.includes('a')) {
          const loop = requestLoop(fx.url, RATE);
          await new Promise((res) => setTimeout(res, 1000));
          const d = await deploy(env, taskQueue, 'v2');
          await new Promise((res) => setTimeout(res, 1000));
          const st = await loop.stop();
          const guide = await guideRecreate();
          say('');
          say('(a) requests during a deploy v1 → v2 (loop on the environment URL)');
          say(`    ours, blue/green behind nginx: ${st.ok} ok, ${st.failed} failed (${st.failedAfterRetry} after one retry of the GET), longest gap ${Math.round(st.longestGapMs)} ms  (${d.outcome})  goal 0 failed, gap ≤ 100 ms: ${st.failed === 0 && st.longestGapMs <= 100 ? 'MET' : 'NOT MET'}${st.errors.length ? `  (failures: ${st.errors.join('; ')})` : ''}`);
          say(`    guide, docker-compose up -d:   ${guide.ok} ok, ${guide.failed} failed (${guide.failedAfterRetry} after one retry), longest gap ${Math.round(guide.gap)} ms${guide.errors.length ? `  (e.g. ${guide.errors.slice(0, 2).join('; ')})` : ''}`);
        } else await deploy(env, taskQueue, 'v2'); // the same starting point: v2 serving

        // (b) wall time, ours vs a plain script, alternating versions; the order of the sides alternates
        if (!PARTS.includes('b')) return;
        const ours: number[] = [];
        const plain: number[] = [];
        const oursServed: number[] = [];
        const plainServed: number[] = [];
        let lastSteps: ReleaseProgress['steps'] = [];
        let version = 'v1';
        const rounds: string[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          const l0 = await load();
          for (const side of i % 2 ? ['plain', 'ours'] : ['ours', 'plain']) {
            if (side === 'ours') {
              const r = await deploy(env, taskQueue, version);
              if (r.outcome !== 'success') throw new Error(`deploy ${version}: ${r.outcome}`);
              ours.push(r.ms);
              oursServed.push(r.servedMs);
              lastSteps = r.progress.steps;
            } else {
              const p = await plainDeploy(fx.cfg, fx, version);
              plain.push(p.ms);
              plainServed.push(p.servedMs);
            }
            version = version === 'v1' ? 'v2' : 'v1';
          }
          rounds.push(`    round ${i + 1} (load ${l0}): ours serving+verified ${s(oursServed[i] as number)}, done ${s(ours[i] as number)}; plain serving+verified ${s(plainServed[i] as number)}, done ${s(plain[i] as number)}`);
        }
        const ratio = median(ours) / median(plain);
        const servedRatio = median(oursServed) / median(plainServed);
        say('');
        say(`(b) deploy wall time (no backup, no bake), p50 of ${ROUNDS}: ours ${s(median(ours))} vs plain script ${s(median(plain))} → ${ratio.toFixed(2)}×  goal ≤ 1.1×: ${ratio <= 1.1 ? 'MET' : 'NOT MET'}`);
        say(`    serving and verified at (what the person waiting sees: the CLI returns): ours ${s(median(oursServed))} vs plain script ${s(median(plainServed))} → ${servedRatio.toFixed(2)}×  goal ≤ 1.0×: ${servedRatio <= 1.0 ? 'MET' : 'NOT MET'}`);
        for (const line of rounds) say(line);
        const took = (st: ReleaseProgress['steps'][number]) => (st.startedAt && st.finishedAt ? `${Date.parse(st.finishedAt) - Date.parse(st.startedAt)} ms` : st.state);
        say(`    ours, the last round step by step: ${lastSteps.map((st) => `${st.name} ${took(st)}`).join(', ')}`);
        say(`    ours, its switch: ${lastSteps.find((st) => st.name === 'switch')?.detail ?? '?'}`);
        say(`    plain, the last round step by step: ${lastPlainSteps}`);
        const full = await deploy(env, taskQueue, version, { skipBackup: false, bakeSeconds: 10 }); // the config's backupBeforeDeploy is on
        const stepMs = (name: string) => {
          const st = full.progress.steps.find((x) => x.name === name);
          return st?.startedAt && st.finishedAt ? Date.parse(st.finishedAt) - Date.parse(st.startedAt) : NaN;
        };
        say(`    separately, one deploy with both: pre-deploy backup (verified) ${s(stepMs('backup'))}, bake ${s(stepMs('bake'))} (configured 10 s), whole ${s(full.ms)} (${full.outcome})`);
      });
    } finally {
      await fx.teardown();
    }

    // (c) failed verify after the switch → previous version serving again
    if (PARTS.includes('c')) {
    const fx2 = await startDeployFixture({ address: env.address, taskQueue: `bench-deploy-rb-${randomUUID()}`, deploy: { backupBeforeDeploy: false, smoke: [{ path: '/api/sessions/00000000-0000-4000-8000-000000000000', status: 200 }] } });
    try {
      await withWorker(env, fx2, async (taskQueue) => {
        const samples: number[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          const seen: { t: number; v: string | undefined }[] = [];
          let stop = false;
          const poll = (async () => {
            while (!stop) {
              const r = await freshGet(`${fx2.url}/version`, 1000).catch(() => undefined);
              seen.push({ t: Date.now(), v: r?.status === 200 ? (JSON.parse(r.body) as { version: string }).version : undefined });
              await new Promise((res) => setTimeout(res, 20));
            }
          })();
          // v1 → v2 (no migration after the first round: the database stays at 2 when rejected below)
          const h = await env.client.workflow.start('deploy', { taskQueue, workflowId: `bench-rb-${randomUUID()}`, args: [{ environment: 'production', version: 'v2', requestedBy: 'bench', skipBackup: true, bakeSeconds: 0 }] });
          const gate = (async () => {
            for (let j = 0; j < 600; j++) {
              const st = await h.query<{ state: string }>('databaseRollbackStatus').catch(() => undefined);
              if (st?.state === 'open') {
                await h.signal('rejectDatabaseRollback', { by: 'bench-approver', comment: 'benchmark' });
                return;
              }
              if (st?.state === 'closed') return;
              await new Promise((res) => setTimeout(res, 100));
            }
          })();
          await h.result().catch(() => undefined);
          await gate;
          stop = true;
          await poll;
          // the failed verify: the moment its activity returned ok: false (event time in the run's history)
          const history = await h.fetchHistory();
          const ids = new Set((history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'verifyRelease').map((e) => String(e.eventId)));
          const done = (history.events ?? []).find((e) => e.activityTaskCompletedEventAttributes && ids.has(String(e.activityTaskCompletedEventAttributes.scheduledEventId)));
          const t = done?.eventTime;
          const failedAt = t ? Number(t.seconds) * 1000 + Math.floor((t.nanos ?? 0) / 1e6) : NaN;
          // serving again: the first answer after the failure from which on every answer is v1
          let backAt = 0;
          for (let k = seen.length - 1; k >= 0 && seen[k]?.v === 'v1' && (seen[k]?.t ?? 0) >= failedAt; k--) backAt = seen[k]?.t ?? 0;
          if (backAt && failedAt && seen.some((x) => x.v === 'v2')) samples.push(backAt - failedAt);
        }
        const m = median(samples);
        say('');
        say(`(c) failed verify after the switch → previous version serving again: p50 ${Math.round(m)} ms over ${samples.length} (${samples.map((x) => Math.round(x)).join(', ')} ms)  goal ≤ 5 s: ${m <= 5000 ? 'MET' : 'NOT MET'}`);
      });
    } finally {
      await fx2.teardown();
    }
    }
    // (d) a switch that fails after the reload → the previous version serving again, under the request loop
    if (PARTS.includes('d')) {
    const wrong = `v9x${process.pid}`;
    await execa('docker', ['tag', 'llmchat-app:v1', `llmchat-app:${wrong}`]);
    const fx3 = await startDeployFixture({ address: env.address, taskQueue: `bench-deploy-sw-${randomUUID()}`, deploy: { backupBeforeDeploy: false } });
    try {
      await withWorker(env, fx3, async (taskQueue) => {
        const back: number[] = [];
        const failed: number[] = [];
        const claimed: string[] = [];
        for (let i = 0; i < ROUNDS; i++) {
          const seen: { t: number; slot?: string; v?: string }[] = [];
          let stop = false;
          const poll = (async () => {
            while (!stop) {
              const r = await freshGet(`${fx3.url}/version`, 1000).catch(() => undefined);
              const slot = r?.headers['x-llmchat-slot'];
              seen.push({ t: performance.now(), ...(typeof slot === 'string' ? { slot } : {}), ...(r?.status === 200 ? { v: (JSON.parse(r.body) as { version: string }).version } : {}) });
              await new Promise((res) => setTimeout(res, 10));
            }
          })();
          const loop = requestLoop(fx3.url, RATE);
          await new Promise((res) => setTimeout(res, 500));
          const before = seen.at(-1)?.slot;
          const r = await deploy(env, taskQueue, wrong);
          await new Promise((res) => setTimeout(res, 500));
          const st = await loop.stop();
          stop = true;
          await poll;
          failed.push(st.failed);
          const reloadAt = seen.find((x) => x.slot && x.slot !== before)?.t;
          let backAt = 0;
          for (let k = seen.length - 1; k >= 0 && seen[k]?.slot === before && seen[k]?.v === 'v1' && (seen[k]?.t ?? 0) > (reloadAt ?? Infinity); k--) backAt = seen[k]?.t ?? 0;
          if (reloadAt !== undefined && backAt) back.push(backAt - reloadAt);
          claimed.push(/(\d+) ms after the reload/.exec(r.outcome)?.[1] ?? '?');
          if (!/switched back to v1/.test(r.outcome)) say(`    round ${i + 1}: ${r.outcome.slice(0, 300)}`);
        }
        const m = median(back);
        const worst = Math.max(...failed);
        say('');
        say(`(d) a switch that fails after the reload (${wrong} = v1's build) → previous version serving again through the front: p50 ${Math.round(m)} ms over ${back.length} (${back.map((x) => Math.round(x)).join(', ')} ms; the run's own check: ${claimed.join(', ')} ms), failed requests ${failed.join(', ')}  goal 0 failed, ≤ 2 s: ${worst === 0 && m <= 2000 && back.length === ROUNDS ? 'MET' : 'NOT MET'}`);
      });
    } finally {
      await fx3.teardown();
      await execa('docker', ['rmi', `llmchat-app:${wrong}`], { reject: false });
    }
    }
    say(`load at the end: ${await load()}`);
    await writeFile(path.join(tempDir('bench-deploy-out'), 'result.txt'), out.join('\n'));
  } finally {
    await env.teardown();
  }
}

run().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
