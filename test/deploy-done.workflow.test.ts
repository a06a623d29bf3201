/**
 * A deploy is done for the person waiting when the new version serves and is verified (issue 18): `llmchat-ops
 * deploy` (the `servingVerified` update) returns then, while the same run drains and stops the old slot and writes
 * the records. A failure after that moment (the old slot's stop) never rolls the app back: it is recorded in the
 * release's outcome and the release history, and alerted. Real dev server, Docker, nginx front, PostgreSQL.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { projectContainers, slotProject } from '../src/activities/release/docker.js';
import { getEnvironment } from '../src/common/config/index.js';
import { readReleases } from '../src/activities/release/release-store.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import type { ServingAnswer } from '../src/workflows/release/shared.js';
import type { ReleaseProgress } from '../src/workflows/release/shared.js';
import { servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { ROOT } from './support/services.js';

const T = { timeout: 120_000 };

describe('a deploy is done when the new version serves, verified; the drain follows (issue 18)', { timeout: 900_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  const taskQueue = `test-deploy-done-${randomUUID()}`;
  const production = () => getEnvironment(fx.cfg, 'production');
  const containersOf = async (slot: 'blue' | 'green') => (await projectContainers(production(), slotProject(production(), slot))).map((c) => c.state);
  const records = () => readReleases(production().deploy.stateDir as string, 'production');
  const cli = (user: string, ...args: string[]) =>
    execa('node', ['bin/llmchat-ops.js', '--config', fx.configFile, ...args], { cwd: ROOT, reject: false, env: { LLMCHAT_OPS_OPERATOR: user } });

  before(async () => {
    // A long drain, so "done before the drain finished" is not a matter of milliseconds.
    stack = await startDeployStack({ taskQueue, alerts: true, drain: '6s', deploy: { backupBeforeDeploy: false } });
    ({ env, fx } = stack);
  });

  after(async () => {
    await stack?.stop();
  });

  it('`llmchat-ops deploy` returns (exit 0) when v2 serves, verified, while the old slot still drains; then it is stopped and recorded', T, async () => {
    const r = await cli('alice', 'deploy', 'v2', '--env', 'production', '--bake', '0');
    const returnedAt = Date.now();
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stdout, /serving: v2 serves production \(was v1\), verified at 20\d\d-.*the old slot drains and stops/);
    assert.equal(await servingVersion(fx.url), 'v2');
    const h = env.client.workflow.getHandle('llmchat-release-production');
    const running = await h.describe();
    assert.equal(running.status.name, 'RUNNING', 'the run goes on after the CLI returned');
    const during = await h.query<ReleaseProgress>('progress');
    assert.ok(during.servingAt, 'the progress says since when it serves');
    assert.equal(during.steps.find((s) => s.name === 'drain')?.state, 'running', 'the drain is still running');
    assert.deepEqual(await containersOf('blue'), ['running'], 'the old slot is still up, draining');

    const result = (await h.result()) as DeployResult;
    assert.equal(result.outcome, 'success');
    const drain = result.progress.steps.find((s) => s.name === 'drain');
    assert.equal(drain?.state, 'done', JSON.stringify(drain));
    assert.ok(Date.parse(drain?.finishedAt as string) > returnedAt, 'the drain finished after the CLI had returned');
    assert.ok(Date.parse(result.progress.servingAt as string) < returnedAt);
    assert.deepEqual(await containersOf('blue'), [], 'the old slot was stopped');
    const st = await records();
    assert.equal(st.current?.version, 'v2');
    assert.equal(st.lease, null);
    assert.equal(st.history.at(-1)?.outcome, 'success');
    // status after the end: the outcome, exit 0
    const status = await cli('bob', 'status', '--env', 'production');
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, /ok {3}drain +slot blue \(v1\) stopped \d+ ms after the switch/);
  });

  it('a failure after done (the old slot cannot be stopped) keeps the new version, is recorded truthfully and alerted', T, async () => {
    const h = await env.client.workflow.start<(i: unknown) => Promise<DeployResult>>('deploy', {
      taskQueue,
      workflowId: `deploy-${randomUUID()}`,
      args: [{ environment: 'production', version: 'v1', requestedBy: 'alice', bakeSeconds: 0 }],
    });
    const served = await h.executeUpdate<ServingAnswer, []>('servingVerified', { args: [] });
    assert.equal(served.serving, true, JSON.stringify(served));
    assert.equal(served.progress.steps.find((s) => s.name === 'drain')?.state, 'running');
    // Within the drain: compose can no longer find the environment's compose file, so the old slot's stop fails
    // (its retries included) — a real failure of the real tool.
    const file = production().compose.file;
    production().compose.file = path.join(fx.dir, 'gone', 'docker-compose.yml');
    let result: DeployResult;
    try {
      result = await h.result();
    } finally {
      production().compose.file = file;
    }
    assert.equal(result.outcome, 'success', 'v1 serves, verified: the deploy is not rolled back');
    assert.equal(await servingVersion(fx.url), 'v1');
    const drain = result.progress.steps.find((s) => s.name === 'drain');
    assert.equal(drain?.state, 'failed', JSON.stringify(drain));
    const said = result.progress.message ?? '';
    assert.match(said, /^v1 serves production \(was v2\); stopping the old slot green \(v2\) after the drain FAILED: [\s\S]*; it is left running/);
    assert.deepEqual(await containersOf('green'), ['running'], 'the message is true: the old slot runs');
    const st = await records();
    assert.equal(st.current?.version, 'v1');
    assert.equal(st.lease, null);
    assert.equal(st.history.at(-1)?.outcome, 'success');
    assert.equal(st.history.at(-1)?.detail, said, 'the release history says the same');
    const alert = stack.sink?.received.find((a) => a.body.type === 'deploy_cleanup_failed');
    assert.ok(alert, `alerted: ${stack.sink?.received.map((a) => a.body.type).join(', ')}`);
    assert.equal(alert.body.message, said);
    assert.match(String(alert.body.title), /serves, but the old slot was not stopped/);
  });
});
