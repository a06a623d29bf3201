/**
 * What every command of the CLI shares: the operator's name, a Temporal client for one command, progress of a long
 * run on stderr, failures reduced to their innermost cause, and workflow text made safe for a terminal.
 */
import os from 'node:os';
import { type WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import { type OpsConfig } from '../common/config/index.js';
import { connectClient } from '../common/client.js';

export function mb(bytes: number): string {
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} KB`;
  if (bytes < 1024 ** 3) return `${(bytes / 1024 ** 2).toFixed(1)} MB`;
  return `${(bytes / 1024 ** 3).toFixed(2)} GB`;
}

/** The innermost cause of a failure and its type: what actually went wrong, not "Activity task failed". */
export function describeFailure(err: Error): string {
  let inner: Error = err;
  while (inner.cause instanceof Error) inner = inner.cause;
  const type = inner instanceof ApplicationFailure && inner.type ? inner.type : inner.name;
  return type && type !== 'Error' && !inner.message.startsWith(type) ? `${type}: ${inner.message}` : inner.message;
}

export function formatProgress(activity: string, details: unknown): string {
  const d = (details ?? {}) as Record<string, unknown>;
  const parts: string[] = [];
  if (typeof d.phase === 'string') parts.push(d.phase);
  if (typeof d.bytes === 'number') parts.push(typeof d.of === 'number' && d.of > 0 ? `${mb(d.bytes)} of ${mb(d.of)} (${Math.floor((100 * d.bytes) / d.of)} %)` : mb(d.bytes));
  if (typeof d.tables === 'number') parts.push(`${d.tables}${typeof d.of === 'number' && typeof d.bytes !== 'number' ? `/${d.of}` : ''} tables`);
  return `  … ${activity}${parts.length ? `: ${parts.join(', ')}` : ''}`;
}

/**
 * Prints the progress of a long run to stderr as it goes: the running activities and the details of their
 * latest heartbeat (bytes written, tables counted). Stops when `done` settles.
 */
export async function followProgress(handle: WorkflowHandle, done: Promise<unknown>, everyMs = 2000): Promise<void> {
  let finished = false;
  void done.finally(() => (finished = true)).catch(() => {});
  const shown = new Map<string, string>();
  while (!finished) {
    await Promise.race([done.catch(() => {}), new Promise((r) => setTimeout(r, everyMs))]);
    if (finished) break;
    const description = await handle.describe().catch(() => undefined);
    for (const a of description?.raw.pendingActivities ?? []) {
      const payload = a.heartbeatDetails?.payloads?.[0];
      const details = payload ? defaultPayloadConverter.fromPayload(payload as never) : undefined;
      const line = formatProgress(a.activityType?.name ?? 'activity', details);
      const key = a.activityId ?? line;
      if (shown.get(key) !== line) {
        shown.set(key, line);
        console.error(line);
      }
    }
  }
}

/**
 * Text that came from a workflow (answers, failure messages quoting input) made safe for a terminal: control,
 * format and bidirectional-override characters are shown as escapes instead of acting on the terminal.
 */
export function printable(text: string, opts: { lines?: boolean } = {}): string {
  return text.replace(/[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/gu, (c) => (opts.lines && c === '\n' ? c : `\\u{${c.codePointAt(0)!.toString(16)}}`));
}

export function operator(): string {
  return process.env.LLMCHAT_OPS_OPERATOR ?? os.userInfo().username;
}

export async function withClient<T>(cfg: OpsConfig, fn: (client: Awaited<ReturnType<typeof connectClient>>) => Promise<T>): Promise<T> {
  const client = await connectClient(cfg);
  try {
    return await fn(client);
  } finally {
    await client.connection.close();
  }
}
