/** The nginx front of blue/green environments (src/activities/release/nginx-front.ts does the nginx work). */
import { getEnvironment, type EnvironmentConfig, type OpsConfig } from '../../common/config/index.js';
import { applyFront, configuredUpstream, freshGet, frontPid, frontSpec, type FrontSpec } from './nginx-front.js';
import type { SlotName } from './release-store.js';
import { guarded, permanent } from '../common/activity-support.js';

export function frontOf(env: EnvironmentConfig): FrontSpec {
  if (!env.deploy.front) throw permanent('this environment has no front proxy (deploy.front) configured', 'BadInput');
  const spec = frontSpec(env.deploy.stateDir as string, env.url, env.deploy.front.nginx);
  return env.deploy.front.dir ? { ...spec, prefix: env.deploy.front.dir } : spec;
}

/** Waits until the front, over fresh connections, answers from the expected version. */
async function servedBy(env: EnvironmentConfig, version: string, timeoutMs: number): Promise<number> {
  const started = Date.now();
  let last = '';
  let streak = 0;
  while (Date.now() - started < timeoutMs) {
    try {
      const r = await freshGet(new URL(env.deploy.versionPath, env.url).toString(), 2000);
      const v = r.status === 200 ? (JSON.parse(r.body) as { version?: unknown }).version : undefined;
      // Right after a reload an old worker may still take a new connection: wait for several answers in a row.
      streak = v === version ? streak + 1 : 0;
      if (streak >= 5) return Date.now() - started;
      last = `HTTP ${r.status}, version ${JSON.stringify(v)}`;
      if (streak > 0) continue;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`the front at ${env.url} did not serve ${version} within ${timeoutMs} ms (last: ${last})`);
}

export function createFrontActivities(cfg: OpsConfig) {
  return {
    /**
     * Points the front at a slot (starting nginx if it is not running) and waits until it serves the slot's
     * version. Idempotent: switching to the slot it already serves only reloads.
     */
    async switchFront(input: { environment: string; slot: SlotName; port: number; version: string }): Promise<{ action: 'started' | 'reloaded'; servedAfterMs: number }> {
      return guarded(async () => {
        const env = getEnvironment(cfg, input.environment);
        const action = await applyFront(frontOf(env), input.port, input.slot);
        const servedAfterMs = await servedBy(env, input.version, 15_000);
        return { action, servedAfterMs };
      });
    },

    /** Whether the front runs and where its config points. */
    async frontStatus(input: { environment: string }): Promise<{ running: boolean; pid?: number; upstream?: { port: number; slot: string } }> {
      return guarded(async () => {
        const env = getEnvironment(cfg, input.environment);
        if (!env.deploy.front) return { running: false };
        const spec = frontOf(env);
        const pid = frontPid(spec);
        const upstream = await configuredUpstream(spec);
        return { running: pid !== undefined, ...(pid ? { pid } : {}), ...(upstream ? { upstream } : {}) };
      });
    },
  };
}
