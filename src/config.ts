/**
 * The one schema for the operated LLMChat stack. The config lives on the worker (and the CLI host); workflows
 * only ever see environment *names*. Secrets appear here only as the names of environment variables, resolved
 * by {@link resolveSecret} on the worker when an activity needs them.
 */
import { readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';

import { ENVIRONMENT_NAME } from './names.js';
import { resolveTemporalPaths, temporalSchema } from './temporal-config.js';

export { ENVIRONMENT_NAME };
const ENV_VAR_NAME = /^[A-Z_][A-Z0-9_]*$/;

const envVarName = z.string().regex(ENV_VAR_NAME, 'must be an environment variable name like LLMCHAT_DB_PASSWORD');
const httpUrl = z.url({ protocol: /^https?$/, error: 'must be an http(s) URL' });
/** Ports may come from `${VAR}` interpolation, so numeric strings are accepted. */
const port = z.coerce.number().int().min(1).max(65535);
const percent = z.number().min(0).max(100);
/** A command as an argument vector; never a shell string. */
const argv = z.array(z.string().min(1)).min(1, 'must name a program and its arguments as a list');

const thresholdsSchema = z.strictObject({
  /** Disk usage above which the daily check alerts (the guide: 80 %). */
  diskPercent: percent.default(80),
  /** Memory usage above which the daily check alerts (the guide: 80 %). */
  memoryPercent: percent.default(80),
  /** More ERROR lines than this in the app log raise an alert (the guide's log monitor: 10). */
  logErrorLines: z.int().min(0).default(10),
  /** An app log not written for longer than this is stale (the guide's log monitor: 1 h). */
  logStaleMinutes: z.number().positive().default(60),
  /** Per-request timeout of the HTTP health checks. */
  httpTimeoutMs: z.int().min(100).max(60_000).default(5_000),
});

const durationMs = z
  .string()
  .regex(/^\d+(ms|s|m|h|d)$/, 'must be a duration like 500ms, 30s, 5m, 1h or 2d')
  .transform((d) => {
    const unit = d.endsWith('ms') ? 'ms' : d.slice(-1);
    const n = Number(d.slice(0, d.length - unit.length));
    return unit === 'ms' ? n : n * DURATION_UNIT_MS[unit as keyof typeof DURATION_UNIT_MS];
  });

/** The fault detector's thresholds (the guide's fault-detection service: 5 %, 2 s, 90 %, 85 %). */
const faultThresholdsSchema = z.strictObject({
  /** 5xx share of the requests in the window since the previous run, in percent (the guide: 5). */
  errorRatePercent: percent.default(5),
  /** Mean response time over the window, and the /health probe's own time, in ms (the guide: 2000). */
  responseTimeMs: z.int().min(1).default(2000),
  /** Host memory in use (the guide: 90 %). */
  memoryPercent: percent.default(90),
  /** Fullest watched filesystem (the guide: 85 %). */
  diskPercent: percent.default(85),
  /** Fewer requests than this in a window say nothing about an error rate. */
  minRequests: z.int().min(1).default(10),
  /** New ERROR lines in one log file since the previous run (the guide's log monitor: 10). */
  logErrorLines: z.int().min(0).default(10),
  /** A watched log not written for longer than this is stale (the guide: 1 h). */
  logStaleMinutes: z.number().positive().default(60),
});

const faultDetectionSchema = z.strictObject({
  thresholds: faultThresholdsSchema.default(faultThresholdsSchema.parse({})),
  /**
   * Log files watched incrementally, relative to `paths.logs` or absolute (the guide: app.log, error.log and
   * nginx's access.log). Default: just `paths.appLog`.
   */
  logFiles: z.array(z.string().min(1)).default([]),
  /** Lines that count as errors contain this text (the guide: `grep ERROR`). */
  errorPattern: z.string().min(1).max(200).default('ERROR'),
  recovery: z
    .strictObject({
      /** Restart the app / flush caches by itself; false = detect and page only. */
      enabled: z.boolean().default(true),
      /** At most `restarts` restarts of the service within `per`; then a human gets the fault. Default 3 per 1h. */
      restarts: z.int().min(0).default(3),
      per: durationMs.prefault('1h'),
      /** How long a restarted service may take to answer /health again. Default 90s. */
      healthyTimeout: durationMs.prefault('90s'),
      /** Redis keys flushed when responses are slow (SCAN MATCH + UNLINK; never FLUSHALL). */
      cacheKeyPatterns: z.array(z.string().min(1).max(200).refine((p) => p !== '*', 'must not match every key: name a prefix like llmchat:cache:*')).default(['llmchat:cache:*']),
    })
    .default({ enabled: true, restarts: 3, per: 3_600_000, healthyTimeout: 90_000, cacheKeyPatterns: ['llmchat:cache:*'] }),
});
export type FaultDetectionSettings = z.infer<typeof faultDetectionSchema>;
export type FaultThresholds = z.infer<typeof faultThresholdsSchema>;
const DURATION_UNIT_MS = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
/** A duration like "30s", "10m", "24h" or "2d", read once as milliseconds (deploy settings, maintenance windows). */
const duration = (fallback: string) =>
  z
    .string()
    .regex(/^\d+(s|m|h|d)$/, 'must be a duration like 30m, 24h or 2d')
    .default(fallback)
    .transform((d) => Number(d.slice(0, -1)) * DURATION_UNIT_MS[d.slice(-1) as keyof typeof DURATION_UNIT_MS]);

const smokeCheckSchema = z.strictObject({
  /** Path on the environment's URL, e.g. /health/db. */
  path: z.string().regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/, 'must be a URL path starting with /'),
  method: z.enum(['GET', 'HEAD']).default('GET'),
  /** The HTTP status the check expects (default 200). */
  status: z.int().min(100).max(599).default(200),
});

