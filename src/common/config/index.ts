/**
 * The one schema for the operated LLMChat stack, composed from one module per section (each with its keys
 * documented beside their schema):
 *
 *   temporal              src/common/temporal-config.ts where the Temporal server is, TLS, payload encryption
 *   worker                ./worker.ts                  metrics, log level, shutdown grace, heartbeats, data host
 *   timezone              (here)                       IANA timezone of every schedule
 *   environments          ./environments.ts            url, database, redis, compose, paths, commands, thresholds
 *     .faultDetection     ./faults.ts                  fault detector thresholds, watched logs, auto-recovery
 *     .deploy             ./deploy.ts                  deploy/rollback strategy, front, health gate, bake
 *   notifications         ./notifications.ts           webhook, Slack, email, routes per severity
 *   backup                ./backup.ts                  compression, retention, signing, restore test
 *   approvals             ./approvals.ts               four eyes
 *   maintenance           ./maintenance.ts             purge, reindex, optimization, lock timeouts
 *   cleanup               ./cleanup.ts                 logs, temp files, uploads, OS upgrades
 *   report                ./report.ts                  monthly report: Prometheus, thresholds
 *   schedules             ./schedules.ts               cron expressions (checked by cron-parser)
 *   alerts                ./alerts.ts                  escalation, grace
 *   alertmanagerReceiver  ./alertmanager-receiver.ts   the webhook endpoint Alertmanager posts to
 *
 * Every duration key uses the one duration type of ./duration.ts. The config lives on the worker (and the CLI
 * host); workflows only ever see environment *names*. Secrets appear here only as the names of environment
 * variables, resolved by {@link resolveSecret} on the worker when an activity needs them.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

import { resolveTemporalPaths, temporalSchema } from '../temporal-config.js';
import { alertmanagerReceiverSchema } from './alertmanager-receiver.js';
import { alertsSchema } from './alerts.js';
import { approvalsSchema } from './approvals.js';
import { backupSchema } from './backup.js';
import { cleanupSchema } from './cleanup.js';
import { environmentsSchema, type EnvironmentConfig } from './environments.js';
import { maintenanceSchema } from './maintenance.js';
import { notificationsSchema } from './notifications.js';
import { reportSchema } from './report.js';
import { schedulesSchema } from './schedules.js';
import { workerSchema } from './worker.js';

export { ENVIRONMENT_NAME, environmentSchema, thresholdsSchema, type EnvironmentConfig, type Thresholds } from './environments.js';
export { faultDetectionSchema, faultThresholdsSchema, type FaultDetectionSettings, type FaultThresholds } from './faults.js';
export { deploySchema, type DeploySettings } from './deploy.js';
export { channel, notificationsSchema, severity, type Channel, type NotificationSettings, type Severity } from './notifications.js';
export { backupSchema, type BackupSettings } from './backup.js';
export { approvalsSchema, type ApprovalSettings } from './approvals.js';
export { maintenanceSchema, type MaintenanceSettings } from './maintenance.js';
export { cleanupSchema, type CleanupSettings } from './cleanup.js';
export { reportSchema, type ReportSettings } from './report.js';
export { cronExpression, cronProblem, scheduleSchema, type ScheduleSettings } from './schedules.js';
export { alertsSchema, type AlertSettings } from './alerts.js';
export { alertmanagerReceiverSchema, type AlertmanagerReceiverSettings } from './alertmanager-receiver.js';
export { workerSchema, type WorkerSettings } from './worker.js';
export { durationIn, durationMs, parseDuration, type DurationUnit } from './duration.js';

export const configSchema = z
  .strictObject({
    temporal: temporalSchema.default(temporalSchema.parse({})),
    worker: workerSchema.default(workerSchema.parse({})),
    /** IANA timezone every schedule's calendar is read in. Default UTC. */
    timezone: z.string().min(1).default('UTC'),
    environments: environmentsSchema,
    notifications: notificationsSchema.default({
      routes: { critical: ['email', 'slack', 'webhook'], warning: ['slack', 'webhook'], info: ['webhook'] },
    }),
    backup: backupSchema.default(backupSchema.parse({})),
    approvals: approvalsSchema.default({ allowSelfApproval: false }),
    maintenance: maintenanceSchema.default(maintenanceSchema.parse({})),
    cleanup: cleanupSchema.default(cleanupSchema.parse({})),
    report: reportSchema.default(reportSchema.parse({})),
    schedules: schedulesSchema.default({}),
    alerts: alertsSchema.default(alertsSchema.parse({})),
    alertmanagerReceiver: alertmanagerReceiverSchema.default(alertmanagerReceiverSchema.parse({})),
  })
  .superRefine((cfg, ctx) => {
    if (Object.keys(cfg.environments).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['environments'], message: 'at least one environment is required' });
    }
    const receiver = cfg.alertmanagerReceiver;
    if (receiver.tokenFile && receiver.tokenEnv) {
      ctx.addIssue({ code: 'custom', path: ['alertmanagerReceiver'], message: 'set tokenFile or tokenEnv, not both' });
    }
    if (receiver.enabled && !receiver.tokenFile && !receiver.tokenEnv && !receiver.allowUnauthenticated) {
      ctx.addIssue({ code: 'custom', path: ['alertmanagerReceiver'], message: 'the receiver needs a token: tokenFile (scripts/receiver-token.sh generates one) or tokenEnv; or allowUnauthenticated: true' });
    }
    for (const [name, env] of Object.entries(cfg.environments)) {
      if (env.deploy.strategy === 'blue-green' && !env.deploy.front) {
        ctx.addIssue({ code: 'custom', path: ['environments', name, 'deploy', 'front'], message: 'strategy blue-green needs a front (nginx) with two slot ports' });
      }
      if (env.deploy.databaseRollback === 'restore-backup' && !env.deploy.backupBeforeDeploy) {
        ctx.addIssue({ code: 'custom', path: ['environments', name, 'deploy', 'databaseRollback'], message: 'restore-backup restores the pre-deploy backup: it needs backupBeforeDeploy: true' });
      }
      const slots = env.deploy.front?.slots;
      if (slots && (slots.blue === slots.green || [slots.blue, slots.green].includes(Number(new URL(env.url).port || 80)))) {
        ctx.addIssue({ code: 'custom', path: ['environments', name, 'deploy', 'front', 'slots'], message: 'the two slot ports must differ from each other and from the port of the environment URL' });
      }
    }
    for (const [name, schedule] of Object.entries(cfg.schedules)) {
      schedule.environments.forEach((env, i) => {
        if (!(env in cfg.environments)) {
          ctx.addIssue({
            code: 'custom',
            path: ['schedules', name, 'environments', i],
            message: `unknown environment "${env}" (known: ${Object.keys(cfg.environments).join(', ')})`,
          });
        }
      });
    }
    try {
      new Intl.DateTimeFormat('en', { timeZone: cfg.timezone });
    } catch {
      ctx.addIssue({ code: 'custom', path: ['timezone'], message: `unknown IANA timezone "${cfg.timezone}"` });
    }
  });

