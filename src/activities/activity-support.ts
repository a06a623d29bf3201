/**
 * Plumbing shared by the long data activities (backup, verification, restore): heartbeats with progress details,
 * the cancellation signal, non-retryable failures for the project's permanent errors.
 */
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { asFailure } from './failures.js';

const HEARTBEAT_EVERY_MS = 1000;

export function permanent(message: string, type: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}

/** Activity context when there is one (direct calls from benchmarks have none). */
export function context(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** The latest progress of each running activity; {@link guarded} heartbeats it every second. */
const latest = new WeakMap<Context, Record<string, unknown>>();

/** Records progress (bytes, tables…) for the next heartbeat of the current activity. */
export function progress(phase: string): (details: Record<string, unknown>) => void {
  const ctx = context();
  return (details) => {
    if (ctx) latest.set(ctx, { phase, ...details });
  };
}

/**
 * Heartbeats every second while `fn` runs — also through steps that report no progress (pg_restore, CREATE
 * DATABASE), so a live activity is never mistaken for a dead one, and a dead worker is noticed quickly.
 */
export async function heartbeating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = context();
  if (!ctx || ctx.info.isLocal) return fn();
  const beat = () => ctx.heartbeat(latest.get(ctx) ?? {});
  beat();
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

export function signal(): AbortSignal | undefined {
  return context()?.cancellationSignal;
}

/** Runs an activity body, turning the project's permanent errors (and BadInput names) into non-retryable failures. */
export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await heartbeating(fn);
  } catch (err) {
    if (err instanceof Error && err.name === 'BadInput') throw permanent(err.message, 'BadInput');
    throw asFailure(err);
  }
}

/** A short, stable token for names of scratch databases and staging directories of one run. */
export function token(seed: string): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, 8);
}