/**
 * How `deploy` and `rollback` run this environment (issue 8). Defaults follow the guide: `compose up -d` in place
 * (`recreate`) unless a front proxy is configured for blue/green.
 */
const deploySchema = z.strictObject({
  /** blue-green: new version beside the old one behind the nginx front, then switch; recreate: the guide's `compose up -d`. Default recreate. */
  strategy: z.enum(['blue-green', 'recreate']).default('recreate'),
  /** Image reference of a version; `{version}` is replaced by the validated version. Default llmchat-app:{version}. */
  image: z.string().regex(/^[a-z0-9][a-z0-9._/:-]*\{version\}[a-z0-9._-]*$/, 'must be an image reference containing {version}, e.g. llmchat-app:{version}').default('llmchat-app:{version}'),
  /** Where the release records and the front's files live (survives worker and server restarts). Default: <dir of paths.backups>/releases-<environment>. */
  stateDir: z.string().min(1).optional(),
  /** The front proxy (blue/green): nginx on the environment URL's port, the app on one of two slot ports. */
  front: z
    .strictObject({
      slots: z.strictObject({ blue: port, green: port }),
      /** The nginx binary. Default nginx. */
      nginx: z.string().min(1).default('nginx'),
      /** How long the old slot keeps running after a successful switch before it is stopped (in-flight requests finish). Default 2s. */
      drain: duration('2s'),
      /**
       * The front's own directory (nginx config, pid file, access log). Default `<deploy.stateDir>/front`. Every
       * worker that may deploy must find the running front there: with workers keeping their own state dirs, point
       * them all at the front's directory (see "Laying out workers" in the README).
       */
      dir: z.string().min(1).optional(),
    })
    .optional(),
  /** Compose variables the compose file reads: the version, the published port, the slot name. */
  variables: z
    .strictObject({
      version: envVarName.default('LLMCHAT_VERSION'),
      port: envVarName.default('LLMCHAT_APP_PORT'),
      slot: envVarName.default('LLMCHAT_SLOT'),
    })
    .default({ version: 'LLMCHAT_VERSION', port: 'LLMCHAT_APP_PORT', slot: 'LLMCHAT_SLOT' }),
  /** Further (non-secret) variables for the compose file; values starting with ./ or ../ are paths relative to the config file. The worker's own environment is passed through too (secrets such as the database password come from there). */
  composeEnv: z.record(z.string().regex(ENV_VAR_NAME, 'must be an environment variable name'), z.string()).default({}),
  /** The migration runner inside the image; `up`, `down --to N` or `status --json` is appended. Default node migrate.js. */
  migrate: argv.default(['node', 'migrate.js']),
  /** Take a verified database backup before anything changes. Default true. */
  backupBeforeDeploy: z.boolean().default(true),
  /**
   * What an approved database rollback after a failed deploy does. migrate-down (default): the image's runner
   * migrates the schema down to the previous version's level (data in other tables stays). restore-backup: the
   * deploy's own pre-deploy backup is restored over the live database through the `restore` workflow (safety
   * backup, staging database, row-count check, swap) — schema and data as they were before the deploy, so every
   * write since that backup is lost (kept only in the restore's safety backup). Needs backupBeforeDeploy.
   * `rollback --database` always migrates down (it has no pre-deploy backup).
   */
  databaseRollback: z.enum(['migrate-down', 'restore-backup']).default('migrate-down'),
  /** Health gate: every health endpoint and the container must be healthy this many times in a row… (default 3) */
  healthySuccesses: z.int().min(1).max(100).default(3),
  /** …within this time (default 2m). */
  healthTimeout: duration('2m'),
  /** Smoke checks after the switch, besides the version check. */
  smoke: z.array(smokeCheckSchema).default([]),
  /** Path answering {"version": "..."} (default /version). */
  versionPath: z.string().regex(/^\/[A-Za-z0-9._~/-]*$/, 'must be a URL path').default('/version'),
  /** After verify, the app's /metrics are watched this long on a durable timer (default 1m; 0s skips). */
  bake: z
    .strictObject({
      duration: duration('1m'),
      interval: duration('10s'),
      /** 5xx share above which the bake fails (the guide's fault detection: 5 %). */
      errorRatePercent: percent.default(5),
      /** Mean response time above which the bake fails (the guide's fault detection: 2 s). */
      avgLatencyMs: z.number().positive().default(2000),
      /** Fewer requests than this in the whole bake judge nothing (no regression can be seen). */
      minRequests: z.int().min(0).default(20),
    })
    .default({ duration: 60_000, interval: 10_000, errorRatePercent: 5, avgLatencyMs: 2000, minRequests: 20 }),
  /** A database rollback after a failed deploy waits for approveDatabaseRollback this long (default 24h)… */
  approvalTimeout: duration('24h'),
  /** …and alerts (critical) when nobody answered after this long (default 30m). */
  escalateAfter: duration('30m'),
});
export type DeploySettings = z.infer<typeof deploySchema>;

