/**
 * `llmchat-ops up|down --env E`: brings an environment's app up (or down) outside any workflow — for the demo
 * stack and for adopting an existing installation. `up` starts the release the records name as current (so a
 * later deploy is never undone by it) or, with no record yet, the given version; for blue/green it also stops an
 * app still running in place (adoption: a one-time restart) and starts the front. Idempotent.
 */
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { composeDownSlot, createDockerActivities, projectContainers, slotProject } from './docker.js';
import { waitHealthy } from './release-checks.js';
import { frontOf } from './front.js';
import { applyFront, freshGet, stopFront } from './nginx-front.js';
import { addHistory, loadReleases, updateReleases, type SlotName } from './release-store.js';
import { describeRecord, loadSwitchRecord, saveSwitchRecord } from './checked-switch.js';

export async function upEnvironment(cfg: OpsConfig, environment: string, version: string, log: (line: string) => void): Promise<{ version: string; slot: SlotName; url: string }> {
  const env = getEnvironment(cfg, environment);
  const docker = createDockerActivities(cfg);
  const state = await loadReleases(env, environment);
  const blueGreen = env.deploy.strategy === 'blue-green';
  const recorded = state.current && (state.current.slot === 'main') === !blueGreen ? state.current : null;
  const slot: SlotName = recorded?.slot ?? (blueGreen ? 'blue' : 'main');
  const serve = recorded?.version ?? version;
  const port = slot === 'main' ? Number(new URL(env.url).port || 80) : (env.deploy.front?.slots[slot] as number);
  if (blueGreen) {
    const legacy = await projectContainers(env, slotProject(env, 'main'));
    if (legacy.length) {
      log(`adopting: stopping the in-place app (compose project ${env.compose.project}) so the front can take ${env.url}`);
      await composeDownSlot(env, 'main', serve, Number(new URL(env.url).port || 80));
    }
  }
  log(`app ${serve} in slot ${slot} (127.0.0.1:${port})`);
  await docker.startSlot({ environment, version: serve, slot, port });
  const ready = await waitHealthy(env, { base: `http://127.0.0.1:${port}`, timeoutMs: 60_000, successes: 1 });
  if (!ready.healthy) throw new Error(`${serve} did not become healthy on 127.0.0.1:${port} within 60 s: ${ready.lastProblem}`);
  if (blueGreen) {
    await applyFront(frontOf(env), port, slot);
    const deadline = Date.now() + 15_000;
    for (;;) {
      const r = await freshGet(new URL('/health', env.url).toString(), 2000).catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`the front at ${env.url} does not answer /health with 200`);
      await new Promise((res) => setTimeout(res, 100));
    }
    log(`front (nginx) on ${env.url} → slot ${slot}`);
    const pending = await loadSwitchRecord(env, environment);
    if (pending) {
      await saveSwitchRecord(env, environment, null);
      log(`${describeRecord(pending)}; the front is back on the recorded release ${serve} (slot ${slot}) and answers healthy`);
    }
  }
  if (!recorded) {
    const level = await docker.migrationLevel({ environment, version: serve }).catch(() => null);
    const now = new Date().toISOString();
    await updateReleases(env, environment, (s) => {
      s.current = { version: serve, image: env.deploy.image.replace('{version}', serve), slot, port, migrationLevel: level, deployedAt: now, requestedBy: 'llmchat-ops up', workflowId: 'up', runId: `up-${now}` };
      addHistory(s, { runId: `up-${now}`, workflowId: 'up', operation: 'bootstrap', version: serve, fromVersion: null, requestedBy: 'llmchat-ops up', startedAt: now, finishedAt: now, durationMs: 0, outcome: 'success', migrationBefore: level, migrationAfter: level, backupId: null, detail: `brought up by llmchat-ops up (slot ${slot})` });
    });
    log(`recorded ${serve} as the current release of ${environment} (migration level ${level ?? 'unknown'})`);
  }
  return { version: serve, slot, url: env.url };
}

/** Stops every app slot and the front of an environment; the release records stay. */
export async function downEnvironment(cfg: OpsConfig, environment: string, log: (line: string) => void): Promise<void> {
  const env = getEnvironment(cfg, environment);
  for (const slot of ['blue', 'green', 'main'] as const) {
    const port = slot === 'main' ? Number(new URL(env.url).port || 80) : (env.deploy.front?.slots[slot] ?? 1);
    const removed = await composeDownSlot(env, slot, 'v0', port);
    if (removed) log(`stopped ${slotProject(env, slot)} (${removed} container(s))`);
  }
  if (env.deploy.front) {
    await stopFront(frontOf(env));
    log('front stopped');
  }
}
