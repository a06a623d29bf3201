/**
 * HTTP checks of a release: readiness of a slot before the switch, the health gate through the front after it
 * (with the container's own health from Docker), the version and smoke checks of verify, and /metrics samples
 * for the bake.
 */
import { Context } from '@temporalio/activity';
import { getEnvironment, type EnvironmentConfig, type OpsConfig } from '../../common/config/index.js';
import { parseAppMetrics, type AppMetricsSample } from './metrics.js';
import { freshGet } from './nginx-front.js';
import type { SlotName } from './release-store.js';
import { ENDPOINTS } from '../../common/health.js';
import { guarded, permanent, progress } from '../common/activity-support.js';
import { projectContainers, slotProject } from './docker.js';

export interface HealthWaitResult {
  healthy: boolean;
  elapsedMs: number;
  attempts: number;
  /** Why the last attempt was not healthy. */
  lastProblem?: string;
}

async function probeOnce(env: EnvironmentConfig, base: string, slot: SlotName | undefined, timeoutMs: number): Promise<string | undefined> {
  for (const path of Object.values(ENDPOINTS)) {
    try {
      const r = await freshGet(new URL(path, base).toString(), timeoutMs);
      if (r.status >= 400) return `${path} answered ${r.status}`;
    } catch (err) {
      return `${path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
  }
  if (slot) {
    const containers = await projectContainers(env, slotProject(env, slot));
    if (containers.length === 0) return `no container in compose project ${slotProject(env, slot)}`;
    const bad = containers.find((c) => c.state !== 'running' || c.health === 'unhealthy');
    if (bad) return `container ${bad.name} is ${bad.state}${bad.health ? ` (${bad.health})` : ''}`;
  }
  return undefined;
}

/**
 * Polls the health endpoints (and the slot's containers) until `successes` checks in a row pass or the deadline
 * passes. The deadline counts from the first attempt of the activity, kept in the heartbeat, so a retry after a
 * worker crash does not start the clock again. Usable outside an activity (the `up` command).
 */
export async function waitHealthy(env: EnvironmentConfig, opts: { base: string; slot?: SlotName; timeoutMs: number; successes: number; intervalMs?: number }): Promise<HealthWaitResult> {
  let ctx: Context | undefined;
  try {
    ctx = Context.current();
  } catch {
    ctx = undefined;
  }
  const resumed = (ctx?.info.heartbeatDetails as { startedAt?: number } | undefined)?.startedAt;
  const startedAt = typeof resumed === 'number' ? resumed : Date.now();
  const report = progress('health');
  let attempts = 0;
  let streak = 0;
  let lastProblem: string | undefined;
  const interval = opts.intervalMs ?? 250;
  for (;;) {
    if (ctx?.cancellationSignal.aborted) throw ctx.cancellationSignal.reason;
    attempts++;
    lastProblem = await probeOnce(env, opts.base, opts.slot, Math.min(5000, env.thresholds.httpTimeoutMs));
    streak = lastProblem ? 0 : streak + 1;
    report({ startedAt, attempts, streak, ...(lastProblem ? { lastProblem } : {}) });
    if (streak >= opts.successes) return { healthy: true, elapsedMs: Date.now() - startedAt, attempts };
    if (Date.now() - startedAt >= opts.timeoutMs) return { healthy: false, elapsedMs: Date.now() - startedAt, attempts, ...(lastProblem ? { lastProblem } : {}) };
    // Until the first success (a slot still starting) poll faster, so the wait ends soon after it answers; between
    // the successes in a row, the full interval (issue 18).
    await new Promise((r) => setTimeout(r, streak === 0 ? Math.min(interval, 100) : interval));
  }
}

export interface VerifyResult {
  ok: boolean;
  servingVersion?: string;
  problems: string[];
  checks: { what: string; ok: boolean; detail: string }[];
}

/** How long verify asks again when the front answers with another version (see verifyRelease). */
const VERSION_SETTLE_MS = 2_000;

export function createReleaseCheckActivities(cfg: OpsConfig) {
  const envOf = (name: string) => getEnvironment(cfg, name);
  return {
    /** A slot, directly on its port: healthy before any traffic is switched to it. */
    async waitSlotReady(input: { environment: string; slot: SlotName; port: number; timeoutMs: number; successes: number }): Promise<HealthWaitResult> {
      return guarded(async () => waitHealthy(envOf(input.environment), { base: `http://127.0.0.1:${input.port}`, slot: input.slot, timeoutMs: input.timeoutMs, successes: input.successes }));
    },

    /** The health gate after the switch: the environment's URL (through the front) and the serving slot's containers. */
    async healthGate(input: { environment: string; slot: SlotName; timeoutMs: number; successes: number }): Promise<HealthWaitResult> {
      return guarded(async () => {
        const env = envOf(input.environment);
        return waitHealthy(env, { base: env.url, slot: input.slot, timeoutMs: input.timeoutMs, successes: input.successes });
      });
    },

    /** The app reports the expected version through the environment's URL, and every configured smoke check passes. */
    async verifyRelease(input: { environment: string; version: string }): Promise<VerifyResult> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const timeout = env.thresholds.httpTimeoutMs;
        const checks: VerifyResult['checks'] = [];
        let servingVersion: string | undefined;
        // Right after a reload, a fresh connection can still be answered by the previous slot (an old nginx worker
        // finishing, or the upstream's fallback while the new slot is marked failed): the previous version, not an
        // unverified build (the switch already checked that the new slot serves its own version through the front).
        // So an answer naming another version is asked again for up to VERSION_SETTLE_MS before it counts.
        const settleUntil = Date.now() + VERSION_SETTLE_MS;
        for (let attempt = 1; ; attempt++) {
          try {
            const r = await freshGet(new URL(env.deploy.versionPath, env.url).toString(), timeout);
            servingVersion = (JSON.parse(r.body) as { version?: unknown }).version as string | undefined;
            const ok = r.status === 200 && servingVersion === input.version;
            if (!ok && Date.now() < settleUntil) {
              await new Promise((res) => setTimeout(res, 100));
              continue;
            }
            const asked = attempt > 1 ? ` (asked ${attempt} times)` : '';
            checks.push({ what: `GET ${env.deploy.versionPath}`, ok, detail: ok ? `reports ${servingVersion}${asked}` : `HTTP ${r.status}, reports ${JSON.stringify(servingVersion)?.slice(0, 60)} instead of ${input.version}${asked}` });
          } catch (err) {
            checks.push({ what: `GET ${env.deploy.versionPath}`, ok: false, detail: (err as Error).message });
          }
          break;
        }
        for (const smoke of env.deploy.smoke) {
          const what = `${smoke.method} ${smoke.path}`;
          try {
            const res = await fetch(new URL(smoke.path, env.url), { method: smoke.method, signal: AbortSignal.timeout(timeout), redirect: 'manual' });
            await res.arrayBuffer();
            checks.push({ what, ok: res.status === smoke.status, detail: `HTTP ${res.status} (expected ${smoke.status})` });
          } catch (err) {
            checks.push({ what, ok: false, detail: (err as Error).message });
          }
        }
        const problems = checks.filter((c) => !c.ok).map((c) => `${c.what}: ${c.detail}`);
        return { ok: problems.length === 0, ...(servingVersion !== undefined ? { servingVersion: String(servingVersion) } : {}), problems, checks };
      });
    },

    /** One sample of the slot's request counters and latency histogram (the app's /metrics). */
    async sampleAppMetrics(input: { environment: string; port: number }): Promise<AppMetricsSample> {
      return guarded(async () => {
        const env = envOf(input.environment);
        const r = await freshGet(`http://127.0.0.1:${input.port}/metrics`, env.thresholds.httpTimeoutMs);
        if (r.status !== 200) throw new Error(`/metrics of 127.0.0.1:${input.port} answered ${r.status}`);
        const s = parseAppMetrics(r.body);
        if (!r.body.includes('llmchat_http_requests_total')) throw permanent('the app exposes no llmchat_http_requests_total on /metrics: the bake cannot judge it', 'MetricsMissing');
        return s;
      });
    },
  };
}
