/** Section `worker`: the worker process itself (metrics, logging, shutdown, heartbeats, its data host). */
import { hostname } from 'node:os';
import { z } from 'zod';

import { durationMs } from './duration.js';
import { port } from './fields.js';

const hostName = z.string().regex(/^[A-Za-z0-9._-]{1,64}$/, 'must be a host name');

export const workerSchema = z
  .strictObject({
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
    /** This machine's name, as the data-host claim shows it (default: its hostname). Set it to tell workers apart in tests. */
    host: hostName.optional(),
    /**
     * The host whose disk holds `paths.backups`/`paths.temp` (default: this machine, `worker.host`). Data
     * activities (backup store, temp files) run on task queue `<temporal.taskQueue>-data`, which only the worker
     * on this host polls; workers on other hosts poll the main queue only. Two hosts claiming to be the data host
     * of one task queue: the second refuses to start (see src/common/data-host.ts).
     */
    dataHost: hostName.optional(),
    /** Activities this worker runs at once, per task queue (default: the SDK's, 100). */
    maxConcurrentActivities: z.number().int().min(1).max(10_000).optional(),
  })
  .transform((w) => {
    const host = w.host ?? hostname();
    return { ...w, host, dataHost: w.dataHost ?? host };
  });
export type WorkerSettings = z.infer<typeof workerSchema>;