const environmentSchema = z.strictObject({
  /** Base URL of the LLMChat backend (the guide: http://localhost:3001). */
  url: httpUrl,
  database: z.strictObject({
    host: z.string().min(1).default('127.0.0.1'),
    port: port.default(5432),
    name: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain PostgreSQL identifier'),
    user: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain PostgreSQL identifier'),
    passwordEnv: envVarName.optional(),
  }),
  redis: z.strictObject({
    url: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// URL without a password' }),
    passwordEnv: envVarName.optional(),
  }),
  compose: z.strictObject({
    file: z.string().min(1),
    project: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'must be a compose project name (lowercase, digits, - and _)'),
    service: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be a compose service name'),
  }),
  paths: z.strictObject({
    /** Directory of the app's log files. */
    logs: z.string().min(1),
    /** The app log inside `logs` that the checks read (the guide: app.log). */
    appLog: z.string().min(1).default('app.log'),
    uploads: z.string().min(1),
    config: z.string().min(1),
    backups: z.string().min(1),
    temp: z.string().min(1),
    /** The application checkout (for builds and file backups). */
    app: z.string().min(1),
    /** Filesystems whose usage the checks measure, besides the ones holding the paths above. */
    disks: z.array(z.string().min(1)).default(['/']),
    /** Where the worker keeps the fault detector's state (log offsets, last metrics, recovery ledger). Default: `<temp>/ops-state`. */
    state: z.string().min(1).optional(),
  }),
  commands: z
    .strictObject({ test: argv, build: argv, migrateUp: argv, migrateDown: argv })
    .partial()
    .default({}),
  thresholds: thresholdsSchema.default(thresholdsSchema.parse({})),
  faultDetection: faultDetectionSchema.default(faultDetectionSchema.parse({})),
  deploy: deploySchema.default(() => deploySchema.parse({})),
});

