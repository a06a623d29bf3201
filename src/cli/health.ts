/** `llmchat-ops health`: the daily health check, run now and followed to its report. */
import { Command } from 'commander';
import { checkInput } from '../workflows/common/inputs.js';
import { dailyHealthCheckInputSchema } from '../workflows/health/shared.js';
import { getEnvironment, type OpsConfig } from '../common/config/index.js';
import { workflowIds } from '../common/client.js';
import type { HealthReport } from '../workflows/health/daily-health-check.js';
import { EnvironmentKey, OperationKey, RequestedByKey } from '../common/search-attributes.js';
import { operator, withClient } from './output.js';

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

export function addHealthCommands(program: Command, cfg: () => OpsConfig): void {
  program
    .command('health')
    .description('run the daily health check now and follow it to its report')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      const config = cfg();
      getEnvironment(config, opts.env); // unknown names fail here, before anything starts
      const input = checkInput('dailyHealthCheck', dailyHealthCheckInputSchema, { environment: opts.env, requestedBy: operator() });
      const report = await withClient(config, async (client) => {
        const handle = await client.workflow.start('dailyHealthCheck', {
          taskQueue: config.temporal.taskQueue,
          workflowId: workflowIds.dailyHealthCheck(opts.env),
          workflowIdConflictPolicy: 'USE_EXISTING',
          args: [input],
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
}
