/**
 * Section `environments.<name>.deploy`: how `deploy` and `rollback` run this environment (issue 8). Defaults follow
 * the guide: `compose up -d` in place (`recreate`) unless a front proxy is configured for blue/green.
 */
import { z } from 'zod';

import { durationIn, durationMs } from './duration.js';
import { argv, ENV_VAR_NAME, envVarName, percent, port } from './fields.js';

const smokeCheckSchema = z.strictObject({
  /** Path on the environment's URL, e.g. /health/db. */
  path: z.string().regex(/^\/[A-Za-z0-9._~!$&'()*+,;=:@%/?-]*$/, 'must be a URL path starting with /'),
  /** GET or HEAD. Default GET. */
  method: z.enum(['GET', 'HEAD']).default('GET'),
  /** The HTTP status the check expects (default 200). */
  status: z.int().min(100).max(599).default(200),
});

/** The front proxy (blue/green): nginx on the environment URL's port, the app on one of two slot ports. */
const frontSchema = z.strictObject({
  /** The two ports the app's slots publish; both differ from the environment URL's port. */
  slots: z.strictObject({ blue: port, green: port }),
  /** The nginx binary. Default nginx. */
  nginx: z.string().min(1).default('nginx'),
  /** How long the old slot keeps running after a successful switch before it is stopped (in-flight requests finish). Default 2s. */
  drain: durationMs('2s'),
  /**
   * The front's own directory (nginx config, pid file, access log). Default `<deploy.stateDir>/front`. Every
   * worker that may deploy must find the running front there: with workers keeping their own state dirs, point
   * them all at the front's directory (see "Laying out workers" in the README).
   */
  dir: z.string().min(1).optional(),
});

/** After verify, the app's /metrics are watched this long on a durable timer. */
const bakeSchema = z.strictObject({
  /** How long the bake watches (default 1m; 0s skips the bake). */
  duration: durationMs('1m'),
  /** How often it samples /metrics (default 10s). */
  interval: durationMs('10s'),
  /** 5xx share above which the bake fails (the guide's fault detection: 5 %). */
  errorRatePercent: percent.default(5),
  /** Mean response time above which the bake fails, in ms or as a duration like "2s" (the guide's fault detection: 2 s). */
  avgLatencyMs: durationIn('ms', z.number().positive()).default(2000),
  /** Fewer requests than this in the whole bake judge nothing (no regression can be seen). */
  minRequests: z.int().min(0).default(20),
});

export const deploySchema = z.strictObject({
  /** blue-green: new version beside the old one behind the nginx front, then switch; recreate: the guide's `compose up -d`. Default recreate. */
  strategy: z.enum(['blue-green', 'recreate']).default('recreate'),
  /** Image reference of a version; `{version}` is replaced by the validated version. Default llmchat-app:{version}. */
  image: z
    .string()
    .regex(/^[a-z0-9][a-z0-9._/:-]*\{version\}[a-z0-9._-]*$/, 'must be an image reference containing {version}, e.g. llmchat-app:{version}')
    .default('llmchat-app:{version}'),
  /** Where the release records and the front's files live (survives worker and server restarts). Default: <dir of paths.backups>/releases-<environment>. */
  stateDir: z.string().min(1).optional(),
  /** The front proxy; required by strategy blue-green. */
  front: frontSchema.optional(),
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
  healthTimeout: durationMs('2m'),
  /** Smoke checks after the switch, besides the version check. */
  smoke: z.array(smokeCheckSchema).default([]),
  /** Path answering {"version": "..."} (default /version). */
  versionPath: z.string().regex(/^\/[A-Za-z0-9._~/-]*$/, 'must be a URL path').default('/version'),
  /** The bake after verify (default 1m, sampled every 10s). */
  bake: bakeSchema.default(bakeSchema.parse({})),
  /** A database rollback after a failed deploy waits for approveDatabaseRollback this long (default 24h)… */
  approvalTimeout: durationMs('24h'),
  /** …and alerts (critical) when nobody answered after this long (default 30m). */
  escalateAfter: durationMs('30m'),
});
export type DeploySettings = z.infer<typeof deploySchema>;
