/**
 * The deploy plan refuses what cannot work (issue 15, point 8), on the real dev server, Docker engine, stand-in
 * images, nginx front and PostgreSQL: a version whose image is absent and can be neither built nor pulled is
 * refused at planning — before the pre-deploy backup, nothing changed, a warning alert; a hand edit of the front's
 * nginx config is reported in the plan, the outcome and an alert before the switch rewrites it, and kept.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { readdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { projectContainers, slotProject } from '../src/activities/release/docker.js';
import { getEnvironment } from '../src/common/config/index.js';
import { readReleases } from '../src/activities/release/release-store.js';
import type { DeployResult } from '../src/workflows/release/deploy.js';
import type { ReleaseProgress } from '../src/workflows/release/shared.js';
import { failureOf, levelOf, servingVersion, startDeployStack, type DeployFixture, type DeployStack } from './support/deploy-fixture.js';

const T = { timeout: 300_000 };
/** What the deploy result says about the front's config (as `DeployResult` declares it after this change). */
type Planned = DeployResult & { frontConfig?: { state: string } };

describe('deploy plan: refuses what cannot work, reports a hand-edited front', { timeout: 900_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: DeployFixture;
  let stack: DeployStack;
  let sink: NonNullable<DeployStack['sink']>;
  const taskQueue = `test-deploy-plan-${randomUUID()}`;
  const start = (input: unknown) =>
    env.client.workflow.start<(i: unknown) => Promise<Planned>>('deploy', { taskQueue, workflowId: `deploy-${randomUUID()}`, args: [input] });
  const prod = () => getEnvironment(fx.cfg, 'production');
  const containerIds = async () =>
    (await Promise.all((['blue', 'green'] as const).map((s) => projectContainers(prod(), slotProject(prod(), s))))).flat().map((c) => `${c.id} ${c.state}`).sort();
  const frontDir = () => path.join(prod().deploy.stateDir as string, 'front');
  const alertsOf = (workflowId: string) => sink.received.filter((r) => String(r.body.id ?? '').startsWith(`${workflowId}/`));

  before(async () => {
    stack = await startDeployStack({ taskQueue, alerts: true });
    ({ env, fx } = stack);
    sink = stack.sink!;
  });

  after(async () => {
    await stack?.stop();
  });

  it('a version whose image is absent and cannot be pulled is refused at planning: no backup, nothing changed, a warning alert', T, async () => {
    const backups = prod().paths.backups;
    const backupsBefore = existsSync(backups) ? await readdir(backups) : [];
    const containersBefore = await containerIds();
    const recordsBefore = await readReleases(prod().deploy.stateDir as string, 'production');
    const levelBefore = await levelOf(fx.database.name);
    assert.equal(await servingVersion(fx.url), 'v1');

    const h = await start({ environment: 'production', version: 'v404', requestedBy: 'alice', bakeSeconds: 0 });
    const f = await failureOf(h.result());
    assert.equal(f.type, 'DeployRefused', f.message);
    assert.match(f.message, /refused at planning/);
    assert.match(f.message, /llmchat-app:v404/);
    assert.match(f.message, /no backup was taken; nothing was changed/);

    // before the backup: no child workflow was ever started, no backup directory or manifest written
    const events = (await h.fetchHistory()).events ?? [];
    assert.ok(!events.some((e) => e.startChildWorkflowExecutionInitiatedEventAttributes), 'no backup (child workflow) was started');
    const scheduled = events.map((e) => e.activityTaskScheduledEventAttributes?.activityType?.name).filter(Boolean);
    assert.ok(!scheduled.some((n) => /migrat|startSlot|switchFront|runTests/.test(n as string)), `only planning ran: ${scheduled.join(', ')}`);
    assert.deepEqual(existsSync(backups) ? await readdir(backups) : [], backupsBefore, 'no backup was written');

    // nothing changed: same containers, same version served, same schema level
    assert.deepEqual(await containerIds(), containersBefore, 'no container changed');
    assert.equal(await servingVersion(fx.url), 'v1');
    assert.equal(await levelOf(fx.database.name), levelBefore);

    const p = await h.query<ReleaseProgress>('progress');
    assert.equal(p.outcome, 'failed-before-change');
    assert.deepEqual(p.steps.slice(0, 3).map((s) => [s.name, s.state]), [['plan', 'done'], ['image', 'failed'], ['backup', 'pending']]);

    const records = await readReleases(prod().deploy.stateDir as string, 'production');
    assert.deepEqual(records.current, recordsBefore.current);
    assert.equal(records.lease, null, 'the release lease was freed');
    assert.equal(records.history.at(-1)?.version, 'v404');
    assert.equal(records.history.at(-1)?.outcome, 'failed-before-change');
    assert.equal(records.history.at(-1)?.backupId, null);

    const alerts = alertsOf(h.workflowId);
    assert.deepEqual(alerts.map((a) => [a.body.type, a.body.severity]), [['deploy_refused', 'warning']], JSON.stringify(alerts.map((a) => a.body)));
    assert.match(String(alerts[0]?.body.message), /llmchat-app:v404/);
    console.log(`refused: ${f.message}`);
  });

  it('a hand edit of the front config is reported in the plan, the outcome and an alert before the switch rewrites it, and kept', T, async () => {
    const conf = path.join(frontDir(), 'nginx.conf');
    const written = await readFile(conf, 'utf8');
    const edited = written.replace('http {\n', 'http {\n  # hand edit by bob during the incident: bigger buffers\n  proxy_buffers 16 16k;\n');
    assert.notEqual(edited, written);
    await writeFile(conf, edited);

    const h = await start({ environment: 'production', version: 'v2', requestedBy: 'alice', skipBackup: true, bakeSeconds: 0 });
    const result = await h.result();
    assert.equal(result.outcome, 'success');
    assert.equal(await servingVersion(fx.url), 'v2');

    // kept before it was overwritten
    const kept = (await readdir(frontDir())).filter((n) => n.startsWith('nginx.conf.hand-edit-'));
    assert.equal(kept.length, 1, kept.join(', '));
    assert.equal(await readFile(path.join(frontDir(), kept[0] as string), 'utf8'), edited);
    const now = await readFile(conf, 'utf8');
    assert.ok(!now.includes('hand edit by bob'), 'the switch wrote the front config afresh');

    // the plan
    const p = await h.query<ReleaseProgress>('progress');
    const plan = p.steps.find((s) => s.name === 'plan');
    assert.match(plan?.detail ?? '', /front config edited by hand/);
    assert.ok(plan?.detail?.includes(kept[0] as string), plan?.detail);
    // the outcome (progress, result, release record)
    assert.match(p.message ?? '', /front config had been edited by hand.*kept as .*nginx\.conf\.hand-edit-.*rewritten by the switch/);
    assert.equal(result.frontConfig?.state, 'edited');
    const records = await readReleases(prod().deploy.stateDir as string, 'production');
    assert.match(records.history.at(-1)?.detail ?? '', /front config had been edited by hand/);
    // the alert, before the switch wrote the file
    const alerts = alertsOf(h.workflowId);
    const alert = alerts.find((a) => a.body.type === 'front_config_edited');
    assert.ok(alert, JSON.stringify(alerts.map((a) => a.body)));
    assert.equal(alert.body.severity, 'warning');
    assert.ok(String(alert.body.message).includes(kept[0] as string), String(alert.body.message));
    const sw = p.steps.find((s) => s.name === 'switch');
    console.log(`plan: ${plan?.detail}\noutcome: ${p.message}\nalert: ${alert.body.message}`);
    assert.ok(alert.at <= Date.parse(sw?.startedAt ?? ''), `alert at ${new Date(alert.at).toISOString()}, switch started ${sw?.startedAt}`);

    // the next deploy finds the config as it was written: nothing reported
    const h2 = await start({ environment: 'production', version: 'v1', requestedBy: 'alice', skipBackup: true, bakeSeconds: 0 });
    const r2 = await h2.result();
    assert.equal(r2.outcome, 'success');
    assert.equal(r2.frontConfig?.state, 'as-written');
    assert.ok(!alertsOf(h2.workflowId).some((a) => a.body.type === 'front_config_edited'));
    assert.equal((await readdir(frontDir())).filter((n) => n.startsWith('nginx.conf.hand-edit-')).length, 1);
  });
});
