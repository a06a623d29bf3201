/**
 * Whether the front's nginx config is still what llmchat-ops last wrote. Every write of the config records its
 * sha256 in `<deploy.stateDir>/front/front-config.json` (before the new file replaces the old one, keeping the
 * previous write's hash too, so a crash between the two never looks like an edit). A deploy's plan compares the
 * file with that record: a hand edit is reported (plan, outcome, alert) and the edited file is kept as
 * `nginx.conf.hand-edit-<time>` before any write overwrites it.
 */
import { createHash, randomUUID } from 'node:crypto';
import { readdir, readFile, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { replaceFileDurably } from '../../common/durable-file.js';

/** What a write recorded. */
export interface FrontConfigRecord {
  sha256: string;
  writtenAt: string;
  slot: string;
  port: number;
  /** The hash of the write before (a crash between recording and replacing the file leaves that file in place). */
  previousSha256?: string;
}

export type FrontConfigState = 'as-written' | 'edited' | 'no-record' | 'absent';

export interface FrontDrift {
  state: FrontConfigState;
  /** The config file. */
  file: string;
  /** When llmchat-ops last wrote it (from the record). */
  writtenAt?: string;
  /** edited / no-record that differs from what would be written: where the current file was copied. */
  keptAs?: string;
  /** One line for the plan. */
  detail: string;
}

const confFile = (prefix: string) => path.join(prefix, 'nginx.conf');
const recordFile = (prefix: string) => path.join(prefix, 'front-config.json');
/** Names of kept hand edits. */
export const KEPT = /^nginx\.conf\.hand-edit-[0-9TZ-]+$/;

export const sha256 = (text: string | Buffer): string => createHash('sha256').update(text).digest('hex');

async function readRecord(prefix: string): Promise<FrontConfigRecord | undefined> {
  try {
    const r = JSON.parse(await readFile(recordFile(prefix), 'utf8')) as FrontConfigRecord;
    return typeof r.sha256 === 'string' ? r : undefined;
  } catch {
    return undefined;
  }
}

async function writeRecord(prefix: string, record: FrontConfigRecord): Promise<void> {
  await replaceFileDurably(recordFile(prefix), `${JSON.stringify(record, null, 2)}\n`);
}

/** Records that `text` is about to become the front config (call before it replaces the file). */
export async function recordFrontWrite(prefix: string, text: string, slot: string, port: number, now = new Date()): Promise<void> {
  const old = await readRecord(prefix);
  await writeRecord(prefix, {
    sha256: sha256(text),
    writtenAt: now.toISOString(),
    slot,
    port,
    ...(old ? { previousSha256: old.sha256 } : {}),
  });
}

/**
 * Compares the config file with the last recorded write. A file that differs is copied to
 * `nginx.conf.hand-edit-<time>` (once per distinct content) before anything can overwrite it. `rendered`: what
 * llmchat-ops would write for the upstream the file names — without a record, a file equal to it is ours.
 */
export async function checkFrontDrift(prefix: string, rendered?: (text: string) => string | undefined, now = new Date()): Promise<FrontDrift> {
  const file = confFile(prefix);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
    return { state: 'absent', file, detail: 'front config not written yet' };
  }
  const record = await readRecord(prefix);
  const hash = sha256(text);
  if (record && (hash === record.sha256 || hash === record.previousSha256)) {
    return { state: 'as-written', file, writtenAt: record.writtenAt, detail: `front config as written at ${record.writtenAt}` };
  }
  if (!record && rendered?.(text) === text) return { state: 'as-written', file, detail: 'front config as llmchat-ops writes it (no record of the write yet)' };
  const keptAs = await keep(prefix, text, now);
  if (!record) {
    return { state: 'no-record', file, keptAs, detail: `front config differs from what llmchat-ops writes and no write of it is recorded (written by an older version, or edited by hand); kept as ${path.basename(keptAs)}` };
  }
  return { state: 'edited', file, writtenAt: record.writtenAt, keptAs, detail: `front config edited by hand since llmchat-ops wrote it at ${record.writtenAt}; kept as ${path.basename(keptAs)}` };
}

/** Writes the edited text aside, once per content (an earlier copy with the same text is reused); returns its path. */
async function keep(prefix: string, text: string, now: Date): Promise<string> {
  for (const name of (await readdir(prefix)).filter((n) => KEPT.test(n)).sort()) {
    const prior = path.join(prefix, name);
    if ((await readFile(prior, 'utf8').catch(() => undefined)) === text) return prior;
  }
  const target = path.join(prefix, `nginx.conf.hand-edit-${now.toISOString().replace(/[:.]/g, '-')}`);
  const tmp = `${target}.${randomUUID()}.partial`;
  await writeFile(tmp, text, { mode: 0o644, flag: 'wx' });
  await rename(tmp, target);
  return target;
}
