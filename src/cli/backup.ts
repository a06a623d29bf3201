/** The backup commands of `llmchat-ops`: backup, backups list/verify/import, restore, and approve/reject of a waiting restore. */
import { Command } from 'commander';
import { randomUUID } from 'node:crypto';
import { type Client, type WorkflowHandle } from '@temporalio/client';
import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError } from '@temporalio/common';
import { parseBackupId } from '../activities/backup/ids.js';
import { backupInputSchema, importBackupInputSchema, restoreInputSchema, verifyBackupInputSchema } from '../workflows/backup/shared.js';
import { checkInput } from '../workflows/common/inputs.js';
import type { CatalogueEntry, Verification } from '../activities/backup/manifest.js';
import { dataWorkflowId } from '../common/names.js';
import type { BackupResult } from '../workflows/backup/backup.js';
import type { ImportSummary } from '../activities/backup/backup-import.js';
import type { RestoreOutcome } from '../workflows/backup/restore.js';
import type { RestoreStatus } from '../workflows/backup/shared.js';
import { decisionSchema, MAX_COMMENT_LENGTH, type Decision, type DecisionAnswer } from '../workflows/common/approval.js';
import { getEnvironment, type OpsConfig } from '../common/config/index.js';
import { followProgress, mb, operator, printable, withClient } from './output.js';
import { executeUpdateRetrying } from '../common/update-retry.js';

export function formatBackup(r: BackupResult): string {
  const m = r.manifest;
  const lines = [`backup ${r.backupId}: ${m.status}, ${m.verification?.status ?? 'unverified'}`];
  for (const a of Object.values(m.artifacts)) lines.push(`  ${a.kind.padEnd(11)} ${a.file.padEnd(22)} ${mb(a.bytes).padStart(10)}  sha256 ${a.sha256.slice(0, 16)}…  ${(a.durationMs / 1000).toFixed(1)} s`);
  const rt = m.verification?.restoreTest;
  if (rt && rt !== 'skipped') lines.push(`  restore test: ${rt.tables} tables, row counts ${rt.mismatches.length ? 'DIFFER' : 'match'} (${(rt.durationMs / 1000).toFixed(1)} s)`);
  return lines.join('\n');
}

export function formatCatalogue(entries: CatalogueEntry[]): string {
  if (entries.length === 0) return 'no backups';
  return entries
    .map((e) => e.status === 'untrusted' ? `${e.id}  UNTRUSTED   ${e.problem ?? ''}` : `${e.id}  ${e.status.padEnd(11)} ${e.verification.padEnd(10)} ${mb(e.bytes).padStart(10)}  ${e.kinds.join(',').padEnd(34)} ${e.requestedBy}: ${e.reason}`)
    .join('\n');
}

export function formatImport(s: ImportSummary): string {
  const lines = [
    `backup ${s.backupId} (${s.environment}): ${s.status}, started ${s.startedAt}${s.completedAt ? `, completed ${s.completedAt}` : ''}`,
    `  requested by ${s.requestedBy}: ${s.reason}`,
    `  trust: ${s.trust}`,
    `  manifest sha256 ${s.manifestSha256}`,
  ];
  for (const a of s.artifacts) lines.push(`  ${a.kind.padEnd(11)} ${a.file.padEnd(22)} ${mb(a.bytes).padStart(10)}  sha256 ${a.sha256.slice(0, 16)}… ok${a.members !== undefined ? `, ${a.members} members checked` : ''}`);
  lines.push(s.imported ? '  imported: re-signed with the current key; run `llmchat-ops backups verify` next' : '  not imported yet (nothing changed)');
  return lines.join('\n');
}

/** Starts a workflow under the environment's data id, explaining the refusal when one is already running. */
async function startDataWorkflow(client: Client, config: OpsConfig, environment: string, type: 'backup' | 'restore', input: Record<string, unknown>) {
  try {
    return await client.workflow.start(type, {
      taskQueue: config.temporal.taskQueue,
      workflowId: dataWorkflowId(environment),
      workflowIdConflictPolicy: 'FAIL',
      args: [input],
    });
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      throw new Error(`a backup or restore of ${environment} is already running (workflow ${dataWorkflowId(environment)}); wait for it or look at it in the Web UI`);
    }
    throw err;
  }
}

/**
 * The environment's running data workflow, if it is a restore; otherwise an error saying what is (or is not)
 * running, instead of one "nothing waits" for every case. Bound to the run found, so a decision never reaches a
 * later run under the same id.
 */
async function runningRestore(client: Client, environment: string): Promise<WorkflowHandle> {
  const id = dataWorkflowId(environment);
  const description = await client.workflow
    .getHandle(id)
    .describe()
    .catch((err: Error) => {
      if (err instanceof WorkflowNotFoundError) throw new Error(`no backup or restore of ${environment} has run (no workflow ${id}); nothing to decide`);
      throw err;
    });
  if (description.status.name !== 'RUNNING') {
    throw new Error(`no restore of ${environment} is waiting for approval: the last data operation (${description.type}, workflow ${id}) is ${description.status.name.toLowerCase()}`);
  }
  if (description.type !== 'restore') {
    throw new Error(`the data operation running for ${environment} is a ${description.type}, not a restore; nothing to approve or reject`);
  }
  return client.workflow.getHandle(id, description.runId);
}

