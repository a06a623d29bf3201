/**
 * Backup retention: which backup directories to delete, and deleting them. The planner is pure (manifests in,
 * decisions with reasons out) so the rules can be tested and shown in a dry run; the fs side only ever touches
 * directories it can prove are ours — anything else in the backup directory is reported and left alone.
 */
import type { Stats } from 'node:fs';
import { lstat, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { parseBackupId } from './ids.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, type BackupManifest } from './manifest.js';

const DAY_MS = 24 * 60 * 60 * 1000;
/** An in-progress or failed backup older than this is debris from a crashed or failed run. */
const STALE_PARTIAL_MS = DAY_MS;
const STATUSES: readonly BackupManifest['status'][] = ['in-progress', 'complete', 'failed'];

export interface RetentionPolicy {
  /** Complete backups started longer ago than this are removed (the newest verified one excepted). */
  maxAgeDays: number;
  /** The newest this many complete backups are candidates to keep; older ones are removed. */
  keepCount: number;
}

/** A backup directory already checked to be ours (see `scanBackups`). */
export interface RetentionCandidate {
  id: string;
  manifest: BackupManifest;
}

export interface RetentionDecision {
  id: string;
  why: string;
}

export interface RetentionPlan {
  keep: RetentionDecision[];
  remove: RetentionDecision[];
}

/** Something in the backup directory that is not (provably) one of our backups, and why. Never touched. */
export interface IgnoredEntry {
  name: string;
  why: string;
}

export interface BackupScan {
  candidates: RetentionCandidate[];
  ignored: IgnoredEntry[];
}

export type RetentionResult = RetentionPlan & { ignored: IgnoredEntry[] };

export interface ApplyRetentionOptions {
  now?: Date;
  /** Backups being written right now (their workflow is running): never removed. */
  activeIds?: ReadonlySet<string>;
  /** Plan and report only; delete nothing. */
  dryRun?: boolean;
  /**
   * Why a manifest cannot be trusted (bad signature…), or undefined when it can. An untrusted backup is ignored:
   * never deleted, and never counted — so a forged "verified" manifest cannot take the place of the newest
   * verified backup and get the real one deleted.
   */
  distrust?: (manifest: unknown) => string | undefined;
}

function checkPolicy(policy: RetentionPolicy): void {
  if (!Number.isInteger(policy.keepCount) || policy.keepCount < 1) {
    throw new RangeError(`Retention keepCount must be a whole number >= 1, got ${policy.keepCount}`);
  }
  if (!Number.isFinite(policy.maxAgeDays) || policy.maxAgeDays <= 0) {
    throw new RangeError(`Retention maxAgeDays must be a number > 0, got ${policy.maxAgeDays}`);
  }
}

function ageDays(ms: number): string {
  return `${(ms / DAY_MS).toFixed(1)} days old`;
}

/**
 * Decides which backups to keep and remove. Age is from the manifest's `startedAt` (file times change on copy
 * and restore). Complete backups: keep the newest `keepCount` that are within `maxAgeDays`; the newest verified
 * one is always kept, so there is always a backup known to restore. In-progress/failed: removed after a day
 * unless active. An active id is kept whatever its status — deleting a backup being written is never right.
 */
export function planRetention(candidates: RetentionCandidate[], now: Date, policy: RetentionPolicy, activeIds: ReadonlySet<string> = new Set()): RetentionPlan {
  checkPolicy(policy);
  const at = (c: RetentionCandidate) => Date.parse(c.manifest.startedAt);
  // Newest first; equal start times fall back to the id (whose random suffix makes the order total).
  const ordered = [...candidates].sort((a, b) => at(b) - at(a) || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
  const newestVerified = ordered.find((c) => c.manifest.status === 'complete' && c.manifest.verification?.status === 'verified')?.id;
  const plan: RetentionPlan = { keep: [], remove: [] };
  let rank = 0;
  for (const c of ordered) {
    const age = now.getTime() - at(c);
    const decide = (keep: boolean, why: string) => (keep ? plan.keep : plan.remove).push({ id: c.id, why });
    if (c.manifest.status === 'complete') rank += 1; // an active complete one still takes its place in the count
    if (activeIds.has(c.id)) {
      decide(true, `${c.manifest.status} and being written right now`);
    } else if (c.manifest.status !== 'complete') {
      if (age > STALE_PARTIAL_MS) decide(false, `${c.manifest.status} and ${ageDays(age)} (left over from an unfinished run)`);
      else decide(true, `${c.manifest.status} but only ${ageDays(age)}; may still be running`);
    } else {
      if (c.id === newestVerified) decide(true, `newest verified backup (${ageDays(age)}, #${rank} by age)`);
      else if (rank > policy.keepCount) decide(false, `#${rank} newest complete backup; only the newest ${policy.keepCount} are kept`);
      else if (age > policy.maxAgeDays * DAY_MS) decide(false, `${ageDays(age)}, older than the ${policy.maxAgeDays}-day limit`);
      else decide(true, `#${rank} of the newest ${policy.keepCount} complete backups, ${ageDays(age)}`);
    }
  }
  return plan;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** The backup directory's manifest if it proves the directory is ours for this id, else why not. */
async function readOurManifest(backupDir: string, name: string, environment: string): Promise<{ why: string } | { manifest: BackupManifest }> {
  const file = path.join(backupDir, MANIFEST_FILE);
  let text: string;
  try {
    const st = await lstat(file);
    if (!st.isFile()) return { why: `${MANIFEST_FILE} is not a regular file` };
    text = await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { why: code === 'ENOENT' ? `no ${MANIFEST_FILE}` : `unreadable ${MANIFEST_FILE} (${code ?? String(err)})` };
  }
  let m: unknown;
  try {
    m = JSON.parse(text);
  } catch {
    return { why: `${MANIFEST_FILE} is not valid JSON` };
  }
  if (!isObject(m)) return { why: `${MANIFEST_FILE} is not a JSON object` };
  if (m.format !== MANIFEST_FORMAT) return { why: `${MANIFEST_FILE} format is ${JSON.stringify(m.format)}, not ${MANIFEST_FORMAT}` };
  if (m.createdBy !== 'llmchat-ops') return { why: `${MANIFEST_FILE} was created by ${JSON.stringify(m.createdBy)}, not llmchat-ops` };
  if (m.id !== name) return { why: `${MANIFEST_FILE} is for ${JSON.stringify(m.id)}, not this directory (id mismatch)` };
  if (m.environment !== environment) return { why: `${MANIFEST_FILE} is for environment ${JSON.stringify(m.environment)}, not ${environment}` };
  // The planner needs these two; a manifest without them is kept out rather than guessed at.
  if (!STATUSES.includes(m.status as BackupManifest['status'])) return { why: `${MANIFEST_FILE} has unknown status ${JSON.stringify(m.status)}` };
  if (typeof m.startedAt !== 'string' || Number.isNaN(Date.parse(m.startedAt))) return { why: `${MANIFEST_FILE} has no valid startedAt` };
  return { manifest: m as unknown as BackupManifest };
}

/**
 * Lists the environment's backups in `dir`. Only real directories (symlinks are never followed) named with
 * one of this environment's backup ids and holding our manifest for that id count; everything else is
 * reported in `ignored`, so a stray file or someone's directory next to the backups can never be deleted.
 */
export async function scanBackups(dir: string, environment: string, distrust?: (manifest: unknown) => string | undefined): Promise<BackupScan> {
  const scan: BackupScan = { candidates: [], ignored: [] };
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return scan;
    throw err;
  }
  for (const name of names.sort()) {
    const ignore = (why: string) => scan.ignored.push({ name, why });
    let st: Stats;
    try {
      st = await lstat(path.join(dir, name));
    } catch (err) {
      ignore(`cannot stat (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
      continue;
    }
    const what = st.isSymbolicLink() ? 'symbolic link' : st.isDirectory() ? 'directory' : st.isFile() ? 'file' : 'special file';
    try {
      parseBackupId(name, environment);
    } catch (err) {
      ignore(`foreign ${what}: ${(err as Error).message}`);
      continue;
    }
    if (!st.isDirectory()) {
      ignore(`${what} named like a backup, not a directory (never followed)`);
      continue;
    }
    const found = await readOurManifest(path.join(dir, name), name, environment);
    const why = 'why' in found ? found.why : distrust?.(found.manifest);
    if (why !== undefined) ignore(why);
    else if ('manifest' in found) scan.candidates.push({ id: name, manifest: found.manifest });
  }
  return scan;
}

/**
 * Scans, plans and deletes the planned backup directories (unless `dryRun`). Each deletion re-checks that the
 * path is still a real directory directly inside `dir` named with that id, in case it changed since the scan;
 * one that did is not deleted and is reported in `ignored` instead of `remove`.
 */
export async function applyRetention(dir: string, environment: string, policy: RetentionPolicy, opts: ApplyRetentionOptions = {}): Promise<RetentionResult> {
  checkPolicy(policy);
  const { candidates, ignored } = await scanBackups(dir, environment, opts.distrust);
  const plan = planRetention(candidates, opts.now ?? new Date(), policy, opts.activeIds);
  if (opts.dryRun) return { ...plan, ignored };
  const removed: RetentionDecision[] = [];
  for (const r of plan.remove) {
    parseBackupId(r.id, environment); // a path-safe name: no separators, no `..`
    const target = path.join(dir, r.id);
    const st = await lstat(target).catch(() => null);
    if (path.dirname(path.resolve(target)) !== path.resolve(dir) || path.basename(target) !== r.id || !st?.isDirectory()) {
      ignored.push({ name: r.id, why: 'no longer a real backup directory when about to delete it; left alone' });
      continue;
    }
    await rm(target, { recursive: true, force: true });
    removed.push(r);
  }
  return { keep: plan.keep, remove: removed, ignored };
}
