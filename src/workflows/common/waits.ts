/**
 * How often the loops that can wait for hours wake up, so that a long wait never grows a run's history past a
 * few hundred events (Temporal warns at 10,240 events and a replay of a long history is slow; a day of polling
 * every 5 s would be ~170,000). Pure functions of workflow inputs: deterministic.
 */

/** An approved restore retries to start while the data id is held: first after this… */
export const BUSY_RETRY_MS = 5_000;
/**
 * …then twice as long each time, up to this (restore-wait-backoff): a day of waiting is ~100 tries, ~1,150 history
 * events with the rest of the deploy (a fixed 5 s: 17,280 tries); a restore waiting behind a long run starts at
 * most 15 min after that run ended, behind a short one (a nightly backup of minutes) within seconds to minutes.
 */
export const BUSY_RETRY_MAX_MS = 15 * 60_000;

/** The wait before the `attempt`-th retry (0-based) to start the approved restore; fixed 5 s without backoff. */
export function busyRetryDelay(attempt: number, backoff: boolean): number {
  return backoff ? Math.min(BUSY_RETRY_MAX_MS, BUSY_RETRY_MS * 2 ** Math.min(attempt, 20)) : BUSY_RETRY_MS;
}

/** A bake takes at most this many samples, however long it lasts (bake-samples-bounded). */
export const MAX_BAKE_SAMPLES = 60;

/** The time between bake samples: the configured interval, stretched so a long bake takes at most {@link MAX_BAKE_SAMPLES}. */
export function bakeIntervalMs(bakeMs: number, intervalMs: number, bounded: boolean): number {
  return bounded ? Math.max(intervalMs, Math.ceil(bakeMs / MAX_BAKE_SAMPLES)) : intervalMs;
}

/** A wait for an exclusive window checks at most about this many times, however long it may wait (exclusion-wait-bounded). */
export const MAX_EXCLUSION_CHECKS = 60;

/**
 * The time between checks for an exclusive window: a tenth of the limit, between 1 s and 1 min — and, bounded, at
 * least the limit / {@link MAX_EXCLUSION_CHECKS} (a 2 h limit: every 2 min; a day: every 24 min).
 */
export function exclusionPollMs(maxWaitMs: number, bounded: boolean): number {
  const poll = Math.min(60_000, Math.max(1_000, Math.floor(maxWaitMs / 10)));
  return bounded ? Math.max(poll, Math.ceil(maxWaitMs / MAX_EXCLUSION_CHECKS)) : poll;
}
