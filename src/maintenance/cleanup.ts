/**
 * The guide's `find <dir> -name <pattern> -mtime +N -delete`, made safe. The walk never follows a symlink (links
 * are reported and left alone, whatever they point to), never leaves its root (each file's directory is checked
 * again, by realpath, right before the unlink), refuses roots that are system directories or that hold the app,
 * its config or its backups (those directories are skipped when they lie below a root), and skips every file some process has open for writing (the app's current log).
 */
import { lstat, readdir, readFile, realpath, stat, unlink } from 'node:fs/promises';
import path from 'node:path';

export type CleanupCategory = 'logs' | 'temp' | 'uploads';

export interface CleanupRule {
  category: CleanupCategory;
  root: string;
  maxAgeDays: number;
  /** File names this rule may delete. */
  matches: (name: string) => boolean;
}

export interface CleanupFile {
  /** Relative to the root. */
  path: string;
  bytes: number;
  ageDays: number;
}

export interface CleanupSkip {
  path: string;
  why: string;
}

export interface CleanupResult {
  category: CleanupCategory;
  root: string;
  dryRun: boolean;
  /** Deleted files (or, in a dry run, the files that would be deleted); at most LIST_LIMIT listed. */
  files: CleanupFile[];
  count: number;
  bytes: number;
  skipped: CleanupSkip[];
}

const DAY_MS = 86_400_000;
const LIST_LIMIT = 500;
const SYSTEM_DIRS = ['/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/usr', '/var', '/var/lib', '/var/log'];

export class UnsafeRootError extends Error {
  override readonly name = 'UnsafeRoot';
}

