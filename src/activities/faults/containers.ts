/**
 * The app's compose service through the Docker API (dockerode): its container's state, and the restart that
 * auto-recovery performs — within a per-service budget kept in a ledger on the worker, and exactly once per
 * recovery even when the worker dies halfway (the ledger records the container's start time before the restart;
 * a retried activity that sees a newer start time only waits for health).
 */
import type Docker from 'dockerode';
import { dockerode } from '../../common/lazy-modules.js';
import { ApplicationFailure } from '@temporalio/common';
import { Context } from '@temporalio/activity';
import { getEnvironment, type EnvironmentConfig, type OpsConfig } from '../../common/config/index.js';
import type { ContainerState } from './faults.js';
import { changeFaultState } from './shared-state.js';
import { faultStateKey, isNum, isObject } from './state-file.js';
import { findServingAppContainers } from '../release/docker.js';
import { permanentOnKnownErrors } from '../common/failures.js';

export interface LedgerEntry {
  /** Idempotency key of the recovery (alert workflow id + detection run). */
  key: string;
  service: string;
  at: number;
  reason: string;
  containerId?: string;
  startedAtBefore?: string;
}

export interface RestartResult {
  action: 'restart';
  outcome: 'recovered' | 'still-unhealthy' | 'refused-budget' | 'no-container';
  detail: string;
  /** The restarts inside the budget window, for the hand-over message. */
  recent: { at: string; reason: string }[];
  durationMs: number;
}

function validLedger(v: unknown): LedgerEntry[] | undefined {
  if (!Array.isArray(v)) return undefined;
  return v.filter((e): e is LedgerEntry => isObject(e) && typeof e.key === 'string' && typeof e.service === 'string' && isNum(e.at) && typeof e.reason === 'string');
}

let docker: Docker | undefined;
/** DOCKER_HOST (as scripts/env.sh sets it) or the default socket. */
function engine(): Docker {
  docker ??= new (dockerode())();
  return docker;
}

/**
 * The environment's serving app container(s): the blue/green slot the release records name as current, or the
 * configured compose project (labels `com.docker.compose.project` + `com.docker.compose.service`).
 */
export const findAppContainers = findServingAppContainers;

export async function inspectContainer(env: EnvironmentConfig, environment?: string): Promise<ContainerState> {
  let list: Docker.ContainerInfo[];
  try {
    list = await findAppContainers(env, environment);
  } catch (err) {
    return { found: false, error: `Docker API: ${(err as Error).message}` };
  }
  // Prefer a running one; otherwise the most recently created.
  const pick = list.find((c) => c.State === 'running') ?? [...list].sort((a, b) => b.Created - a.Created)[0];
  if (!pick) return { found: false };
  const info = await engine().getContainer(pick.Id).inspect();
  return {
    found: true,
    id: info.Id.slice(0, 12),
    name: info.Name.replace(/^\//, ''),
    state: info.State.Status,
    ...(info.State.Health?.Status ? { health: info.State.Health.Status } : {}),
    restartCount: info.RestartCount,
    oomKilled: info.State.OOMKilled,
    startedAt: info.State.StartedAt,
  };
}

async function healthy(url: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await fetch(new URL('/health', url), { signal: AbortSignal.timeout(timeoutMs) });
    await res.arrayBuffer();
    return res.ok;
  } catch {
    return false;
  }
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** Waits `ms`, or rejects with `signal`'s reason when it fires — at once if it already has (a listener would not run). */
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(t);
      reject(signal?.reason);
    };
    const t = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

