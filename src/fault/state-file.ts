/**
 * The fault detector's small state files on the worker (metrics snapshot, log cursors, recovery ledger):
 * written under a temporary name, fsynced and renamed, so a crash leaves the old or the new file, never half of
 * one. Read back as untrusted input: a file that does not parse is treated as absent (and reported).
 */
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import path from 'node:path';

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
  await mkdir(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.partial`;
  const fh = await open(tmp, 'w', 0o600);
  try {
    await fh.writeFile(JSON.stringify(value));
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
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
