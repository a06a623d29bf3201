/**
 * CLI commands of the maintenance runbooks: `maintenance`, `cleanup [--dry-run]`, `optimize`,
 * `report [--month YYYY-MM]`. Each starts its workflow under a business-key id (a second request while one runs
 * joins it), follows it and prints its report.
 */
import type { Client } from '@temporalio/client';
import type { Command } from 'commander';
import { getEnvironment, type OpsConfig } from '../common/config/index.js';
import type { CleanupReport } from '../workflows/maintenance/weekly-cleanup.js';
import type { MaintenanceReport } from '../workflows/maintenance/weekly-database-maintenance.js';
import type { OptimizationReport } from '../workflows/maintenance/database-optimization.js';
import { checkInput } from '../workflows/common/inputs.js';
import { databaseOptimizationInputSchema, weeklyCleanupInputSchema, weeklyDatabaseMaintenanceInputSchema } from '../workflows/maintenance/shared.js';
import { monthlyPerformanceReportInputSchema } from '../workflows/report/shared.js';
import { EnvironmentKey, OperationKey, RequestedByKey } from '../common/search-attributes.js';

export interface MaintenanceCliContext {
  cfg: () => OpsConfig;
  operator: () => string;
  withClient: <T>(cfg: OpsConfig, fn: (client: Client) => Promise<T>) => Promise<T>;
}

function size(bytes: number): string {
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 ** 2) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

function exclusionLine(e: MaintenanceReport['exclusion']): string {
  const others = e.waitedFor.map((w) => w.workflowId).join(', ');
  if (e.decision === 'skipped') return `SKIPPED: ${others} still running after ${Math.round(e.waitedMs / 1000)} s`;
  return e.waitedFor.length ? `waited ${Math.round(e.waitedMs / 1000)} s for ${others}` : 'no backup, restore or deploy running';
}

export function formatMaintenance(r: MaintenanceReport): string {
  const lines = [`weekly database maintenance of ${r.environment}: ${r.outcome} (${exclusionLine(r.exclusion)})`];
  if (r.purge) {
    for (const p of r.purge.phases) {
      lines.push(`  purged ${String(p.deleted).padStart(9)} ${p.phase.padEnd(8)} (${p.examined} examined, ${p.batches} batches, longest transaction ${p.maxTransactionMs} ms${p.resumedAtBatch ? `, resumed at batch ${p.resumedAtBatch}` : ''})`);
    }
  }
  if (r.reindex) {
    if (r.reindex.removedLeftovers.length) lines.push(`  removed invalid leftovers: ${r.reindex.removedLeftovers.join(', ')}`);
    for (const i of r.reindex.indexes) lines.push(`  reindex ${i.name}: ${i.status}${i.bytesBefore !== undefined ? ` ${size(i.bytesBefore)} → ${size(i.bytesAfter ?? 0)}` : ''}`);
  }
  for (const t of r.tables ?? []) lines.push(`  ${t.table.padEnd(24)} ${size(t.totalBytes).padStart(10)}  live ${t.liveTuples}  dead ${t.deadTuples}`);
  return lines.join('\n');
}

export function formatCleanup(r: CleanupReport): string {
  const verb = r.dryRun ? 'would delete' : 'deleted';
  const lines = [`weekly cleanup of ${r.environment}${r.dryRun ? ' (dry run)' : ''}: ${verb} ${r.totals.files} files, ${size(r.totals.bytes)}`];
  for (const c of r.files) {
    lines.push(`  ${c.category.padEnd(8)} ${verb} ${c.count} (${size(c.bytes)}) under ${c.root}`);
    for (const f of c.files) lines.push(`    ${JSON.stringify(f.path)}  ${size(f.bytes)}, ${f.ageDays} days old`);
    for (const s of c.skipped) lines.push(`    skipped ${JSON.stringify(s.path)}: ${s.why}`);
  }
  lines.push(`  backup: ${r.backup.status}${r.backup.backupId ? ` ${r.backup.backupId}` : ''}${r.backup.detail ? ` (${r.backup.detail})` : ''}`);
  lines.push(`  retention: ${r.dryRun ? 'would remove' : 'removed'} ${r.retention.remove.map((x) => x.id).join(', ') || 'nothing'}; keeps ${r.retention.keep.length}`);
  lines.push(`  OS packages: ${r.os.status}: ${r.os.detail}`);
  for (const p of r.os.packages.slice(0, 50)) lines.push(`    ${p.name} ${p.from} → ${p.to}`);
  return lines.join('\n');
}

