/**
 * Temporal Schedules in place of the guide's cron lines. `apply` is an idempotent update-or-create of every
 * schedule in the config: overlap policy, catch-up window and timezone are explicit, an operator's pause is
 * kept, one line is printed per schedule, and the exit code is non-zero if any failed.
 */
import { createHash } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { Client, ScheduleNotFoundError, ScheduleOverlapPolicy, type ScheduleSummary } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { configPath, loadConfig, type OpsConfig } from './common/config/index.js';
import { connectClient } from './common/client.js';

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
  // The weekly and monthly runs: a run still going when the next one is due is never doubled (SKIP). A missed
  // night's maintenance may start up to 6 h late (still the quiet hours); a cleanup up to 12 h; a monthly report
  // up to 3 days (a late report is still the report). Beside a backup/restore/deploy of the same environment the
  // maintenance and optimization wait (maintenance.maxWait), then skip.
  weeklyDatabaseMaintenance: {
    workflowType: 'weeklyDatabaseMaintenance',
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: '6 hours',
    replaces: '数据库维护 scripts/weekly-maintenance.sql',
  },
  weeklyCleanup: {
    workflowType: 'weeklyCleanup',
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: '12 hours',
    replaces: '应用程序清理 scripts/weekly-cleanup.sh',
  },
  databaseOptimization: {
    workflowType: 'databaseOptimization',
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: '6 hours',
    replaces: '数据库优化 scripts/database-optimization.sql',
  },
  monthlyPerformanceReport: {
    workflowType: 'monthlyPerformanceReport',
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: '3 days',
    replaces: '性能分析 scripts/performance-analysis.js',
  },
  faultDetection: {
    // Every 5 minutes: a run still going (a restart waiting for health) makes the next one skip; a missed run is
    // not worth catching up beyond one interval, the next one measures the whole window anyway.
    workflowType: 'faultDetection',
    overlap: ScheduleOverlapPolicy.SKIP,
    catchupWindow: '5 minutes',
    replaces: '故障检测 FaultDetectionService (every 5 minutes)',
  },
};

export type ApplyOutcome = 'created' | 'updated' | 'unchanged' | 'removed' | 'failed';
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
  results.push(...(await removeStaleSchedules(client, cfg)));
  return results;
}

/**
 * Deletes the schedules that llmchat-ops created earlier (their action's memo says so, on this config's task
 * queue) but that the config no longer lists. Schedules anyone else created are left alone.
 */
async function removeStaleSchedules(client: Client, cfg: OpsConfig): Promise<ApplyResult[]> {
  const wanted = new Set(Object.entries(cfg.schedules).flatMap(([name, s]) => s.environments.map((env) => scheduleId(name, env))));
  const results: ApplyResult[] = [];
  let ids: string[];
  try {
    ids = [];
    for await (const s of client.schedule.list()) if (!wanted.has(s.scheduleId)) ids.push(s.scheduleId);
  } catch (err) {
    return [{ scheduleId: '(list)', outcome: 'failed', detail: `cannot list schedules to remove stale ones: ${(err as Error).message}` }];
  }
  for (const id of ids.sort()) {
    try {
      const d = await client.schedule.getHandle(id).describe();
      if (d.action.type !== 'startWorkflow' || d.action.memo?.managedBy !== 'llmchat-ops' || d.action.taskQueue !== cfg.temporal.taskQueue) continue;
      await client.schedule.getHandle(id).delete();
      results.push({ scheduleId: id, outcome: 'removed', detail: `created by llmchat-ops (${d.action.workflowType}) and no longer in the config` });
    } catch (err) {
      if (err instanceof ScheduleNotFoundError) continue;
      results.push({ scheduleId: id, outcome: 'failed', detail: (err as Error).message });
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