const severity = z.enum(['critical', 'warning', 'info']);
const channel = z.enum(['email', 'slack', 'webhook']);
export type Severity = z.infer<typeof severity>;
export type Channel = z.infer<typeof channel>;

const notificationsSchema = z.strictObject({
  webhook: z
    .strictObject({
      url: httpUrl,
      tokenEnv: envVarName.optional(),
      /** HMAC-SHA256 key for the `x-llmchat-signature` header over `<timestamp>.<body>` (see README). */
      signingSecretEnv: envVarName.optional(),
    })
    .optional(),
  slack: z.strictObject({ webhookUrlEnv: envVarName }).optional(),
  email: z
    .strictObject({
      host: z.string().min(1),
      port: port.default(587),
      secure: z.boolean().default(false),
      from: z.email(),
      to: z.array(z.email()).min(1),
      userEnv: envVarName.optional(),
      passwordEnv: envVarName.optional(),
    })
    .optional(),
  /** Which channels each severity reaches (the guide: critical → all three, warning → slack+webhook, info → webhook). */
  routes: z
    .strictObject({ critical: z.array(channel), warning: z.array(channel), info: z.array(channel) })
    .default({ critical: ['email', 'slack', 'webhook'], warning: ['slack', 'webhook'], info: ['webhook'] }),
});

/** A duration like "500ms", "30s" or "5m", read as milliseconds. */
const workerDuration = z
  .string()
  .regex(/^\d+(ms|s|m)$/, 'must be a duration like 500ms, 30s or 5m')
  .transform((d) => (d.endsWith('ms') ? Number(d.slice(0, -2)) : Number(d.slice(0, -1)) * DURATION_UNIT_MS[d.slice(-1) as 's' | 'm']));

