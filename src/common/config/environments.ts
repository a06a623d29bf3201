/**
 * Section `environments`: one entry per operated LLMChat environment (production, staging, …) — where the app
 * answers, its database, Redis, compose project, paths and commands, the daily check's thresholds, and the
 * sub-sections `faultDetection` (./faults.ts) and `deploy` (./deploy.ts).
 */
import { z } from 'zod';

import { ENVIRONMENT_NAME } from '../names.js';
import { deploySchema } from './deploy.js';
import { durationIn } from './duration.js';
import { faultDetectionSchema } from './faults.js';
import { argv, envVarName, httpUrl, percent, port } from './fields.js';

export { ENVIRONMENT_NAME };

const pgIdentifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/, 'must be a plain PostgreSQL identifier');

/** The daily health check's thresholds. */
export const thresholdsSchema = z.strictObject({
  /** Disk usage above which the daily check alerts (the guide: 80 %). */
  diskPercent: percent.default(80),
  /** Memory usage above which the daily check alerts (the guide: 80 %). */
  memoryPercent: percent.default(80),
  /** More ERROR lines than this in the app log raise an alert (the guide's log monitor: 10). */
  logErrorLines: z.int().min(0).default(10),
  /** An app log not written for longer than this is stale, in minutes or as a duration like "1h" (the guide's log monitor: 1 h). */
  logStaleMinutes: durationIn('minutes', z.number().positive()).default(60),
  /** Per-request timeout of the HTTP health checks, in ms or as a duration like "5s" (100ms … 60s). */
  httpTimeoutMs: durationIn('ms', z.int().min(100).max(60_000)).default(5_000),
});
export type Thresholds = z.infer<typeof thresholdsSchema>;

export const environmentSchema = z.strictObject({
  /** Base URL of the LLMChat backend (the guide: http://localhost:3001). */
  url: httpUrl,
  /** The app's PostgreSQL database; the password only by the name of its variable. */
  database: z.strictObject({
    /** Default 127.0.0.1. */
    host: z.string().min(1).default('127.0.0.1'),
    /** Default 5432. */
    port: port.default(5432),
    name: pgIdentifier,
    user: pgIdentifier,
    passwordEnv: envVarName.optional(),
  }),
  /** The app's Redis (cache flushes); a redis:// URL without a password, the password by variable name. */
  redis: z.strictObject({
    url: z.url({ protocol: /^rediss?$/, error: 'must be a redis:// URL without a password' }),
    passwordEnv: envVarName.optional(),
  }),
  /** The compose project that runs the app. `file` is relative to the config file. */
  compose: z.strictObject({
    file: z.string().min(1),
    project: z.string().regex(/^[a-z0-9][a-z0-9_-]*$/, 'must be a compose project name (lowercase, digits, - and _)'),
    service: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9_.-]*$/, 'must be a compose service name'),
  }),
  /** The app's directories on the data host; relative paths are relative to the config file. */
  paths: z.strictObject({
    /** Directory of the app's log files. */
    logs: z.string().min(1),
    /** The app log inside `logs` that the checks read (the guide: app.log). */
    appLog: z.string().min(1).default('app.log'),
    /** Uploaded files (file backups, cleanup). */
    uploads: z.string().min(1),
    /** The app's configuration directory (file backups). */
    config: z.string().min(1),
    /** Where backups are written. */
    backups: z.string().min(1),
    /** Temp files (cleanup) and, by default, the fault detector's state. */
    temp: z.string().min(1),
    /** The application checkout (for builds and file backups). */
    app: z.string().min(1),
    /** Filesystems whose usage the checks measure, besides the ones holding the paths above. */
    disks: z.array(z.string().min(1)).default(['/']),
    /** Where the worker keeps the fault detector's state (log offsets, last metrics, recovery ledger). Default: `<temp>/ops-state`. */
    state: z.string().min(1).optional(),
  }),
  /** Commands as argument lists (never shell strings); a relative program path is relative to the config file. */
  commands: z.strictObject({ test: argv, build: argv, migrateUp: argv, migrateDown: argv }).partial().default({}),
  thresholds: thresholdsSchema.default(thresholdsSchema.parse({})),
  faultDetection: faultDetectionSchema.default(faultDetectionSchema.parse({})),
  deploy: deploySchema.default(() => deploySchema.parse({})),
});
export type EnvironmentConfig = z.infer<typeof environmentSchema>;

/** The environments map: names are lowercase letters, digits and -. */
export const environmentsSchema = z.record(z.string().regex(ENVIRONMENT_NAME, 'environment names are lowercase letters, digits and -'), environmentSchema);
