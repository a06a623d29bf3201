/**
 * Plumbing shared by the long data activities (backup, verification, restore): heartbeats with progress details,
 * the cancellation signal, non-retryable failures for the project's permanent errors.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { NON_RETRYABLE_ERROR_TYPES, type PermanentErrorType } from '../../common/errors.js';
import { asFailure } from './failures.js';

const HEARTBEAT_EVERY_MS = 1000;

/** A failure that will not go away on retry; its type is one of the list in src/common/errors.ts. */
export function permanent(message: string, type: PermanentErrorType): ApplicationFailure {
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
export const beating = new WeakSet<Context>();
async function heartbeating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = context();
  if (!ctx || ctx.info.isLocal || beating.has(ctx)) return fn();
  beating.add(ctx);
  const beat = () => ctx.heartbeat(latest.get(ctx) ?? {});
  beat();
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    beating.delete(ctx);
  }
}

/** Signals that also stop the current activity's work, e.g. the loss of the data lock it holds. */
const alsoAbortOn = new AsyncLocalStorage<AbortSignal>();

/** Runs `fn` so that {@link signal} inside it also fires when `extra` does. */
export function abortingOn<T>(extra: AbortSignal, fn: () => Promise<T>): Promise<T> {
  const outer = alsoAbortOn.getStore();
  return alsoAbortOn.run(outer ? AbortSignal.any([outer, extra]) : extra, fn);
}

/** Fires on cancellation of the activity and on the loss of anything it holds (see {@link abortingOn}). */
export function signal(): AbortSignal | undefined {
  const cancelled = context()?.cancellationSignal;
  const extra = alsoAbortOn.getStore();
  if (!extra) return cancelled;
  return cancelled ? AbortSignal.any([cancelled, extra]) : extra;
}

/**
 * Runs a data activity body with heartbeats, turning errors named in src/common/errors.ts's NON_RETRYABLE_ERROR_TYPES
 * (permanent errors and errors from bad data read back from disk) into non-retryable failures.
 */
export async function guarded<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await heartbeating(fn);
  } catch (err) {
    throw asFailure(err, NON_RETRYABLE_ERROR_TYPES);
  }
}

/** A short, stable token for names of scratch databases and staging directories of one run. */
export function token(seed: string): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, 8);
}

/** "<activity> <workflow id>" of the running activity, for application_name and lock holders. */
export function runningAs(): string {
  const info = context()?.info;
  return info ? `${info.activityType} ${info.workflowExecution?.workflowId ?? '?'}` : `direct pid ${process.pid}`;
}

/**
 * A token unique to this activity execution, stable across its retries: scratch databases and temp files of one
 * run never collide with another run's (two verifications of one backup at once), and a retry finds and removes
 * what its earlier attempt left.
 */
export function runToken(): string {
  const info = context()?.info;
  const run = info?.workflowExecution;
  if (!info || !run) return token(`${process.pid}/${Date.now()}/${Math.random()}`);
  return token(`${run.workflowId}/${run.runId}/${info.activityId}`);
}
