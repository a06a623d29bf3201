/**
 * The fault detector's small state files on the worker (metrics snapshot, log cursors, recovery ledger):
 * written under a temporary name, fsynced and renamed, so a crash leaves the old or the new file, never half of
 * one. Read back as untrusted input: a file that does not parse is treated as absent (and reported).
 */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { replaceFileDurably } from '../../common/durable-file.js';

export async function readState<T>(file: string, validate: (v: unknown) => T | undefined): Promise<T | undefined> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    return validate(JSON.parse(text));
  } catch {
    return undefined;
  }
}

export async function writeState(file: string, value: unknown): Promise<void> {
  await replaceFileDurably(file, JSON.stringify(value), { mode: 0o600 });
}

/** Serialises read-modify-write cycles on one file inside this worker process. */
const chains = new Map<string, Promise<unknown>>();
export function withFileLock<T>(file: string, fn: () => Promise<T>): Promise<T> {
  const prev = chains.get(file) ?? Promise.resolve();
  const next = prev.then(fn, fn);
  chains.set(file, next.catch(() => undefined));
  return next;
}

export const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);
export const isNum = (v: unknown): v is number => typeof v === 'number' && Number.isFinite(v);

/**
 * Where one environment's fault-detection state lives, and which app instance it belongs to. Every file is under
 * `<paths.state>/<environment>/` and named after the instance (a hash of the URL measured and the compose
 * service restarted), and carries both inside: two environments — or one environment pointed at another app —
 * never read each other's snapshot, log offsets or restart ledger, whatever paths they are given.
 */
export interface FaultStateKey {
  environment: string;
  instance: string;
}

export function faultStateKey(environment: string, app: { url: string; compose: { project: string; service: string } }): FaultStateKey {
  const instance = createHash('sha256').update(`${app.url}\n${app.compose.project}/${app.compose.service}`).digest('hex').slice(0, 12);
  return { environment, instance };
}

export function faultStatePath(stateDir: string, key: FaultStateKey, kind: 'metrics-snapshot' | 'log-cursors' | 'recovery-ledger'): string {
  if (!/^[a-z][a-z0-9-]{0,31}$/.test(key.environment)) throw new Error(`not an environment name: ${JSON.stringify(key.environment)}`);
  return path.join(stateDir, key.environment, `${kind}-${key.instance}.json`);
}

/** The stored value if the file is this environment's and this instance's; anything else is treated as absent. */
export function ownedBy(v: unknown, key: FaultStateKey): unknown {
  return isObject(v) && v.environment === key.environment && v.instance === key.instance ? v.data : undefined;
}

export const owned = (key: FaultStateKey, data: unknown) => ({ environment: key.environment, instance: key.instance, data });
