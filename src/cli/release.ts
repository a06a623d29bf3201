/**
 * The release commands of `llmchat-ops`: deploy, rollback, status, releases, approve-db-rollback,
 * reject-db-rollback (through Temporal), and up/down (local: bring an environment's app and front up or down).
 *
 * Exit codes of deploy, rollback and `status --follow`: 0 success (or database rolled back by a rollback), 1
 * refused or failed, 2 the app was rolled back (database untouched or rolled back), 3 the database was left
 * migrated (rollback rejected or not answered in time).
 */
import type { Command } from 'commander';
import { WorkflowFailedError, WorkflowNotFoundError, type Client, type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, WorkflowExecutionAlreadyStartedError } from '@temporalio/common';
import { getEnvironment, type OpsConfig } from '../common/config/index.js';
import { downEnvironment, upEnvironment } from '../activities/release/bootstrap.js';
import type { ReleaseOutcome, ReleaseState } from '../activities/release/release-store.js';
import { parseVersion } from '../activities/release/version.js';
import { releaseWorkflowId } from '../common/names.js';
import { EnvironmentKey, OperationKey, RequestedByKey, VersionKey } from '../common/search-attributes.js';
import { decisionSchema, MAX_COMMENT_LENGTH, type ApprovalStatus, type Decision, type DecisionAnswer } from '../workflows/common/approval.js';
import { checkInput } from '../workflows/common/inputs.js';
import { deployInputSchema, rollbackInputSchema } from '../workflows/release/shared.js';
import type { ReleaseProgress } from '../workflows/release/shared.js';
import type { ServingAnswer } from '../workflows/release/shared.js';
import { executeUpdateRetrying } from '../common/update-retry.js';

type WithClient = <T>(cfg: OpsConfig, fn: (client: Client) => Promise<T>) => Promise<T>;

export function exitCodeOf(outcome: ReleaseOutcome | undefined, operation: 'deploy' | 'rollback'): number {
  switch (outcome) {
    case 'success':
      return 0;
    case 'database-rolled-back':
      return operation === 'rollback' ? 0 : 2;
    case 'app-rolled-back':
      return 2;
    case 'database-left':
      return 3;
    default:
      return 1;
  }
}

const ICON: Record<string, string> = { done: 'ok  ', running: '..  ', failed: 'FAIL', skipped: 'skip', pending: '    ' };

export function formatProgress(p: ReleaseProgress): string {
  const head = `${p.operation} ${p.environment}: ${p.fromVersion ?? '(nothing)'} → ${p.version}, requested by ${p.requestedBy} at ${p.startedAt}`;
  const lines = p.steps.map((s) => `  ${ICON[s.state] ?? s.state} ${s.name.padEnd(17)} ${s.detail ?? ''}`.trimEnd());
  if (p.waitingFor) lines.push(`  waiting for: ${p.waitingFor}`);
  if (p.outcome) lines.push(`  outcome: ${p.outcome}${p.message ? ` — ${p.message}` : ''}`);
  return [head, ...lines].join('\n');
}

/** Prints each step as it starts and ends, and the approval it waits for, until the run closes. */
async function follow(handle: WorkflowHandle, environment: string, until?: Promise<unknown>): Promise<ReleaseProgress | undefined> {
  const seen = new Map<string, string>();
  let waiting = '';
  let last: ReleaseProgress | undefined;
  const done = handle.result().then(
    () => undefined,
    (err: unknown) => err,
  );
  let finished = false;
  void done.then(() => (finished = true));
  void until?.then(() => (finished = true));
  for (;;) {
    last = (await handle.query<ReleaseProgress>('progress').catch(() => undefined)) ?? last;
    for (const s of last?.steps ?? []) {
      const line = `${ICON[s.state] ?? s.state} ${s.name}${s.detail ? `: ${s.detail}` : ''}`;
      if (s.state !== 'pending' && seen.get(s.name) !== line) {
        seen.set(s.name, line);
        console.error(`  ${line}`);
      }
    }
    if (last?.waitingFor && last.waitingFor !== waiting) {
      waiting = last.waitingFor;
      const gate = await handle.query<ApprovalStatus>('databaseRollbackStatus').catch(() => undefined);
      const id = gate?.state === 'open' ? gate.gateId : undefined;
      console.error(`  waiting for: ${waiting}\n    llmchat-ops approve-db-rollback --env ${environment}${id ? ` --gate ${id}` : ''} -m "why"   (or reject-db-rollback)`);
    }
    if (finished) break;
    await Promise.race([done, ...(until ? [until] : []), new Promise((r) => setTimeout(r, 1000))]);
  }
  return (await handle.query<ReleaseProgress>('progress').catch(() => undefined)) ?? last;
}