export function formatOptimization(r: OptimizationReport): string {
  const lines = [`database optimization of ${r.environment}: ${r.outcome} (${exclusionLine(r.exclusion)})`];
  for (const i of r.indexes ?? []) lines.push(`  index ${i.name}: ${i.status}`);
  for (const c of r.changes ?? []) lines.push(`  ${c.table.padEnd(24)} dead tuples ${c.deadTuplesBefore} → ${c.deadTuplesAfter}, size ${size(c.bytesBefore)} → ${size(c.bytesAfter)}`);
  return lines.join('\n');
}

export interface PerformanceReportSummary {
  environment: string;
  month: string;
  markdownFile: string;
  htmlFile: string;
  alerts: { severity: string; message: string }[];
  recommendations: string[];
}

export function formatPerformanceReport(r: PerformanceReportSummary): string {
  return [
    `performance report ${r.environment} ${r.month}:`,
    `  ${r.markdownFile}`,
    `  ${r.htmlFile}`,
    ...r.alerts.map((a) => `  [${a.severity}] ${a.message}`),
    ...r.recommendations.map((x) => `  - ${x}`),
  ].join('\n');
}

export function addMaintenanceCommands(program: Command, ctx: MaintenanceCliContext): void {
  async function run<T>(type: string, environment: string, idSuffix: string, input: unknown, json: boolean | undefined): Promise<T> {
    const config = ctx.cfg();
    getEnvironment(config, environment);
    return ctx.withClient(config, async (client) => {
      const handle = await client.workflow.start(type, {
        taskQueue: config.temporal.taskQueue,
        workflowId: `${type}-${environment}${idSuffix}`,
        workflowIdConflictPolicy: 'USE_EXISTING',
        args: [input],
        typedSearchAttributes: [
          { key: EnvironmentKey, value: environment },
          { key: OperationKey, value: type },
          { key: RequestedByKey, value: ctx.operator() },
        ],
      });
      if (!json) console.error(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})`);
      return (await handle.result()) as T;
    });
  }
  const out = (json: boolean | undefined, value: unknown, text: string) => console.log(json ? JSON.stringify(value, null, 2) : text);

  program
    .command('maintenance')
    .description('weekly database maintenance now: ANALYZE, batched purge, REINDEX CONCURRENTLY, table report')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      const input = checkInput('weeklyDatabaseMaintenance', weeklyDatabaseMaintenanceInputSchema, { environment: opts.env, requestedBy: ctx.operator() });
      const r = await run<MaintenanceReport>('weeklyDatabaseMaintenance', opts.env, '', input, opts.json);
      out(opts.json, r, formatMaintenance(r));
      if (r.outcome === 'skipped') process.exitCode = 2;
    });

  program
    .command('cleanup')
    .description('weekly cleanup now: old logs, temp files, uploads, weekly backup, backup retention, OS upgrades if enabled')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--dry-run', 'list what would be deleted; delete nothing, back up nothing, upgrade nothing')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { env: string; dryRun?: boolean; json?: boolean }) => {
      const input = checkInput('weeklyCleanup', weeklyCleanupInputSchema, { environment: opts.env, dryRun: opts.dryRun ?? false, requestedBy: ctx.operator() });
      const r = await run<CleanupReport>('weeklyCleanup', opts.env, opts.dryRun ? '-dry-run' : '', input, opts.json);
      out(opts.json, r, formatCleanup(r));
    });

  program
    .command('optimize')
    .description('database optimization now: CREATE INDEX CONCURRENTLY, ANALYZE, VACUUM ANALYZE, before/after report')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      const input = checkInput('databaseOptimization', databaseOptimizationInputSchema, { environment: opts.env, requestedBy: ctx.operator() });
      const r = await run<OptimizationReport>('databaseOptimization', opts.env, '', input, opts.json);
      out(opts.json, r, formatOptimization(r));
      if (r.outcome === 'skipped') process.exitCode = 2;
    });

  program
    .command('report')
    .description('monthly performance report from Prometheus (Markdown + HTML in report.directory)')
    .requiredOption('-e, --env <name>', 'environment')
    .option('-m, --month <YYYY-MM>', 'the month (default: the previous one)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { env: string; month?: string; json?: boolean }) => {
      const input = checkInput('monthlyPerformanceReport', monthlyPerformanceReportInputSchema, { environment: opts.env, requestedBy: ctx.operator(), ...(opts.month ? { month: opts.month } : {}) });
      const r = await run<PerformanceReportSummary>('monthlyPerformanceReport', opts.env, opts.month ? `-${opts.month}` : '', input, opts.json);
      out(opts.json, r, formatPerformanceReport(r));
    });
}