export type OpsConfig = z.infer<typeof configSchema>;

/** Every problem of a config file, each with the dotted path of the offending key. */
export class ConfigError extends Error {
  override readonly name = 'ConfigError';
  constructor(
    readonly source: string,
    readonly problems: readonly string[],
  ) {
    super(`Invalid config ${source}:\n${problems.map((p) => `  - ${p}`).join('\n')}`);
  }
}

/** `${VAR}` and `${VAR:-default}` in string values, so paths and ports can follow the operator's environment. */
function interpolate(value: unknown, where: string, problems: string[]): unknown {
  if (typeof value === 'string') {
    return value.replace(/\$\{([A-Z_][A-Z0-9_]*)(?::-([^}]*))?\}/g, (_m, name: string, fallback?: string) => {
      const v = process.env[name];
      if (v !== undefined && v !== '') return v;
      if (fallback !== undefined) return fallback;
      problems.push(`${where}: environment variable ${name} is not set and has no default`);
      return '';
    });
  }
  if (Array.isArray(value)) return value.map((v, i) => interpolate(v, `${where}.${i}`, problems));
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [k, interpolate(v, where ? `${where}.${k}` : k, problems)]),
    );
  }
  return value;
}

/** Parses and validates config text; relative paths are resolved against `baseDir`. Throws {@link ConfigError}. */
export function parseConfig(text: string, source: string, baseDir: string): OpsConfig {
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (err) {
    throw new ConfigError(source, [`not valid YAML: ${(err as Error).message}`]);
  }
  const problems: string[] = [];
  const expanded = interpolate(raw, '', problems);
  const result = configSchema.safeParse(expanded);
  if (!result.success) {
    for (const issue of result.error.issues) {
      problems.push(`${issue.path.length ? issue.path.join('.') : '(root)'}: ${issue.message}`);
    }
  }
  if (problems.length > 0 || !result.success) throw new ConfigError(source, problems);
  const cfg = result.data;
  for (const env of Object.values(cfg.environments)) {
    const p = env.paths;
    for (const key of ['logs', 'uploads', 'config', 'backups', 'temp', 'app'] as const) p[key] = path.resolve(baseDir, p[key]);
    p.disks = p.disks.map((d) => path.resolve(baseDir, d));
    p.state = p.state ? path.resolve(baseDir, p.state) : path.join(p.temp, 'ops-state');
    env.compose.file = path.resolve(baseDir, env.compose.file);
    // A command named by a relative path (`app/build-images.sh`) is relative to this file, like the paths above;
    // a bare name (`npm`) is looked up on PATH.
    for (const argv of Object.values(env.commands)) {
      if (argv?.[0] && argv[0].includes('/') && !path.isAbsolute(argv[0])) argv[0] = path.resolve(baseDir, argv[0]);
    }
  }
  cfg.report.directory = path.resolve(baseDir, cfg.report.directory);
  resolveTemporalPaths(cfg.temporal, baseDir);
  if (cfg.alertmanagerReceiver.tokenFile) cfg.alertmanagerReceiver.tokenFile = path.resolve(baseDir, cfg.alertmanagerReceiver.tokenFile);
  for (const [name, env] of Object.entries(cfg.environments)) {
    env.deploy.stateDir = path.resolve(baseDir, env.deploy.stateDir ?? path.join(path.dirname(env.paths.backups), `releases-${name}`));
    if (env.deploy.front) env.deploy.front.dir = path.resolve(baseDir, env.deploy.front.dir ?? path.join(env.deploy.stateDir, 'front'));
    for (const [k, v] of Object.entries(env.deploy.composeEnv)) if (v.startsWith('./') || v.startsWith('../')) env.deploy.composeEnv[k] = path.resolve(baseDir, v);
  }
  return cfg;
}