const backupSchema = z.strictObject({
  /** Compressor for every artifact: zstd (multi-threaded; the default), gzip, or none. */
  compression: z
    .strictObject({
      program: z.enum(['zstd', 'gzip', 'none']).default('zstd'),
      /** zstd 1..19, gzip 1..9; ignored for none. */
      level: z.int().min(1).max(19).default(3),
      /** zstd worker threads; 0 = one per core. */
      threads: z.int().min(0).max(64).default(0),
    })
    .default({ program: 'zstd', level: 3, threads: 0 }),
  /** pg_restore parallel jobs (verification restore and restores). */
  jobs: z.int().min(1).max(32).default(2),
  /** Left out of the application archive (names matched at any depth, like tar --exclude). */
  exclude: z.array(z.string().regex(/^[^/\0]+$/, 'must be a file or directory name, not a path')).default(['node_modules', 'dist', '.git']),
  retention: z
    .strictObject({
      /** Backups older than this are removed (the guide: 30 days)… */
      maxAgeDays: z.number().positive().default(30),
      /** …and only this many of the newest are kept. The newest verified backup is always kept. */
      keepCount: z.int().min(1).default(30),
    })
    .default({ maxAgeDays: 30, keepCount: 30 }),
  /**
   * Environment variable (on the worker) holding the key that signs every manifest (HMAC-SHA256, at least 16
   * bytes). A backup whose manifest does not verify is never restored. Default LLMCHAT_BACKUP_SIGNING_KEY.
   */
  signingKeyEnv: envVarName.default('LLMCHAT_BACKUP_SIGNING_KEY'),
  /** Variables holding earlier signing keys, accepted for verification only (key rotation). Default none. */
  previousSigningKeyEnvs: z.array(envVarName).max(10).default([]),
  /**
   * The PostgreSQL role the verification restore test runs the dump as: it must own nothing but the scratch
   * database and hold no power (checked at every run; see src/backup/restore-test-role.ts). The app role must be a
   * member of it. Default role llmchat_restore_test, password in LLMCHAT_RESTORE_TEST_DB_PASSWORD.
   */
  restoreTest: z
    .strictObject({
      role: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a plain lowercase PostgreSQL role name'),
      passwordEnv: envVarName,
    })
    .default({ role: 'llmchat_restore_test', passwordEnv: 'LLMCHAT_RESTORE_TEST_DB_PASSWORD' }),
  /** How long a restore over live data waits for approveRestore before it gives up (e.g. "24h", "30m"); read as milliseconds. */
  approvalTimeout: z
    .string()
    .regex(/^\d+(s|m|h|d)$/, 'must be a duration like 30m, 24h or 2d')
    .default('24h')
    .transform((d) => Number(d.slice(0, -1)) * DURATION_UNIT_MS[d.slice(-1) as keyof typeof DURATION_UNIT_MS]),
});
export type BackupSettings = z.infer<typeof backupSchema>;

const approvalsSchema = z.strictObject({
  /**
   * May the person who requested an operation (a restore over live data, a deploy's database rollback) also approve
   * it? Off by default (four eyes); turn on for single-operator installations.
   */
  allowSelfApproval: z.boolean().default(false),
});
export type ApprovalSettings = z.infer<typeof approvalsSchema>;

const identifier = z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a plain lowercase PostgreSQL identifier');
const DAY_LIMIT = 3650;
/** A retention window in days: > 0 and at most ten years (0 or a typo like 30000 would purge everything or nothing). */
const days = (dflt: number) => z.number().positive('must be more than 0 days').max(DAY_LIMIT, `must be at most ${DAY_LIMIT} days`).default(dflt);

const indexSpec = z.strictObject({ name: identifier, table: identifier, columns: z.array(identifier).min(1).max(8) });
/** The guide's 数据库优化 indexes. */
const GUIDE_INDEXES = [
  { name: 'idx_messages_session_created', table: 'messages', columns: ['session_id', 'created_at'] },
  { name: 'idx_sessions_user_updated', table: 'chat_sessions', columns: ['user_id', 'updated_at'] },
  { name: 'idx_agents_provider_active', table: 'agents', columns: ['provider', 'is_active'] },
];

