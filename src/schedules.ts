/**
 * Temporal Schedules in place of the guide's cron lines. `apply` is an idempotent update-or-create of every
 * schedule in the config: overlap policy, catch-up window and timezone are explicit, an operator's pause is
 * kept, one line is printed per schedule, and the exit code is non-zero if any failed.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, ScheduleNotFoundError, ScheduleOverlapPolicy, type ScheduleSummary } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { configPath, loadConfig, type OpsConfig } from './config.js';
import { connectClient } from './client.js';

export interface ScheduleDefinition {
  /** The workflow each action starts. */
  workflowType: string;
  /** What to do when the previous run is still going (the guide's cron would happily stack them up). */
  overlap: ScheduleOverlapPolicy;
  /** How late a missed action (worker or server down) may still run; older ones are skipped. */
  catchupWindow: Duration;
  /** The guide section it replaces, shown in the schedule's note. */
  replaces: string;
}

/** Every schedulable runbook; config `schedules.<name>` must name one of these. */
export const SCHEDULE_REGISTRY: Record<string, ScheduleDefinition> = {
  dailyHealthCheck: {
    workflowType: 'dailyHealthCheck',
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: '1 hour',
    replaces: '每日健康检查 scripts/daily-health-check.sh',
  },
  nightlyBackup: {
    // The child backup runs under the environment's data workflow id, so it never overlaps a manual backup or a
    // restore either; a missed night may still run within 6 hours, later it waits for the next one.
    workflowType: 'scheduledBackup',
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: '6 hours',
    replaces: '备份策略 scripts/backup.sh (with retention)',
  },
};

export type ApplyOutcome = 'created' | 'updated' | 'unchanged' | 'failed';
export interface ApplyResult {
  scheduleId: string;
  outcome: ApplyOutcome;
  paused?: boolean;
  detail: string;
}

export const scheduleId = (name: string, environment: string) => `${name}-${environment}`;

function desiredSchedule(cfg: OpsConfig, name: string, environment: string, def: ScheduleDefinition, cron: string) {
  const id = scheduleId(name, environment);
  const spec = { cronExpressions: [cron], timezone: cfg.timezone };
  const policies = { overlap: def.overlap, catchupWindow: def.catchupWindow, pauseOnFailure: false };
  const action = {
    type: 'startWorkflow' as const,
    workflowType: def.workflowType,
    workflowId: id, // the server appends the scheduled time, so every run keeps the business key
    taskQueue: cfg.temporal.taskQueue,
    args: [{ environment, requestedBy: `schedule:${id}` }],
  };
  const specHash = createHash('sha256').update(JSON.stringify({ spec, policies, action })).digest('hex').slice(0, 16);
  // The definition's hash rides in each run's memo: it is how `apply` knows the live schedule is already current.
  return { id, spec, policies, action: { ...action, memo: { managedBy: 'llmchat-ops', scheduleSpecHash: specHash } }, specHash };
}

export async function applySchedules(client: Client, cfg: OpsConfig): Promise<ApplyResult[]> {
  const results: ApplyResult[] = [];
  for (const [name, entry] of Object.entries(cfg.schedules)) {
    const def = Object.hasOwn(SCHEDULE_REGISTRY, name) ? SCHEDULE_REGISTRY[name] : undefined;
    for (const environment of entry.environments) {
      const want = def && desiredSchedule(cfg, name, environment, def, entry.cron);
      const id = scheduleId(name, environment);
      if (!want) {
        results.push({ scheduleId: id, outcome: 'failed', detail: `unknown schedule "${name}"; known: ${Object.keys(SCHEDULE_REGISTRY).join(', ')}` });
        continue;
      }
      const summary = `cron "${entry.cron}" ${cfg.timezone}, overlap ${want.policies.overlap}, catch-up ${want.policies.catchupWindow}`;
      try {
        const handle = client.schedule.getHandle(want.id);
        let current;
        try {
          current = await handle.describe();
        } catch (err) {
          if (!(err instanceof ScheduleNotFoundError)) throw err;
        }
        if (!current) {
          await client.schedule.create({
            scheduleId: want.id,
            spec: want.spec,
            action: want.action,
            policies: want.policies,
            state: { paused: entry.paused, note: `managed by llmchat-ops; replaces ${def.replaces}` },
          });
          results.push({ scheduleId: want.id, outcome: 'created', paused: entry.paused, detail: summary });
        } else if (current.action.type === 'startWorkflow' && current.action.memo?.scheduleSpecHash === want.specHash) {
          results.push({ scheduleId: want.id, outcome: 'unchanged', paused: current.state.paused, detail: summary });
        } else {
          await handle.update((prev) => ({
            ...prev,
            spec: want.spec,
            action: want.action,
            policies: want.policies,
            state: { paused: prev.state.paused, note: prev.state.note }, // an operator's pause survives apply
          }));
          results.push({ scheduleId: want.id, outcome: 'updated', paused: current.state.paused, detail: summary });
        }
      } catch (err) {
        results.push({ scheduleId: want.id, outcome: 'failed', detail: (err as Error).message });
      }
    }
  }
  return results;
}

export function formatApplyResult(r: ApplyResult): string {
  const paused = r.paused === undefined ? '' : r.paused ? ' [paused]' : '';
  return `${r.outcome.padEnd(9)} ${r.scheduleId}${paused}  ${r.detail}`;
}

/** The schedules this config manages, with their state and next run. */
export async function listSchedules(client: Client, cfg: OpsConfig): Promise<ScheduleSummary[]> {
  const managed = new Set(
    Object.entries(cfg.schedules).flatMap(([name, s]) => s.environments.map((env) => scheduleId(name, env))),
  );
  const found: ScheduleSummary[] = [];
  for await (const s of client.schedule.list()) if (managed.has(s.scheduleId)) found.push(s);
  return found.sort((a, b) => a.scheduleId.localeCompare(b.scheduleId));
}

export function formatScheduleSummary(s: ScheduleSummary): string {
  const next = s.info.nextActionTimes[0]?.toISOString() ?? '-';
  const last = s.info.recentActions.at(-1)?.takenAt?.toISOString() ?? 'never';
  return `${s.scheduleId.padEnd(36)} ${s.state.paused ? 'paused ' : 'active '} next ${next}  last ${last}`;
}

/** `node dist/src/schedules.js [config]`: apply and exit non-zero if any schedule failed. */
async function run(): Promise<void> {
  const cfg = loadConfig(configPath(process.argv[2]));
  const client = await connectClient(cfg);
  try {
    const results = await applySchedules(client, cfg);
    for (const r of results) console.log(formatApplyResult(r));
    if (results.some((r) => r.outcome === 'failed')) process.exitCode = 1;
  } finally {
    await client.connection.close();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
