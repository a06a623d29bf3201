/**
 * Switches that always leave a serving app (issue 15, point 1), on the real dev server, Docker engine, nginx front
 * and PostgreSQL, each under a request loop through the front: the front is switched to a new slot and the switch
 * fails after the reload — an image that reports another version, nginx refusing the reload, the new slot dying at
 * the switch — and each time the front goes back at once to the slot that served before, is checked through the
 * front, and only then is the new slot stopped: no failed request, the previous version serving, and the outcome,
 * the release record and the alert saying what happened. The same for a rollback. (The worker killed between the
 * reload and the check: test/deploy-crash.test.ts.)
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { projectContainers, slotProject } from '../src/activities/release/docker.js';
import { getEnvironment } from '../src/common/config/index.js';
import { configuredUpstream, frontSpec } from '../src/activities/release/nginx-front.js';
import { readReleases } from '../src/activities/release/release-store.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import type { ReleaseProgress } from '../src/workflows/release/shared.js';
import { failureOf, requestLoop, servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { nginxStandIn } from './support/nginx-stand-in.js';
import { tempDir } from './support/services.js';
import { alertReceiver } from './support/temporal.js';

const T = { timeout: 300_000 };

describe('switches that fall back (blue/green behind nginx, real Docker)', { timeout: 1_800_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  let sink: Awaited<ReturnType<typeof alertReceiver>>;
  let nginx: Awaited<ReturnType<typeof nginxStandIn>>;
  const taskQueue = `test-deploy-switch-${randomUUID()}`;
  // v1's build under another name (reports v1), and a rebuild of v1 that reports its own name (a good release)
  const wrong = `sw${process.pid}`;
  const good = `ok${process.pid}`;
  const start = (type: 'deploy' | 'rollback', input: unknown) =>
    env.client.workflow.start<(i: unknown) => Promise<DeployResult>>(type, { taskQueue, workflowId: `${type}-${randomUUID()}`, args: [input] });
  const production = () => getEnvironment(fx.cfg, 'production');
  const containersOf = async (slot: 'blue' | 'green') => (await projectContainers(production(), slotProject(production(), slot))).map((c) => c.state);
  const records = () => readReleases(production().deploy.stateDir as string, 'production');
  const frontSlot = async () => (await configuredUpstream(frontSpec(production().deploy.stateDir as string, fx.url, 'nginx')))?.slot;

  before(async () => {
    await execa('docker', ['tag', 'llmchat-app:v1', `llmchat-app:${wrong}`]);
    const ctx = tempDir('switch-image');
    await writeFile(path.join(ctx, 'build-info.json'), JSON.stringify({ version: good, maxMigration: 1, flags: {} }));
    await writeFile(path.join(ctx, 'Dockerfile'), 'FROM llmchat-app:v1\nCOPY build-info.json /app/build-info.json\n');
    await execa('docker', ['build', '--quiet', '--tag', `llmchat-app:${good}`, ctx], { env: { DOCKER_BUILDKIT: '0' } });
    nginx = await nginxStandIn(tempDir('switch-nginx'));
    stack = await startDeployStack({ taskQueue, alerts: true, nginx: nginx.bin, deploy: { backupBeforeDeploy: false } });
    ({ env, fx } = stack);
    sink = stack.sink!;
  });

  after(async () => {
    await stack?.stop();
    await execa('docker', ['rmi', `llmchat-app:${wrong}`, `llmchat-app:${good}`], { reject: false });
  });

  /** A deploy or rollback whose switch fails, under a request loop through the front; what it ended with. */
  async function failedSwitch(type: 'deploy' | 'rollback', version: string, serving: string, servingSlot: 'blue' | 'green') {
    assert.equal(await servingVersion(fx.url), serving);
    const loop = requestLoop(fx.url, 50);
    const t0 = Date.now();
    const h = await start(type, { environment: 'production', version, requestedBy: 'alice', ...(type === 'deploy' ? { bakeSeconds: 0 } : {}) });
    const f = await failureOf(h.result());
    const took = Date.now() - t0;
    const stats = await loop.stop();
    assert.equal(stats.failed, 0, `failed requests during the failed switch: ${stats.errors.join(', ')}`);
    assert.ok(stats.ok > 50, `the loop ran (${stats.ok} ok)`);
    assert.equal(await servingVersion(fx.url), serving, 'the previous version serves again');
    assert.equal(await frontSlot(), servingSlot, 'the front points at the slot that served before');
    const other = servingSlot === 'blue' ? 'green' : 'blue';
    assert.deepEqual(await containersOf(other), [], 'the new slot was stopped (after the front was back)');
    assert.deepEqual(await containersOf(servingSlot), ['running']);
    const p = await h.query<ReleaseProgress>('progress');
    assert.equal(p.outcome, 'app-rolled-back', `outcome: ${p.outcome}; ${p.message}`);
    const history = await h.fetchHistory();
    const switches = (history.events ?? []).filter((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'switchFrontChecked');
    assert.equal(switches.length, 1, 'the switch ran once');
    const attempts = (history.events ?? []).filter((e) => e.activityTaskStartedEventAttributes && switches.some((s) => String(s.eventId) === String(e.activityTaskStartedEventAttributes?.scheduledEventId)));
    assert.deepEqual(attempts.map((e) => e.activityTaskStartedEventAttributes?.attempt), [1], 'never retried with the unverified build serving');
    const rec = await records();
    assert.equal(rec.current?.version, serving);
    assert.equal(rec.lease, null);
    assert.equal(rec.history.at(-1)?.outcome, 'app-rolled-back');
    assert.equal(rec.history.at(-1)?.detail, p.message);
    assert.doesNotMatch(f.message, /nothing was changed|never switched/);
    const alert = sink.received.find((r) => String(r.body.title).includes(version) && /failed/.test(String(r.body.type)) && String(r.body.message) === f.message);
    assert.ok(alert, `the critical alert says what happened: ${sink.received.map((r) => r.body.message).join(' | ')}`);
    console.log(`${type} ${version}: ${stats.ok} requests ok, ${stats.failed} failed, ${took} ms; ${f.message}`);
    return { f, took };
  }

  it('an image that reports another version: switched back at once, 0 failed requests, the record says what happened', T, async () => {
    const { f, took } = await failedSwitch('deploy', wrong, 'v1', 'blue');
    assert.equal(f.type, 'DeployFailed');
    assert.match(f.message, new RegExp(`switched the front to ${wrong} \\(slot green\\) at \\S+Z, it served v1's build`));
    assert.match(f.message, /switched back to v1 \(slot blue\) at \S+Z, checked through the front/);
    assert.match(f.message, /0 requests failed at the front/);
    assert.ok(took < 60_000, `no 90 s of retries (${took} ms)`);
  });

  it('nginx refuses the reload: the front is put back and checked, 0 failed requests', T, async () => {
    await nginx.mode('refuse');
    const { f } = await failedSwitch('deploy', good, 'v1', 'blue');
    assert.match(f.message, new RegExp(`the reload of the front to ${good} \\(slot green\\) failed at \\S+Z: .*Operation not permitted`));
    assert.match(f.message, /switched back to v1 \(slot blue\) at \S+Z, checked through the front/);
  });

  it('the new slot dies at the switch: the front falls back and goes back, 0 failed requests', T, async () => {
    await nginx.mode(`kill-new ${fx.project}`);
    const { f } = await failedSwitch('deploy', good, 'v1', 'blue');
    assert.match(f.message, new RegExp(`switched the front to ${good} \\(slot green\\) at \\S+Z, slot green did not answer through the front`));
    assert.match(f.message, /switched back to v1 \(slot blue\) at \S+Z, checked through the front/);
  });

  it('a rollback whose switch fails the same way puts the serving version back', T, async () => {
    const ok = await start('deploy', { environment: 'production', version: good, requestedBy: 'alice', bakeSeconds: 0 });
    assert.equal((await ok.result()).outcome, 'success');
    assert.equal(await servingVersion(fx.url), good);
    const { f } = await failedSwitch('rollback', wrong, good, 'green');
    assert.equal(f.type, 'RollbackFailed');
    assert.match(f.message, new RegExp(`switched the front to ${wrong} \\(slot blue\\) at \\S+Z, it served v1's build`));
    assert.match(f.message, new RegExp(`switched back to ${good} \\(slot green\\) at \\S+Z`));
  });
});