export function addBackupCommands(program: Command, cfg: () => OpsConfig): void {
  program
    .command('backup')
    .description('back up an environment (database, application, config, uploads), verify it, print the manifest')
    .requiredOption('-e, --env <name>', 'environment')
    .option('-k, --kinds <list>', 'comma-separated kinds (default: all)')
    .option('-r, --reason <text>', 'why (kept in the manifest)', 'manual backup')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { env: string; kinds?: string; reason: string; json?: boolean }) => {
      const config = cfg();
      getEnvironment(config, opts.env);
      const kinds = opts.kinds !== undefined ? opts.kinds.split(',').map((k) => k.trim()) : undefined;
      const input = checkInput('backup', backupInputSchema, { environment: opts.env, reason: opts.reason, requestedBy: operator(), ...(kinds ? { kinds } : {}) });
      const result = await withClient(config, async (client) => {
        const handle = await startDataWorkflow(client, config, opts.env, 'backup', input);
        if (!opts.json) console.error(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})`);
        const result = handle.result() as Promise<BackupResult>;
        if (!opts.json) await followProgress(handle, result);
        return result;
      });
      console.log(opts.json ? JSON.stringify(result, null, 2) : formatBackup(result));
    });

  const backups = program.command('backups').description('the backup catalogue');
  backups
    .command('list')
    .description('backups of an environment, newest first')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--json', 'print the catalogue as JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      const config = cfg();
      getEnvironment(config, opts.env);
      const entries = await withClient(config, (client) =>
        client.workflow.execute('listBackups', { taskQueue: config.temporal.taskQueue, workflowId: `listBackups-${opts.env}-${randomUUID()}`, args: [{ environment: opts.env }] }),
      );
      console.log(opts.json ? JSON.stringify(entries, null, 2) : formatCatalogue(entries as CatalogueEntry[]));
    });
  backups
    .command('verify <backupId>')
    .description('re-verify a backup: checksums, archive listing and (unless --no-restore-test) a restore into a scratch database')
    .option('--no-restore-test', 'only checksums and the archive listing')
    .action(async (backupId: string, opts: { restoreTest: boolean }) => {
      const config = cfg();
      const { environment } = parseBackupId(backupId);
      getEnvironment(config, environment);
      const input = checkInput('verifyBackup', verifyBackupInputSchema, { environment, backupId, restoreTest: opts.restoreTest, requestedBy: operator() });
      const v = (await withClient(config, (client) =>
        client.workflow.execute('verifyBackup', {
          taskQueue: config.temporal.taskQueue,
          workflowId: `verifyBackup-${backupId}`,
          args: [input],
        }),
      )) as Verification;
      console.log(`backup ${backupId}: ${v.status} (checksums ${v.checksums}${v.archiveList ? `, archive ${v.archiveList}` : ''})`);
    });

  backups
    .command('import <backupId>')
    .description('trust a backup llmchat-ops did not sign: copy its directory into the backups directory, inspect, then re-sign with --confirm')
    .option('--confirm <sha256>', 'the manifest sha256 printed by the inspection: re-sign exactly that manifest')
    .option('--json', 'print the result as JSON')
    .action(async (backupId: string, opts: { confirm?: string; json?: boolean }) => {
      const config = cfg();
      const { environment } = parseBackupId(backupId);
      getEnvironment(config, environment);
      const input = checkInput('importBackup', importBackupInputSchema, { environment, backupId, requestedBy: operator(), ...(opts.confirm ? { confirm: opts.confirm } : {}) });
      const s = (await withClient(config, (client) =>
        client.workflow.execute('importBackup', {
          taskQueue: config.temporal.taskQueue,
          workflowId: `importBackup-${backupId}-${randomUUID()}`,
          args: [input],
        }),
      )) as ImportSummary;
      if (opts.json) return console.log(JSON.stringify(s, null, 2));
      console.log(formatImport(s));
      if (!s.imported) console.log(`\nIf this is the backup you expect, import exactly it with:\n  llmchat-ops backups import ${s.backupId} --confirm ${s.manifestSha256}`);
    });

  program
    .command('restore <backupId>')
    .description('restore one kind of a backup; over live data it waits for `llmchat-ops approve <env> --gate <id>` and takes a safety backup first')
    .requiredOption('-k, --kind <kind>', 'database | application | config | uploads')
    .option('-t, --target <name>', 'restore into a new database / directory (under the temp dir) instead of over live data')
    .option('--no-wait', 'start it and return (follow it in the Web UI)')
    .option('--json', 'print the result as JSON')
    .action(async (backupId: string, opts: { kind: string; target?: string; wait: boolean; json?: boolean }) => {
      const config = cfg();
      const { environment } = parseBackupId(backupId);
      getEnvironment(config, environment);
      const input = checkInput('restore', restoreInputSchema, { environment, backupId, kind: opts.kind, requestedBy: operator(), ...(opts.target ? { target: opts.target } : {}) });
      const result = await withClient(config, async (client) => {
        const handle = await startDataWorkflow(client, config, environment, 'restore', input);
        console.error(`started ${handle.workflowId} (run ${handle.firstExecutionRunId})`);
        if (!opts.wait) return undefined;
        const done = handle.result() as Promise<RestoreOutcome>;
        let announced = false;
        const watch = setInterval(() => {
          handle.query<RestoreStatus>('restoreStatus').then((s) => {
            if (s.state === 'awaiting-approval' && !announced) {
              announced = true;
              const id = s.approval.gateId;
              console.error(printable(`waiting for approval to overwrite ${s.plan?.target} (someone other than ${operator()} must approve)${id ? ` at gate ${id}: ${s.approval.subject ?? ''}` : ''}:\n  llmchat-ops approve ${environment}${id ? ` --gate ${id}` : ''} -m "why"   (or: llmchat-ops reject ${environment} --comment "why")`, { lines: true }));
            }
          }, () => {});
        }, 1000);
        try {
          await followProgress(handle, done);
          return await done;
        } finally {
          clearInterval(watch);
        }
      });
      if (result) console.log(opts.json ? JSON.stringify(result, null, 2) : `restored ${result.kind} of ${result.backupId} into ${result.target}${result.tables !== undefined ? `: ${result.tables} tables, row counts match` : ''}${result.safetyBackupId ? ` (safety backup ${result.safetyBackupId}, approved by ${result.approvedBy})` : ''}`);
    });

  for (const [name, verb] of [
    ['approve', 'approve'],
    ['reject', 'reject'],
  ] as const) {
    program
      .command(`${name} <environment>`)
      .description(`${verb} the restore of <environment> that waits for a decision (you get the workflow's answer)${verb === 'approve' ? '; --gate names the gate whose subject you read (run without it to see it)' : ''}`)
      .option('-g, --gate <id>', `the gate ${verb === 'approve' ? 'approved (required; without it the open gate and what it would approve are shown)' : 'rejected (optional)'}, e.g. restore-1a2b3c4d`)
      .option('-m, --comment <text>', `why; kept in the run history (at most ${MAX_COMMENT_LENGTH} characters)`)
      .action(async (environment: string, opts: { comment?: string; gate?: string }) => {
        const config = cfg();
        getEnvironment(config, environment);
        const decision = { by: operator(), ...(opts.comment ? { comment: opts.comment } : {}), ...(opts.gate !== undefined ? { gate: opts.gate } : {}) };
        const parsed = decisionSchema.safeParse(decision);
        if (!parsed.success) throw new Error(`cannot ${verb}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
        await withClient(config, async (client) => {
          const id = dataWorkflowId(environment);
          const handle = await runningRestore(client, environment);
          // Bounded: a restore whose worker is down would otherwise leave the operator waiting with no word.
          const status = await client.withDeadline(Date.now() + 15_000, () => handle.query<RestoreStatus>('restoreStatus')).catch((err: Error) => {
            throw new Error(`the restore of ${environment} (workflow ${id}) does not answer its status query — is its worker running? (${err.message})`);
          });
          if (status.state === 'completed' || status.state === 'failed') throw new Error(`no restore of ${environment} is waiting for approval (the running restore is ${status.state})`);
          const gate = status.approval;
          // Consent follows the information: an approval names the gate whose subject the approver has read.
          if (verb === 'approve' && gate.gateId && parsed.data.gate !== gate.gateId) {
            throw new Error(
              `${parsed.data.gate ? `gate ${parsed.data.gate} is not the open gate` : 'name the gate you approve with --gate'}: the restore of ${environment} waits at gate ${gate.gateId}${gate.state !== 'open' ? ` (state ${gate.state})` : ''}:\n  ${printable(gate.subject ?? '?')}\nIf that is what you approve: llmchat-ops approve ${environment} --gate ${gate.gateId} -m "why"`,
            );
          }
          const answer = await executeUpdateRetrying<DecisionAnswer, [Decision]>(handle, `${verb}Restore`, [parsed.data]);
          const what = `the restore of ${status.plan?.backupId ?? '?'} (${status.plan?.kind ?? '?'}) into ${status.plan?.target ?? '?'}`;
          if (!answer.accepted) throw new Error(`${verb} refused for ${what}: ${printable(answer.message)}`);
          console.log(printable(gate.gateId ? `gate ${gate.gateId} — ${gate.subject ?? what}: ${answer.message}` : `${what}: ${answer.message}`));
        });
      });
  }
}
