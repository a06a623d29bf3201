/** `llmchat-ops schedules apply|list`: the Temporal Schedules that replace the guide's cron jobs. */
import { Command } from 'commander';
import { type OpsConfig } from '../common/config/index.js';
import { applySchedules, formatApplyResult, formatScheduleSummary, listSchedules } from '../schedules.js';
import { withClient } from './output.js';

export function addScheduleCommands(program: Command, cfg: () => OpsConfig): void {
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
}