/** A name pattern with `*` wildcards only (the config allows nothing else), as an anchored RegExp. */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((p) => p.replace(/[.+?^${}()|[\]\\-]/g, '\\$&')).join('.*')}$`, 's');
}

/** The guide's `-name "*.log"` and `-name "*.log.*"`. */
export const isLogName = (name: string) => name.endsWith('.log') || name.includes('.log.');

/**
 * Checks a root before anything is deleted under it: absolute, an existing real directory, not a system
 * directory, and not containing (or equal to) any of `protectedDirs`. Returns its real path.
 */
export async function checkRoot(root: string, protectedDirs: readonly string[]): Promise<string> {
  if (!path.isAbsolute(root)) throw new UnsafeRootError(`Cleanup root ${JSON.stringify(root)} is not an absolute path`);
  let real: string;
  try {
    real = await realpath(root);
  } catch (err) {
    throw new UnsafeRootError(`Cleanup root ${root} does not exist or cannot be read (${(err as NodeJS.ErrnoException).code})`);
  }
  if (!(await stat(real)).isDirectory()) throw new UnsafeRootError(`Cleanup root ${root} is not a directory`);
  if (SYSTEM_DIRS.includes(real)) throw new UnsafeRootError(`Refusing to clean ${root}: it is the system directory ${real}`);
  for (const p of protectedDirs) {
    const rp = await realpath(p).catch(() => path.resolve(p));
    if (rp === real || real.startsWith(rp + path.sep)) {
      throw new UnsafeRootError(`Refusing to clean ${root}: it is (inside) ${p}, which cleanup must never touch`);
    }
  }
  return real;
}

/** dev:ino of every file any process has open for writing (from /proc/<pid>/fdinfo flags). */
export async function filesOpenForWriting(): Promise<Set<string>> {
  const open = new Set<string>();
  const pids = (await readdir('/proc').catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
  await Promise.all(
    pids.map(async (pid) => {
      const fds = await readdir(`/proc/${pid}/fd`).catch(() => [] as string[]);
      for (const fd of fds) {
        try {
          const info = await readFile(`/proc/${pid}/fdinfo/${fd}`, 'utf8');
          const flags = parseInt(/^flags:\s*([0-7]+)/m.exec(info)?.[1] ?? '0', 8);
          if ((flags & 3) === 0) continue; // O_RDONLY
          const s = await stat(`/proc/${pid}/fd/${fd}`);
          if (s.isFile()) open.add(`${s.dev}:${s.ino}`);
        } catch {
          // the process or descriptor went away meanwhile
        }
      }
    }),
  );
  return open;
}

export interface CleanupOptions {
  dryRun: boolean;
  now?: number;
  /** Files open for writing (default: read from /proc now). */
  openForWriting?: Set<string>;
  signal?: AbortSignal;
  onProgress?: (examined: number) => void;
}

export async function cleanTree(rule: CleanupRule, protectedDirs: readonly string[], opts: CleanupOptions): Promise<CleanupResult> {
  if (path.isAbsolute(rule.root) && (await lstat(rule.root).catch((err: NodeJS.ErrnoException) => err.code)) === 'ENOENT') {
    // Nothing was ever written there (e.g. no temp files yet): nothing to clean, and the report says so.
    return { category: rule.category, root: rule.root, dryRun: opts.dryRun, files: [], count: 0, bytes: 0, skipped: [{ path: '.', why: 'the directory does not exist: nothing to clean' }] };
  }
  const realRoot = await checkRoot(rule.root, protectedDirs);
  const now = opts.now ?? Date.now();
  const open = opts.openForWriting ?? (await filesOpenForWriting());
  const result: CleanupResult = { category: rule.category, root: rule.root, dryRun: opts.dryRun, files: [], count: 0, bytes: 0, skipped: [] };
  const cutoff = now - rule.maxAgeDays * DAY_MS;
  const excluded = new Set(await Promise.all(protectedDirs.map((p) => realpath(p).catch(() => path.resolve(p)))));
  let examined = 0;

  const walk = async (rel: string): Promise<void> => {
    const dir = path.join(realRoot, rel);
    let entries;
    try {
      entries = await readdir(dir, { withFileTypes: true });
    } catch (err) {
      result.skipped.push({ path: rel || '.', why: `cannot read directory (${(err as NodeJS.ErrnoException).code})` });
      return;
    }
    for (const entry of entries) {
      if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('cleanup cancelled');
      const relPath = path.join(rel, entry.name);
      const full = path.join(dir, entry.name);
      const st = await lstat(full).catch(() => undefined);
      if (!st) continue;
      if (st.isSymbolicLink()) {
        result.skipped.push({ path: relPath, why: 'symlink: not followed, not deleted' });
        continue;
      }
      if (st.isDirectory()) {
        if (excluded.has(full)) result.skipped.push({ path: relPath, why: 'protected directory (app, config or backups): not entered' });
        else await walk(relPath);
        continue;
      }
      if (!st.isFile() || !rule.matches(entry.name) || st.mtimeMs >= cutoff) continue;
      opts.onProgress?.(++examined);
      if (open.has(`${st.dev}:${st.ino}`)) {
        result.skipped.push({ path: relPath, why: 'open for writing by a running process' });
        continue;
      }
      if (!opts.dryRun) {
        // Between the walk and now a directory on the way could have been swapped for a symlink: make sure the
        // file's directory still resolves to where the walk found it, and the file is still the same file.
        const [realDir, again] = await Promise.all([realpath(dir).catch(() => ''), lstat(full).catch(() => undefined)]);
        if (realDir !== dir || !again?.isFile() || again.ino !== st.ino || again.dev !== st.dev) {
          result.skipped.push({ path: relPath, why: 'changed during cleanup (moved or replaced): left alone' });
          continue;
        }
        try {
          await unlink(full);
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
          result.skipped.push({ path: relPath, why: `cannot delete (${(err as NodeJS.ErrnoException).code})` });
          continue;
        }
      }
      result.count++;
      result.bytes += st.size;
      if (result.files.length < LIST_LIMIT) result.files.push({ path: relPath, bytes: st.size, ageDays: Math.floor((now - st.mtimeMs) / DAY_MS) });
    }
  };
  await walk('');
  result.files.sort((a, b) => a.path.localeCompare(b.path));
  result.skipped.sort((a, b) => a.path.localeCompare(b.path));
  return result;
}
