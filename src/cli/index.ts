/**
 * `llmchat-ops` — the operator CLI. Every command talks to Temporal; the worker does the work.
 * Exit codes: 0 success, 1 failure (bad input, failed run, unreachable server), 2 the run finished but found
 * the service unhealthy or degraded.
 *
 * The commands live by feature, registered here in the order `--help` lists them: health.ts, backup.ts (backup,
 * backups, restore, approve/reject), maintenance.ts (maintenance, cleanup, optimize, report), faults.ts (detect,
 * alerts, ack), codec.ts, schedules.ts, release.ts (deploy … up/down); output.ts holds what they share.
 */
import { Command, CommanderError } from 'commander';
import { readFileSync } from 'node:fs';
import { WorkflowFailedError, WorkflowUpdateFailedError } from '@temporalio/client';
import { configPath, loadConfig } from '../common/config/index.js';
import { temporalOf } from '../common/temporal-connection.js';
import { addReleaseCommands } from './release.js';
import { addMaintenanceCommands } from './maintenance.js';
import { addAlertCommands } from './faults.js';
import { addCodecCommands } from './codec.js';
import { addBackupCommands } from './backup.js';
import { addHealthCommands } from './health.js';
import { addScheduleCommands } from './schedules.js';
import { describeFailure, operator, printable, withClient } from './output.js';

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

export function buildProgram(): Command {
  const program = new Command('llmchat-ops')
    .description('Durable, auditable operations for the LLMChat service on Temporal')
    .version(packageVersion(), '-V, --version', 'print the llmchat-ops version')
    .option('-c, --config <file>', 'config file (default: $LLMCHAT_OPS_CONFIG or ./ops.config.yaml)')
    .showHelpAfterError()
    .exitOverride();
  const cfg = () => loadConfig(configPath(program.opts<{ config?: string }>().config));

  addHealthCommands(program, cfg);

  program
    .command('config')
    .description('configuration tools (config check)')
    .command('check')
    .description('validate the config file: every problem is listed with the path of its key (exit 1)')
    .action(() => {
      const file = configPath(program.opts<{ config?: string }>().config);
      const config = loadConfig(file);
      const names = Object.keys(config.environments).join(', ');
      const { settings, dataConverter } = temporalOf(config); // TOML profile, TLS files and encryption keys are read here
      const encryption = dataConverter ? `payloads encrypted (AES-256-GCM)` : 'payloads not encrypted';
      console.log(`config ok: ${file} (environments: ${names}; Temporal ${settings.describe}, task queue ${config.temporal.taskQueue}; ${encryption})`);
    });

  addBackupCommands(program, cfg);

  addMaintenanceCommands(program, { cfg, operator, withClient });
  addAlertCommands(program, { cfg, operator, withClient });
  addCodecCommands(program, cfg);

  addScheduleCommands(program, cfg);
  addReleaseCommands(program, cfg, operator, withClient);
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
    if (err instanceof WorkflowFailedError || err instanceof WorkflowUpdateFailedError) {
      console.error(printable(`llmchat-ops: ${err instanceof WorkflowFailedError ? 'workflow' : 'request'} failed: ${describeFailure(err)}`));
    } else {
      // Local errors (config problems, one per line) keep their lines; other control characters are escaped.
      // Server-side refusals (e.g. WorkflowStartError) keep their reason in the cause.
      const cause = err instanceof Error && err.cause instanceof Error ? `: ${(err.cause as Error & { details?: string }).details ?? err.cause.message}` : '';
      console.error(printable(`llmchat-ops: ${err instanceof Error ? err.message : String(err)}${cause}`, { lines: true }));
    }
    return 1;
  }
}