export function createContainerActivities(cfg: OpsConfig) {
  return {
    async inspectAppContainer(input: { environment: string }): Promise<ContainerState> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      return inspectContainer(env, input.environment);
    },

    /**
     * Restarts the environment's app service (start if exited, unpause+restart if paused/hung) and waits until
     * /health answers again — unless the service used up its restart budget, in which case nothing is done and
     * the recent restarts are returned for the hand-over.
     */
    async restartAppService(input: { environment: string; key: string; reason: string }): Promise<RestartResult> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      if (typeof input.key !== 'string' || input.key.length === 0 || input.key.length > 300) {
        throw ApplicationFailure.nonRetryable('Expected `key` to be a recovery id of 1..300 characters', 'BadInput');
      }
      const reason = String(input.reason ?? '').slice(0, 300);
      const started = Date.now();
      const ctx = activityContext();
      const { restarts, per, healthyTimeout } = env.faultDetection.recovery;
      const service = `${env.compose.project}/${env.compose.service}`;
      const stateKey = faultStateKey(input.environment, env);

      const containers = await findAppContainers(env, input.environment);
      const target = containers.find((c) => c.State === 'running' || c.State === 'paused') ?? [...containers].sort((a, b) => b.Created - a.Created)[0];

      // Reserve (or find) this recovery's ledger entry before touching the container.
      // The ledger is shared by every worker (src/activities/faults/shared-state.ts): two recoveries raced on two hosts reserve
      // one after the other and see each other's entry, so the budget holds across workers.
      type Reservation = { entry?: LedgerEntry; recent: LedgerEntry[]; refused?: true };
      const reservation = await changeFaultState<LedgerEntry[], Reservation>(
        env,
        stateKey,
        'recovery-ledger',
        validLedger,
        async (stored) => {
          const now = Date.now();
          const ledger = (stored ?? []).filter((e) => now - e.at < Math.max(per, 86_400_000));
          const recent = ledger.filter((e) => e.service === service && now - e.at < per);
          const mine = ledger.find((e) => e.key === input.key);
          if (mine) return { next: ledger, result: { entry: mine, recent } };
          if (recent.length >= restarts) return { next: ledger, result: { refused: true as const, recent } };
          if (!target) return { next: ledger, result: { recent } };
          const before = await engine().getContainer(target.Id).inspect();
          const entry: LedgerEntry = { key: input.key, service, at: now, reason, containerId: target.Id, startedAtBefore: before.State.StartedAt };
          return { next: [...ledger, entry], result: { entry, recent: [...recent, entry] } };
        },
        (msg, meta) => (ctx?.log ?? console).warn(msg, meta),
      );
      const recent = reservation.recent.map((e) => ({ at: new Date(e.at).toISOString(), reason: e.reason }));
      const result = (outcome: RestartResult['outcome'], detail: string): RestartResult => ({ action: 'restart', outcome, detail, recent, durationMs: Date.now() - started });
      if (reservation.refused) {
        return result('refused-budget', `restart budget of ${service} used up: ${reservation.recent.length} restart(s) in the last ${Math.round(per / 60_000)} min (limit ${restarts})`);
      }
      if (!reservation.entry || !target) return result('no-container', `no container of ${service} to restart`);

      const container = engine().getContainer(reservation.entry.containerId ?? target.Id);
      const now = await container.inspect();
      if (now.State.StartedAt === reservation.entry.startedAtBefore) {
        // Not restarted yet (first attempt, or the worker died before the restart call).
        ctx?.heartbeat({ step: 'restarting', container: now.Name });
        if (now.State.Paused) await container.unpause();
        if (now.State.Running) await container.restart({ t: 10 });
        else await container.start();
      }
      const deadline = Date.now() + healthyTimeout;
      while (Date.now() < deadline) {
        ctx?.heartbeat({ step: 'waiting for /health', container: now.Name, waitedMs: Date.now() - started });
        if (await healthy(env.url, 2_000)) return result('recovered', `restarted ${now.Name.replace(/^\//, '')}; /health answers again after ${((Date.now() - started) / 1000).toFixed(1)} s`);
        await sleep(500, ctx?.cancellationSignal);
      }
      return result('still-unhealthy', `restarted ${now.Name.replace(/^\//, '')} but /health did not answer within ${healthyTimeout / 1000} s`);
    },
  };
}