/** Starts a release under the environment's release id; a running one is named with who started it and when. */
async function startRelease(client: Client, config: OpsConfig, type: "deploy" | "rollback", environment: string, input: object, version: string | undefined, requestedBy: string) {
  try {
    return await client.workflow.start(type, {
      taskQueue: config.temporal.taskQueue,
      workflowId: releaseWorkflowId(environment),
      workflowIdConflictPolicy: 'FAIL',
      args: [input],
      typedSearchAttributes: [
        { key: EnvironmentKey, value: environment },
        { key: OperationKey, value: type },
        { key: RequestedByKey, value: requestedBy },
        ...(version ? [{ key: VersionKey, value: version }] : []),
      ],
    });
  } catch (err) {
    if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
    const d = await client.workflow.getHandle(releaseWorkflowId(environment)).describe().catch(() => undefined);
    const attr = (k: typeof VersionKey) => d?.typedSearchAttributes.get(k);
    throw new Error(
      `a ${d?.type ?? 'release'}${attr(VersionKey) ? ` of ${attr(VersionKey)}` : ''} to ${environment} is already running (workflow ${releaseWorkflowId(environment)}, requested by ${attr(RequestedByKey) ?? 'unknown'}, started ${d?.startTime.toISOString() ?? '?'}); nothing was started`,
    );
  }
}

async function runRelease(handle: WorkflowHandle & { firstExecutionRunId?: string }, environment: string, operation: 'deploy' | 'rollback', json: boolean): Promise<number> {
  console.error(`started ${handle.workflowId} (run ${handle.firstExecutionRunId}); follow it in the Web UI or with: llmchat-ops status --env ${environment} --follow`);
  // A deploy is done for whoever waits when the new version serves and is verified (issue 18): the run then drains and
  // stops the old slot and writes the records on its own. Runs that do not know the update (or end first) are
  // waited for to the end, as before.
  const serving = operation === 'deploy'
    ? handle.executeUpdate<ServingAnswer, []>('servingVerified', { args: [] }).then((a) => (a.serving ? a : undefined), () => undefined)
    : undefined;
  const p = await follow(handle, environment, serving?.then((a) => a ?? new Promise(() => undefined)));
  const served = serving ? await Promise.race([serving, handle.result().then(() => undefined, () => undefined)]) : undefined;
  if (served) {
    const now = served.progress;
    const line = `${now.version} serves ${environment}${now.fromVersion ? ` (was ${now.fromVersion})` : ''}, verified at ${served.servingAt}; the old slot drains and stops and the release is recorded in the same run (llmchat-ops status --env ${environment})`;
    if (json) console.log(JSON.stringify({ outcome: 'serving', servingAt: served.servingAt, message: line, progress: now }, null, 2));
    else console.log(`${formatProgress(now)}\n  serving: ${line}`);
    return 0;
  }
  try {
    const result = await handle.result();
    if (json) console.log(JSON.stringify(result, null, 2));
    else if (p) console.log(formatProgress(p));
    return exitCodeOf(p?.outcome ?? 'success', operation);
  } catch (err) {
    if (!(err instanceof WorkflowFailedError)) throw err;
    const failure = err.cause instanceof ApplicationFailure ? err.cause : undefined;
    const outcome = (failure?.details?.[0] as { outcome?: ReleaseOutcome } | undefined)?.outcome ?? p?.outcome;
    if (json) console.log(JSON.stringify({ outcome, message: failure?.message ?? err.message, progress: p }, null, 2));
    else {
      if (p) console.log(formatProgress(p));
      console.error(`llmchat-ops: ${operation} ${outcome ?? 'failed'}: ${failure?.message ?? err.message}`);
    }
    return exitCodeOf(outcome, operation);
  }
}

