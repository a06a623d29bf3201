/** CLI commands of fault detection and the alert lifecycle: `detect`, `alerts`, `ack`. */
import type { Command } from 'commander';
import type { Client } from '@temporalio/client';
import { signalFaultDetection } from '../activities/faults/alerts.js';
import { getEnvironment, type OpsConfig } from '../common/config/index.js';
import { alertWorkflowId } from '../activities/faults/faults.js';
import { ENVIRONMENT_NAME } from '../common/names.js';
import type { AlertState } from '../workflows/faults/shared.js';
import type { FaultDetectionReport } from '../workflows/faults/shared.js';

export interface AlertCliContext {
  cfg: () => OpsConfig;
  operator: () => string;
  withClient: <T>(cfg: OpsConfig, fn: (client: Client) => Promise<T>) => Promise<T>;
}

export function formatFaultReport(r: FaultDetectionReport): string {
  const lines = [`LLMChat ${r.environment}: fault detection ${r.outcome.toUpperCase()} (checked ${r.checkedAt})`];
  for (const c of r.checks) lines.push(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.check.padEnd(24)} ${c.message}`);
  for (const x of r.recoveries) lines.push(`  recovery: ${x.action} → ${x.outcome}: ${x.detail}`);
  if (r.ranIn) lines.push(`  run: ${r.ranIn}, started by ${r.requestedBy ?? '?'}${r.requests && r.requests.length > 1 ? `; joined by ${r.requests.length - 1} more trigger(s)${r.unrecordedRequests ? ` (+${r.unrecordedRequests})` : ''}` : ''}`);
  if (r.alerts.length) lines.push(`  alerts: ${r.alerts.join(', ')}`);
  if (r.cleared.length) lines.push(`  cleared: ${r.cleared.join(', ')}`);
  return lines.join('\n');
}

export function formatAlertLine(a: AlertState): string {
  const ack = a.acknowledged ? ` ack ${a.acknowledged.by}` : '';
  const pages = a.pages ? `, ${a.pages.length} page(s)${a.pages.length ? ` (${a.pages.map((p) => p.kind).join(', ')})` : ''}` : '';
  const incident = a.incident && a.incident > 1 ? ` incident ${a.incident}` : '';
  return `${a.alertId.padEnd(44)} ${a.severity.padEnd(8)} ${a.status}${a.escalated ? ' (escalated)' : ''}${ack}${incident}  since ${a.openedAt}, ${a.reports} report(s)${pages}  ${a.message}`;
}

/** `llmchat-alert-<env>-<check>` or `<env>/<check>`, validated before it reaches Temporal. */
export function parseAlertRef(ref: string): string {
  const short = /^([a-z][a-z0-9-]{0,31})\/([a-z0-9][a-z0-9-]{0,79})$/.exec(ref);
  if (short?.[1] && short[2] && ENVIRONMENT_NAME.test(short[1])) return alertWorkflowId(short[1], short[2]);
  if (/^llmchat-alert-[a-z0-9-]{3,120}$/.test(ref)) return ref;
  throw new Error(`Expected an alert id like llmchat-alert-production-app-down or production/app-down, got ${JSON.stringify(ref).slice(0, 80)}`);
}

export function addAlertCommands(program: Command, ctx: AlertCliContext): void {
  program
    .command('detect')
    .description("run fault detection (with auto-recovery) now — or join the environment's run already checking — and print its report")
    .requiredOption('-e, --env <name>', 'environment')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      const config = ctx.cfg();
      getEnvironment(config, opts.env);
      // One run per environment (llmchat-faults-<env>): join the one running, or start it.
      const report = (await ctx.withClient(config, async (client) => {
        const run = await signalFaultDetection(client, config.temporal.taskQueue, opts.env, ctx.operator());
        return client.workflow.getHandle(run.workflowId, run.runId).result();
      })) as FaultDetectionReport;
      console.log(opts.json ? JSON.stringify(report, null, 2) : formatFaultReport(report));
      if (report.outcome !== 'healthy' && report.outcome !== 'recovered') process.exitCode = 2;
    });

  program
    .command('alerts')
    .description('open alerts (one per fault key), newest first')
    .option('-e, --env <name>', 'only this environment')
    .option('--json', 'print the alert states as JSON')
    .action(async (opts: { env?: string; json?: boolean }) => {
      const config = ctx.cfg();
      if (opts.env) getEnvironment(config, opts.env); // validated, so it is safe inside the query below
      const states = await ctx.withClient(config, async (client) => {
        const query = `WorkflowType="alertLifecycle" AND ExecutionStatus="Running"${opts.env ? ` AND LlmchatEnvironment="${opts.env}"` : ''}`;
        const found: AlertState[] = [];
        for await (const wf of client.workflow.list({ query })) {
          const state = await client.workflow.getHandle(wf.workflowId).query<AlertState>('alertState').catch(() => undefined);
          if (state) found.push(state);
        }
        return found.sort((a, b) => b.openedAt.localeCompare(a.openedAt));
      });
      if (opts.json) console.log(JSON.stringify(states, null, 2));
      else console.log(states.length ? states.map(formatAlertLine).join('\n') : 'no open alerts');
    });

  program
    .command('ack <alert>')
    .description('acknowledge an open alert (stops its escalation); <alert> is its id or <environment>/<check>')
    .option('-c, --comment <text>', 'kept in the alert history')
    .action(async (alert: string, opts: { comment?: string }) => {
      const config = ctx.cfg();
      const workflowId = parseAlertRef(alert);
      await ctx.withClient(config, async (client) => {
        const handle = client.workflow.getHandle(workflowId);
        const desc = await handle.describe().catch(() => undefined);
        if (desc?.status.name !== 'RUNNING') throw new Error(`no open alert ${workflowId}`);
        const before = await handle.query<AlertState>('alertState');
        if (before.acknowledged) throw new Error(`${workflowId} was already acknowledged by ${before.acknowledged.by} at ${before.acknowledged.at}`);
        await handle.signal('acknowledgeAlert', { by: ctx.operator(), ...(opts.comment ? { comment: opts.comment } : {}) });
        for (let i = 0; i < 50; i++) {
          const st = await handle.query<AlertState>('alertState');
          if (st.acknowledged) return console.log(`acknowledged ${workflowId} as ${st.acknowledged.by}${st.acknowledged.comment ? `: ${st.acknowledged.comment}` : ''}`);
          const refused = st.history.slice(before.history.length).find((h) => h.event === 'rejected-signal');
          if (refused) throw new Error(refused.detail);
          await new Promise((r) => setTimeout(r, 100));
        }
        throw new Error(`${workflowId} did not record the acknowledgement within 5 s`);
      });
    });

}
