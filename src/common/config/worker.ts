/** Section `worker`: the worker process itself (metrics, logging, shutdown, heartbeats, its data host). */
import { hostname } from 'node:os';
import { z } from 'zod';

import { durationMs } from './duration.js';
import { port } from './fields.js';

export const workerSchema = z.strictObject({
  /** Port of the worker's Prometheus metrics endpoint. Default 9464. */
  metricsPort: port.default(9464),
  /** Log level of the worker's logger. Default INFO. */
  logLevel: z.enum(['DEBUG', 'INFO', 'WARN', 'ERROR']).default('INFO'),
  /**
   * On SIGINT/SIGTERM the worker stops taking new tasks and lets running activities finish for this long
   * (e.g. "30s", "5m"); what still runs after it is cancelled (and retried by Temporal elsewhere). Default 30s.
   */
  shutdownGraceTime: durationMs('30s'),
  /**
   * Longest gap between two heartbeats the worker sends to the server. Cancellation reaches an activity in
   * the answer to a heartbeat, so this bounds how long a cancelled backup or restore keeps running. Default 1s.
   */
  heartbeatThrottle: durationMs('1s'),
  /**
   * The host whose disk holds `paths.backups`/`paths.temp` (default: this machine's hostname). Data activities
   * read and write files there, so every worker process of a task queue must run on that one host: a worker
   * started on another host refuses to start (see src/data-host.ts).
   */
  dataHost: z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be a host name').default(hostname()),
});
export type WorkerSettings = z.infer<typeof workerSchema>;
