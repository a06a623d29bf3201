/**
 * `llmchat-ops` — the operator CLI. Every command talks to Temporal; the worker does the work.
 * Exit codes: 0 success, 1 failure (bad input, failed run, unreachable server), 2 the run finished but found
 * the service unhealthy or degraded.
 */
import os from 'node:os';
import { Command, CommanderError } from 'commander';
import { WorkflowFailedError } from '@temporalio/client';
import { configPath, loadConfig, getEnvironment, type OpsConfig } from './config.js';
import { connectClient, workflowIds } from './client.js';
import { applySchedules, formatApplyResult, formatScheduleSummary, listSchedules } from './schedules.js';
import type { HealthReport } from './workflows/daily-health-check.js';
import { EnvironmentKey, OperationKey, RequestedByKey } from './search-attributes.js';

const ICON = { healthy: 'ok  ', warning: 'WARN', unhealthy: 'FAIL' } as const;

export function formatHealthReport(r: HealthReport): string {
  const lines = [`LLMChat ${r.environment}: ${r.status.toUpperCase()} (checked ${r.checkedAt})`];
  for (const c of r.checks) lines.push(`  ${ICON[c.status]} ${c.name.padEnd(9)} ${c.message}`);
  if (r.alerts.length) {
    lines.push(`  alerts:`);
    r.alerts.forEach((a, i) => {
      const sent = r.notifications.filter((n) => n.alert === i).map((n) => `${n.channel}:${n.delivered ? 'sent' : n.detail}`);
      lines.push(`    [${a.severity}] ${a.message}${sent.length ? `  → ${sent.join(', ')}` : '  → no channel routed'}`);
    });
  }
  return lines.join('\n');
}

function operator(): string {
  return process.env.LLMCHAT_OPS_OPERATOR ?? os.userInfo().username;
}

async function withClient<T>(cfg: OpsConfig, fn: (client: Awaited<ReturnType<typeof connectClient>>) => Promise<T>): Promise<T> {
  const client = await connectClient(cfg);
  try {
    return await fn(client);
  } finally {
    await client.connection.close();
  }
}

export function buildProgram(): Command {
  const program = new Command('llmchat-ops')
    .description('Durable, auditable operations for the LLMChat service on Temporal')
    .option('-c, --config <file>', 'config file (default: $LLMCHAT_OPS_CONFIG or ./ops.config.yaml)')
    .showHelpAfterError()
    .exitOverride();
  const cfg = () => loadConfig(configPath(program.opts<{ config?: string }>().config));

  program
    .command('health')
    .description('run the daily health check now and follow it to its report')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      const config = cfg();
      getEnvironment(config, opts.env); // unknown names fail here, before anything starts
      const report = await withClient(config, async (client) => {
        const handle = await client.workflow.start('dailyHealthCheck', {
          taskQueue: config.temporal.taskQueue,
          workflowId: workflowIds.dailyHealthCheck(opts.env),
          workflowIdConflictPolicy: 'USE_EXISTING',
          args: [{ environment: opts.env, requestedBy: operator() }],
          typedSearchAttributes: [
            { key: EnvironmentKey, value: opts.env },
            { key: OperationKey, value: 'dailyHealthCheck' },
            { key: RequestedByKey, value: operator() },
          ],
        });
        if (!opts.json) console.error(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})`);
        return (await handle.result()) as HealthReport;
      });
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatHealthReport(report));
      if (report.status !== 'healthy') process.exitCode = 2;
    });

  program
    .command('config')
    .description('configuration tools (config check)')
    .command('check')
    .description('validate the config file: every problem is listed with the path of its key (exit 1)')
    .action(() => {
      const file = configPath(program.opts<{ config?: string }>().config);
      const config = loadConfig(file);
      const names = Object.keys(config.environments).join(', ');
      console.log(`config ok: ${file} (environments: ${names}; Temporal ${config.temporal.address}, task queue ${config.temporal.taskQueue})`);
    });

  const schedules = program.command('schedules').description('Temporal Schedules that replace the guide\'s cron jobs');
  schedules
    .command('apply')
    .description('create or update every configured schedule (idempotent; paused schedules stay paused)')
    .action(async () => {
      const config = cfg();
      const results = await withClient(config, (client) => applySchedules(client, config));
      for (const r of results) console.log(formatApplyResult(r));
      if (results.some((r) => r.outcome === 'failed')) process.exitCode = 1;
    });
  schedules
    .command('list')
    .description('the configured schedules with state, next and last run')
    .action(async () => {
      const config = cfg();
      const found = await withClient(config, (client) => listSchedules(client, config));
      for (const s of found) console.log(formatScheduleSummary(s));
    });
  return program;
}

export async function main(argv = process.argv): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return Number(process.exitCode ?? 0);
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version end here with exit code 0; usage errors were already printed by commander.
      return err.exitCode;
    }
    if (err instanceof WorkflowFailedError) {
      const cause = err.cause as (Error & { cause?: Error }) | undefined;
      console.error(`llmchat-ops: workflow failed: ${cause?.message ?? err.message}`);
    } else {
      console.error(`llmchat-ops: ${err instanceof Error ? err.message : String(err)}`);
    }
    return 1;
  }
}