export function formatReleases(state: ReleaseState): string {
  const cur = state.current;
  const lines = [
    `current:  ${cur ? `${cur.version} (slot ${cur.slot}, :${cur.port}, migration level ${cur.migrationLevel ?? '?'}, since ${cur.deployedAt} by ${cur.requestedBy})` : '(none recorded)'}`,
    `previous: ${state.previous ? `${state.previous.version} (migration level ${state.previous.migrationLevel ?? '?'})` : '(none)'}`,
  ];
  if (state.lease) lines.push(`running:  ${state.lease.operation} of ${state.lease.version} by ${state.lease.requestedBy} since ${state.lease.startedAt}`);
  lines.push('', 'finished at               operation  version          requested by      outcome               duration');
  for (const h of state.history) {
    lines.push(`${h.finishedAt.padEnd(25)} ${h.operation.padEnd(10)} ${`${h.fromVersion ?? '-'} → ${h.version}`.padEnd(16)} ${h.requestedBy.padEnd(17)} ${h.outcome.padEnd(21)} ${(h.durationMs / 1000).toFixed(1)} s`);
  }
  return lines.join('\n');
}

export function addReleaseCommands(program: Command, cfg: () => OpsConfig, operator: () => string, withClient: WithClient): void {
  const setExit = (code: number) => {
    if (code !== 0) process.exitCode = code;
  };

  program
    .command('deploy <version>')
    .description('deploy a version: backup, tests, image, migrate, blue/green switch, health gate, verify, bake; rolls the app back by itself on failure')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--skip-tests', 'do not run the configured test command')
    .option('--skip-backup', 'no pre-deploy database backup')
    .option('--bake <seconds>', 'bake period in seconds (default: the config; 0 skips it)')
    .option('--json', 'print the result as JSON')
    .action(async (version: string, opts: { env: string; skipTests?: boolean; skipBackup?: boolean; bake?: string; json?: boolean }) => {
      const config = cfg();
      getEnvironment(config, opts.env);
      const input = checkInput('deploy', deployInputSchema, {
        environment: opts.env,
        version,
        requestedBy: operator(),
        ...(opts.skipTests ? { skipTests: true } : {}),
        ...(opts.skipBackup ? { skipBackup: true } : {}),
        ...(opts.bake !== undefined ? { bakeSeconds: /^\d{1,6}$/.test(opts.bake) ? Number(opts.bake) : opts.bake } : {}),
      });
      setExit(await withClient(config, async (client) => runRelease(await startRelease(client, config, 'deploy', opts.env, input, input.version, operator()), opts.env, 'deploy', Boolean(opts.json))));
    });

  program
    .command('rollback')
    .description('go back to the previous release (or --to VERSION) without an outage; --database also migrates the database down after approval')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--to <version>', 'the version to go back to (default: the previous release)')
    .option('--database', 'also roll the database back to that version\'s migration level (waits for approve-db-rollback)')
    .option('--json', 'print the result as JSON')
    .action(async (opts: { env: string; to?: string; database?: boolean; json?: boolean }) => {
      const config = cfg();
      getEnvironment(config, opts.env);
      const input = checkInput('rollback', rollbackInputSchema, { environment: opts.env, requestedBy: operator(), ...(opts.to !== undefined ? { version: opts.to } : {}), ...(opts.database ? { database: true } : {}) });
      setExit(await withClient(config, async (client) => runRelease(await startRelease(client, config, 'rollback', opts.env, input, input.version, operator()), opts.env, 'rollback', Boolean(opts.json))));
    });

  program
    .command('status')
    .description('the latest deploy or rollback of an environment, step by step (--follow: until it ends; exit code from its outcome)')
    .requiredOption('-e, --env <name>', 'environment')
    .option('-f, --follow', 'follow it until it ends')
    .option('--json', 'print the progress as JSON')
    .action(async (opts: { env: string; follow?: boolean; json?: boolean }) => {
      const config = cfg();
      getEnvironment(config, opts.env);
      setExit(
        await withClient(config, async (client) => {
          const handle = client.workflow.getHandle(releaseWorkflowId(opts.env));
          const d = await handle.describe().catch(() => undefined);
          if (!d) throw new Error(`no deploy or rollback of ${opts.env} has run yet (workflow ${releaseWorkflowId(opts.env)})`);
          const p = opts.follow && d.status.name === 'RUNNING' ? await follow(handle, opts.env) : await handle.query<ReleaseProgress>('progress');
          if (!p) throw new Error(`workflow ${releaseWorkflowId(opts.env)} does not answer the progress query`);
          console.log(opts.json ? JSON.stringify(p, null, 2) : formatProgress(p));
          return p.outcome ? exitCodeOf(p.outcome, p.operation) : 0;
        }),
      );
    });

  program
    .command('releases')
    .description('the release history of an environment: version, who, when, outcome, duration (from the durable release records)')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--json', 'print the records as JSON')
    .action(async (opts: { env: string; json?: boolean }) => {
      const config = cfg();
      getEnvironment(config, opts.env);
      const state = (await withClient(config, (client) =>
        client.workflow.execute('listReleases', { taskQueue: config.temporal.taskQueue, workflowId: `listReleases-${opts.env}-${Date.now()}`, args: [{ environment: opts.env }] }),
      )) as ReleaseState;
      console.log(opts.json ? JSON.stringify(state, null, 2) : formatReleases(state));
    });

  for (const verb of ['approve', 'reject'] as const) {
    program
      .command(`${verb}-db-rollback`)
      .description(`${verb} the database rollback that the running deploy or rollback of an environment waits for (you get its answer)${verb === 'approve' ? '; --gate names the gate whose subject you read (run without it to see it)' : ''}`)
      .requiredOption('-e, --env <name>', 'environment')
      .option('-g, --gate <id>', `the gate ${verb === 'approve' ? 'approved (required; without it the open gate and what it would approve are shown)' : 'rejected (optional)'}, e.g. db-rollback-1a2b3c4d`)
      .option('-m, --comment <text>', `why; kept in the run history (at most ${MAX_COMMENT_LENGTH} characters)`)
      .action(async (opts: { env: string; comment?: string; gate?: string }) => {
        const config = cfg();
        getEnvironment(config, opts.env);
        const parsed = decisionSchema.safeParse({ by: operator(), ...(opts.comment ? { comment: opts.comment } : {}), ...(opts.gate !== undefined ? { gate: opts.gate } : {}) });
        if (!parsed.success) throw new Error(`cannot ${verb}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`);
        await withClient(config, async (client) => {
          // Bound to the run found, so a decision never reaches a later deploy under the same id.
          const id = releaseWorkflowId(opts.env);
          const description = await client.workflow
            .getHandle(id)
            .describe()
            .catch((err: Error) => {
              if (err instanceof WorkflowNotFoundError) throw new Error(`no deploy or rollback of ${opts.env} has run (no workflow ${id}); nothing to decide`);
              throw err;
            });
          if (description.status.name !== 'RUNNING') {
            throw new Error(`no database rollback of ${opts.env} is waiting for a decision: the last release (${description.type}, workflow ${id}) is ${description.status.name.toLowerCase()}`);
          }
          const handle = client.workflow.getHandle(id, description.runId);
          const gate = await handle.query<ApprovalStatus>('databaseRollbackStatus').catch(() => undefined);
          if (gate?.state !== 'open') throw new Error(`no database rollback of ${opts.env} is waiting for a decision${gate ? ` (state: ${gate.state})` : ''}`);
          // Consent follows the information: an approval names the gate whose subject the approver has read.
          if (verb === 'approve' && gate.gateId && parsed.data.gate !== gate.gateId) {
            throw new Error(
              `${parsed.data.gate ? `gate ${parsed.data.gate} is not the open gate` : 'name the gate you approve with --gate'}: the ${description.type} of ${opts.env} waits at gate ${gate.gateId}:\n  ${gate.subject ?? '?'}\nIf that is what you approve: llmchat-ops approve-db-rollback --env ${opts.env} --gate ${gate.gateId} -m "why"`,
            );
          }
          const answer = await executeUpdateRetrying<DecisionAnswer, [Decision]>(handle, `${verb}DatabaseRollback`, [parsed.data]);
          if (!answer.accepted) throw new Error(`${verb} refused: ${answer.message}`);
          console.log(`${gate.gateId ? `gate ${gate.gateId} — ` : ''}${gate.subject}: ${answer.message}`.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => `\\u{${c.codePointAt(0)!.toString(16)}}`));
        });
      });
  }

  program
    .command('up')
    .description('bring an environment\'s app up locally without Temporal: the recorded current release (or --version for a first start), its front for blue/green')
    .requiredOption('-e, --env <name>', 'environment')
    .option('--initial <version>', 'version to start when no release is recorded yet', 'v1')
    .action(async (opts: { env: string; initial: string }) => {
      const config = cfg();
      const r = await upEnvironment(config, opts.env, parseVersion(opts.initial, 'initial'), (l) => console.error(`[up ${opts.env}] ${l}`));
      console.log(`${opts.env}: ${r.version} serving on ${r.url} (slot ${r.slot})`);
    });

  program
    .command('down')
    .description('stop an environment\'s app slots and front (release records and data stay)')
    .requiredOption('-e, --env <name>', 'environment')
    .action(async (opts: { env: string }) => {
      await downEnvironment(cfg(), opts.env, (l) => console.error(`[down ${opts.env}] ${l}`));
    });
}