/** The config file: `--config`, else `$LLMCHAT_OPS_CONFIG`, else `./ops.config.yaml`. */
export function configPath(explicit?: string): string {
  return path.resolve(explicit ?? process.env.LLMCHAT_OPS_CONFIG ?? 'ops.config.yaml');
}

export function loadConfig(file = configPath()): OpsConfig {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new ConfigError(file, [`cannot read the file: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`]);
  }
  return parseConfig(text, file, path.dirname(file));
}

/** Thrown for an environment name the config does not define; names the known ones. */
export class UnknownEnvironmentError extends Error {
  override readonly name = 'UnknownEnvironmentError';
  constructor(
    readonly environment: string,
    readonly known: readonly string[],
  ) {
    super(`Unknown environment ${JSON.stringify(environment)}; known environments: ${known.join(', ')}`);
  }
}

/** The directory of the fault detector's state files for an environment (`paths.state`, default `<temp>/ops-state`). */
export function stateDirOf(env: EnvironmentConfig): string {
  return env.paths.state ?? path.join(env.paths.temp, 'ops-state');
}

export function getEnvironment(cfg: OpsConfig, name: string): EnvironmentConfig {
  const env = Object.hasOwn(cfg.environments, name) ? cfg.environments[name] : undefined;
  if (!env) throw new UnknownEnvironmentError(name, Object.keys(cfg.environments));
  return env;
}

export class MissingSecretError extends Error {
  override readonly name = 'MissingSecretError';
  constructor(readonly variable: string) {
    super(`Secret environment variable ${variable} is not set on the worker`);
  }
}

/** Reads a secret by the name of its environment variable; only ever called on the worker. */
export function resolveSecret(variable: string | undefined): string | undefined {
  if (variable === undefined) return undefined;
  const value = process.env[variable];
  if (value === undefined || value === '') throw new MissingSecretError(variable);
  return value;
}