describe('recreate in place: a `compose up -d` that fails part-way is recorded as it left the app', { timeout: 600_000 }, () => {
  let stack: DeployStack;
  const taskQueue = `test-deploy-recreate-${randomUUID()}`;
  const broken = `bad${process.pid}`;

  before(async () => {
    // v1 with a file at /var/log where compose mounts the log directory (/var/log/llmchat): its migration runner works
    // (no mount), but the container compose creates cannot start — after the running one was stopped
    const ctx = tempDir('switch-broken-image');
    await writeFile(path.join(ctx, 'log'), 'not a directory\n');
    await writeFile(
      path.join(ctx, 'Dockerfile'),
      ['FROM llmchat-app:v1 AS v1', 'FROM scratch', ...['app', 'etc', 'lib', 'lib64', 'tmp', 'usr'].map((d) => `COPY --from=v1 /${d} /${d}`), 'COPY log /var/log',
        'ENV PATH=/usr/local/bin:/usr/bin:/bin NODE_ENV=production', 'WORKDIR /app', 'CMD ["node", "src/server.js"]', ''].join('\n'),
    );
    await execa('docker', ['build', '--quiet', '--tag', `llmchat-app:${broken}`, ctx], { env: { DOCKER_BUILDKIT: '0' } });
    stack = await startDeployStack({ taskQueue, strategy: 'recreate', deploy: { backupBeforeDeploy: false } });
  });

  after(async () => {
    await stack?.stop();
    await execa('docker', ['rmi', `llmchat-app:${broken}`], { reject: false });
  });

  it('says which state the container was left in, puts the previous version back, outcome app-rolled-back', T, async () => {
    const { env, fx } = stack;
    assert.equal(await servingVersion(fx.url), 'v1');
    const h = await env.client.workflow.start('deploy', { taskQueue, workflowId: `deploy-${randomUUID()}`, args: [{ environment: 'production', version: broken, requestedBy: 'alice', bakeSeconds: 0 }] });
    const f = await failureOf(h.result());
    assert.equal(f.type, 'DeployFailed');
    assert.doesNotMatch(f.message, /nothing was changed/);
    assert.match(f.message, new RegExp(`compose up -d of ${broken} left [^;]*container \\S+ (created|exited) with image llmchat-app:${broken}[^;]*; v1 put back: v1 serves again`));
    const p = await h.query<ReleaseProgress>('progress');
    assert.equal(p.outcome, 'app-rolled-back');
    assert.equal(await servingVersion(fx.url), 'v1');
    const rec = await readReleases(getEnvironment(fx.cfg, 'production').deploy.stateDir as string, 'production');
    assert.equal(rec.history.at(-1)?.outcome, 'app-rolled-back');
    assert.equal(rec.history.at(-1)?.detail, p.message);
    console.log(f.message);
  });
});