const maintenanceSchema = z.strictObject({
  /** Sessions whose updated_at is older than this are purged (the guide: 30 days). */
  sessionIdleDays: days(30),
  /** Messages older than this whose session no longer exists are purged (the guide: 90 days). */
  orphanMessageDays: days(90),
  /** Target duration of one purge transaction; the batch size adapts to it (the issue: ≤ 100 ms). */
  batchTargetMs: z.int().min(5).max(1000).default(40),
  /** Rows examined by the first batch (then adapted between 100 and 100 000). */
  initialBatchRows: z.int().min(100).max(100_000).default(2000),
  /** Indexes rebuilt with REINDEX INDEX CONCURRENTLY (the guide's two). */
  reindex: z.array(identifier).default(['idx_messages_created_at', 'idx_sessions_user_id']),
  /** How long maintenance/optimization waits for a running backup, restore or deploy of the environment before it skips ("2h"). */
  maxWait: duration('2h'),
  /**
   * lock_timeout of REINDEX / CREATE INDEX CONCURRENTLY, DROP INDEX CONCURRENTLY, ANALYZE and VACUUM ("1s", or
   * "300ms"): one that cannot get its lock in this time steps out of the lock queue (where the app's statements
   * would wait behind it) and is tried again later.
   */
  lockTimeout: z
    .string()
    .regex(/^\d+(ms|s|m)$/, 'must be a duration like 500ms, 1s or 1m')
    .default('1s')
    .transform((d) => (d.endsWith('ms') ? Number(d.slice(0, -2)) : Number(d.slice(0, -1)) * (d.endsWith('m') ? 60_000 : 1000)))
    .refine((ms) => ms >= 10 && ms <= 600_000, 'must be between 10ms and 10m'),
  /** How long a maintenance statement keeps retrying after lock timeouts before its step fails ("30m"). */
  lockRetryFor: duration('30m'),
  /** Tables of the optimization's ANALYZE / VACUUM ANALYZE (the guide's three). */
  optimizeTables: z.array(identifier).default(['messages', 'chat_sessions', 'agents']),
  /** Indexes the optimization creates concurrently if missing (the guide's three). */
  optimizeIndexes: z.array(indexSpec).default(GUIDE_INDEXES),
});
export type MaintenanceSettings = z.infer<typeof maintenanceSchema>;

const cleanupSchema = z.strictObject({
  /** `*.log` and `*.log.*` in paths.logs older than this are deleted (the guide: 7 days). */
  logsDays: days(7),
  /** Temp files matching `tempPattern` in paths.temp older than this (the guide: 1 day). */
  tempDays: days(1),
  /** A glob with only `*` wildcards, matched against file names in paths.temp (the guide: llmchat-*). */
  tempPattern: z.string().regex(/^[A-Za-z0-9._*-]+$/, 'must be a file-name pattern with * wildcards only').default('llmchat-*'),
  /** Files in paths.uploads older than this (the guide: 30 days). */
  uploadsDays: days(30),
  /** Run `apt-get update && apt-get upgrade -y` (the guide's step 6). Off by default: a dry run only lists upgrades. */
  osUpgrades: z.boolean().default(false),
  /** Take the weekly backup (the backup workflow as a child) before retention. */
  backup: z.boolean().default(true),
});
export type CleanupSettings = z.infer<typeof cleanupSchema>;

const reportSchema = z.strictObject({
  /** The Prometheus that scrapes the app; without it the monthly report fails saying so. */
  prometheusUrl: httpUrl.optional(),
  /** Prometheus `job` of the app's scrape config; each environment's series carry `environment="<name>"` (monitoring/prometheus/prometheus.yml). */
  job: z.string().regex(/^[A-Za-z0-9_.:-]+$/, 'must be a plain job name').default('llmchat-app'),
  /** Where reports are written (relative to the config file). */
  directory: z.string().min(1).default('reports'),
  /** The guide's thresholds: average latency 500 ms, error rate 1 %, memory 80 %. */
  thresholds: z
    .strictObject({ averageLatencyMs: z.number().positive().default(500), errorPercent: percent.default(1), memoryPercent: percent.default(80) })
    .default({ averageLatencyMs: 500, errorPercent: 1, memoryPercent: 80 }),
  /** Queries slower than this on average count as slow (pg_stat_statements). */
  slowQueryMs: z.number().positive().default(100),
});
export type ReportSettings = z.infer<typeof reportSchema>;

const scheduleSchema = z.strictObject({
  /** Cron expression in `timezone` (five fields). */
  cron: z.string().regex(/^\S+( \S+){4}$/, 'must be a five-field cron expression'),
  environments: z.array(z.string()).min(1),
  /** Only used when the schedule is first created; afterwards an operator's pause/unpause is kept. */
  paused: z.boolean().default(false),
});

