/**
 * Section `environments.<name>.faultDetection` (the guide's fault-detection service): thresholds, watched logs,
 * and the automatic recovery (restart, cache flush) with its limits.
 */
import { z } from 'zod';

import { durationIn, durationMs } from './duration.js';
import { percent } from './fields.js';

/** The fault detector's thresholds (the guide's fault-detection service: 5 %, 2 s, 90 %, 85 %). */
export const faultThresholdsSchema = z.strictObject({
  /** 5xx share of the requests in the window since the previous run, in percent (the guide: 5). */
  errorRatePercent: percent.default(5),
  /** Mean response time over the window, and the /health probe's own time, in ms or as a duration like "2s" (the guide: 2000). */
  responseTimeMs: durationIn('ms', z.int().min(1)).default(2000),
  /** Host memory in use (the guide: 90 %). */
  memoryPercent: percent.default(90),
  /** Fullest watched filesystem (the guide: 85 %). */
  diskPercent: percent.default(85),
  /** Fewer requests than this in a window say nothing about an error rate. */
  minRequests: z.int().min(1).default(10),
  /** New ERROR lines in one log file since the previous run (the guide's log monitor: 10). */
  logErrorLines: z.int().min(0).default(10),
  /** A watched log not written for longer than this is stale, in minutes or as a duration like "1h" (the guide: 1 h). */
  logStaleMinutes: durationIn('minutes', z.number().positive()).default(60),
});
export type FaultThresholds = z.infer<typeof faultThresholdsSchema>;

const recoverySchema = z.strictObject({
  /** Restart the app / flush caches by itself; false = detect and page only. Default true. */
  enabled: z.boolean().default(true),
  /** At most `restarts` restarts of the service within `per`; then a human gets the fault. Default 3 per 1h. */
  restarts: z.int().min(0).default(3),
  per: durationMs('1h'),
  /** How long a restarted service may take to answer /health again. Default 90s. */
  healthyTimeout: durationMs('90s'),
  /** Redis keys flushed when responses are slow (SCAN MATCH + UNLINK; never FLUSHALL). Default llmchat:cache:*. */
  cacheKeyPatterns: z
    .array(z.string().min(1).max(200).refine((p) => p !== '*', 'must not match every key: name a prefix like llmchat:cache:*'))
    .default(['llmchat:cache:*']),
});

export const faultDetectionSchema = z.strictObject({
  thresholds: faultThresholdsSchema.default(faultThresholdsSchema.parse({})),
  /**
   * Log files watched incrementally, relative to `paths.logs` or absolute (the guide: app.log, error.log and
   * nginx's access.log). Default: just `paths.appLog`.
   */
  logFiles: z.array(z.string().min(1)).default([]),
  /** Lines that count as errors contain this text (the guide: `grep ERROR`). */
  errorPattern: z.string().min(1).max(200).default('ERROR'),
  recovery: recoverySchema.default(recoverySchema.parse({})),
});
export type FaultDetectionSettings = z.infer<typeof faultDetectionSchema>;
