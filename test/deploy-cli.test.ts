/**
 * The release commands of `llmchat-ops` and the `temporal` CLI, end to end against a worker, the real dev server,
 * Docker, nginx and PostgreSQL: bad versions refused before anything starts, deploy with progress and exit code,
 * a second deploy refused naming the running one, status, releases, approve-db-rollback with nothing waiting,
 * rollback.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';
import { ROOT, waitFor } from './support/services.js';
import { temporalBinary } from './support/temporal.js';

const T = { timeout: 300_000 };

describe('llmchat-ops deploy / rollback / status / releases (and temporal workflow start)', { timeout: 1_200_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  const taskQueue = `test-deploy-cli-${randomUUID()}`;
  const cli = (user: string, ...args: string[]) =>
    execa('node', ['bin/llmchat-ops.js', '--config', fx.configFile, ...args], { cwd: ROOT, reject: false, env: { LLMCHAT_OPS_OPERATOR: user } });
  const releaseRunExists = async () => {
    const r = await execa(temporalBinary(), ['workflow', 'describe', '--workflow-id', 'llmchat-release-production', '--address', env.address], { reject: false });
    return r.exitCode === 0;
  };

  before(async () => {
    stack = await startDeployStack({ taskQueue, deploy: { backupBeforeDeploy: false } });
    ({ env, fx } = stack);
  });

  after(async () => {
    await stack?.stop();
  });

  it('refuses hostile versions before anything starts', T, async () => {
    for (const version of ['v1; rm -rf /', '$(reboot)', '../x', 'v1\n--exec', 'x'.repeat(10_000), '--', ' ']) {
      const r = await cli('alice', 'deploy', '--env', 'production', '--', version);
      assert.equal(r.exitCode, 1, `${JSON.stringify(version).slice(0, 40)}: ${r.stderr}`);
      assert.match(r.stderr, /Expected `version` to be a release name/);
    }
    // As options they are options: --help prints the usage, -rf is an unknown option; neither deploys.
    const help = await cli('alice', 'deploy', '--help', '--env', 'production');
    assert.match(help.stdout, /^Usage: llmchat-ops deploy/m);
    const rf = await cli('alice', 'deploy', '-rf', '--env', 'production');
    assert.equal(rf.exitCode, 1);
    assert.match(rf.stderr, /unknown option '-rf'/);
    const unknown = await cli('alice', 'deploy', 'v2', '--env', 'nowhere');
    assert.equal(unknown.exitCode, 1);
    assert.match(unknown.stderr, /Unknown environment "nowhere"/);
    assert.equal(await releaseRunExists(), false, 'no release workflow was started');
    assert.equal(await servingVersion(fx.url), 'v1');
  });

  it('deploy v2 follows the steps and exits 0; status and releases show it', T, async () => {
    const r = await cli('alice', 'deploy', 'v2', '--env', 'production', '--bake', '0');
    assert.equal(r.exitCode, 0, r.stderr);
    assert.match(r.stderr, /started llmchat-release-production/);
    assert.match(r.stderr, /ok {3}switch: v2 healthy/);
    // Done when v2 serves, verified (issue 18); the old slot's drain and the records follow in the same run.
    assert.match(r.stdout, /serving: v2 serves production \(was v1\), verified at /);
    assert.equal(await servingVersion(fx.url), 'v2');
    const status = await cli('bob', 'status', '--env', 'production', '--follow');
    assert.equal(status.exitCode, 0, status.stderr);
    assert.match(status.stdout, /^deploy production: v1 → v2, requested by alice/);
    assert.match(status.stdout, /ok {3}health-gate/);
    assert.match(status.stdout, /outcome: success — v2 serves production \(was v1\)/);
    const releases = await cli('bob', 'releases', '--env', 'production');
    assert.equal(releases.exitCode, 0, releases.stderr);
    assert.match(releases.stdout, /^current: {2}v2 \(slot green/);
    assert.match(releases.stdout, /deploy {5}v1 → v2 +alice +success/);
    const nothing = await cli('bob', 'approve-db-rollback', '--env', 'production');
    assert.equal(nothing.exitCode, 1);
    assert.match(nothing.stderr, /no database rollback of production is waiting for a decision/);
  });

  it('a second deploy while one runs is refused naming the running one; v3 fails before the switch (exit 1)', T, async () => {
    const first = cli('alice', 'deploy', 'v3', '--env', 'production', '--bake', '0');
    await waitFor('the v3 deploy runs', releaseRunExists, 60_000);
    await waitFor('the v3 deploy is the running one', async () => {
      const r = await execa(temporalBinary(), ['workflow', 'describe', '--workflow-id', 'llmchat-release-production', '--address', env.address, '--output', 'json'], { reject: false });
      return r.stdout.includes('RUNNING');
    }, 60_000);
    const second = await cli('bob', 'deploy', 'v1', '--env', 'production');
    assert.equal(second.exitCode, 1);
    assert.match(second.stderr, /a deploy of v3 to production is already running \(workflow llmchat-release-production, requested by alice, started 20\d\d-/);
    const done = await first;
    assert.equal(done.exitCode, 1, done.stderr);
    assert.match(done.stderr, /deploy failed-before-change: .*v3 did not become healthy/);
    assert.equal(await servingVersion(fx.url), 'v2');
  });

  it('`temporal workflow execute --type deploy` with a hostile version fails with BadInput; rollback goes back to v1', T, async () => {
    const bad = await execa(temporalBinary(), [
      'workflow', 'execute', '--type', 'deploy', '--task-queue', taskQueue, '--workflow-id', `deploy-bad-${randomUUID()}`,
      '--input', '{"environment":"production","version":"$(reboot)"}', '--address', env.address,
    ], { reject: false });
    assert.notEqual(bad.exitCode, 0);
    assert.match(bad.stdout + bad.stderr, /BadInput|Expected `version` to be a release name/);
    const rb = await cli('carol', 'rollback', '--env', 'production');
    assert.equal(rb.exitCode, 0, rb.stderr);
    assert.match(rb.stdout, /outcome: success — v1 serves production again \(was v2\)/);
    assert.equal(await servingVersion(fx.url), 'v1');
  });
});