/** The alert lifecycle: one page per fault key, escalation, resolved notice. */
const alertsSchema = z.strictObject({
  /** An alert not acknowledged and not resolved after this long is escalated (to critical routes). Default 30m. */
  escalateAfter: durationMs.prefault('30m'),
  /** A fault that clears within this time after it opened never pages (0 = page at once). Default 0s. */
  grace: durationMs.prefault('0s'),
});

/** The HTTP endpoint in the worker that Alertmanager's webhook receiver posts to. */
const alertmanagerReceiverSchema = z.strictObject({
  /** Off unless configured (ops.config.yaml turns it on), so test and ad-hoc workers do not compete for the port. */
  enabled: z.boolean().default(false),
  host: z.string().min(1).default('127.0.0.1'),
  port: port.default(9465),
  /**
   * Requests must carry `Authorization: Bearer <token>`: the token is the one line of `tokenFile` (what
   * scripts/receiver-token.sh generates and Alertmanager's `credentials_file` reads), or the value of `tokenEnv`.
   */
  tokenFile: z.string().min(1).optional(),
  tokenEnv: envVarName.optional(),
  /** Without a token the receiver refuses to start, unless this is true (anyone who reaches the port can then trigger runs). */
  allowUnauthenticated: z.boolean().default(false),
});

const hostName = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be a host name');

export const configSchema = z
  .strictObject({
    temporal: temporalSchema.default(temporalSchema.parse({})),
    worker: z
      .strictObject({
        metricsPort: port.default(9464),
        logLevel: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
        /**
         * On SIGINT/SIGTERM the worker stops taking new tasks and lets running activities finish for this long
         * (e.g. "30s", "5m"); what still runs after it is cancelled (and retried by Temporal elsewhere). Default 30s.
         */
        shutdownGraceTime: workerDuration.default(30_000),
        /**
         * Longest gap between two heartbeats the worker sends to the server. Cancellation reaches an activity in
         * the answer to a heartbeat, so this bounds how long a cancelled backup or restore keeps running. Default 1s.
         */
        heartbeatThrottle: workerDuration.default(1000),
        /** This machine's name, as the data-host claim shows it (default: its hostname). Set it to tell apart workers in tests. */
        host: hostName.optional(),
        /**
         * The host whose disk holds `paths.backups`/`paths.temp` (default: this machine, `worker.host`). Data
         * activities (backup store, temp files) run on task queue `<temporal.taskQueue>-data`, which only the worker
         * on this host polls; workers on other hosts poll the main queue only. Two hosts claiming to be the data host
         * of one task queue: the second refuses to start (see src/data-host.ts).
         */
        dataHost: hostName.optional(),
        /** Activities this worker runs at once, per task queue (default: the SDK's, 100). */
        maxConcurrentActivities: z.number().int().min(1).max(10_000).optional(),
      })
      .default({ metricsPort: 9464, logLevel: 'INFO', shutdownGraceTime: 30_000, heartbeatThrottle: 1000 })
      .transform((w) => {
        const host = w.host ?? hostname();
        return { ...w, host, dataHost: w.dataHost ?? host };
      }),
    /** IANA timezone every schedule's calendar is read in. */
    timezone: z.string().min(1).default('UTC'),
    environments: z.record(z.string().regex(ENVIRONMENT_NAME, 'environment names are lowercase letters, digits and -'), environmentSchema),
    notifications: notificationsSchema.default({
      routes: { critical: ['email', 'slack', 'webhook'], warning: ['slack', 'webhook'], info: ['webhook'] },
    }),
    backup: backupSchema.default(backupSchema.parse({})),
    approvals: approvalsSchema.default({ allowSelfApproval: false }),

    maintenance: maintenanceSchema.default(maintenanceSchema.parse({})),
    cleanup: cleanupSchema.default(cleanupSchema.parse({})),
    report: reportSchema.default(reportSchema.parse({})),
    schedules: z.record(z.string(), scheduleSchema).default({}),
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
export type EnvironmentConfig = z.infer<typeof environmentSchema>;
export type Thresholds = z.infer<typeof thresholdsSchema>;

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
