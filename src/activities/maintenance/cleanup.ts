/**
 * The guide's `find <dir> -name <pattern> -mtime +N -delete`, made safe. The walk never follows a symlink (links
 * are reported and left alone, whatever they point to) and cannot be redirected out of its root: it works through
 * open directory descriptors, like `find -P -xdev … -delete` (a directory swapped for a symlink mid-run changes
 * nothing); it refuses roots that are system directories or that hold the app, its config or its backups (those
 * directories are skipped when they lie below a root), never enters another filesystem, and keeps every file some
 * process has open for writing (the app's current log) — and every file at all when some process's open files
 * cannot be read, saying so.
 */
import { constants as fsConstants, type Stats } from 'node:fs';
import { lstat, open, readdir, readFile, realpath, stat, unlink, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';

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

/** What /proc says about the files processes hold open for writing. */
export interface WriterCheck {
  /** Every file some process has open for writing: `mnt:<mount id>:<inode>` (from fdinfo) or `dev:<dev>:<inode>`. */
  open: Set<string>;
  /** Processes whose descriptors could not be read (so whether they write a file is unknown), with why. */
  unchecked: { pid: number; why: string }[];
}

/**
 * dev:ino of every file any process has open for writing (from /proc/<pid>/fdinfo flags). A process whose
 * /proc/<pid>/fd cannot be read (another user's, without the privilege) is listed as unchecked: any of its
 * descriptors could be a writer of any file.
 */
export async function filesOpenForWriting(proc = '/proc'): Promise<WriterCheck> {
  const open = new Set<string>();
  const unchecked: WriterCheck['unchecked'] = [];
  const pids = (await readdir(proc).catch(() => [] as string[])).filter((p) => /^\d+$/.test(p));
  const gone = (err: unknown) => ['ENOENT', 'ESRCH'].includes((err as NodeJS.ErrnoException).code ?? '');
  await Promise.all(
    pids.map(async (pid) => {
      let fds: string[];
      try {
        fds = await readdir(`${proc}/${pid}/fd`);
      } catch (err) {
        if (!gone(err)) unchecked.push({ pid: Number(pid), why: `${proc}/${pid}/fd: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
        return;
      }
      for (const fd of fds) {
        try {
          const info = await readFile(`${proc}/${pid}/fdinfo/${fd}`, 'utf8');
          const flags = parseInt(/^flags:\s*([0-7]+)/m.exec(info)?.[1] ?? '0', 8);
          if ((flags & 3) === 0) continue; // O_RDONLY
          // The mount and inode from fdinfo identify the file without following the descriptor (which may be
          // refused even to root, e.g. a descriptor of another mount namespace); older kernels lack ino: stat it.
          const mnt = /^mnt_id:\s*(\d+)/m.exec(info)?.[1];
          const ino = /^ino:\s*(\d+)/m.exec(info)?.[1];
          if (mnt && ino) open.add(`mnt:${mnt}:${ino}`);
          else {
            const s = await stat(`${proc}/${pid}/fd/${fd}`);
            if (s.isFile()) open.add(`dev:${s.dev}:${s.ino}`);
          }
        } catch (err) {
          // The process or descriptor went away meanwhile; anything else means this descriptor is unknown.
          if (!gone(err)) {
            unchecked.push({ pid: Number(pid), why: `${proc}/${pid}/fd/${fd}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}` });
            return;
          }
        }
      }
    }),
  );
  unchecked.sort((a, b) => a.pid - b.pid);
  return { open, unchecked };
}

export interface CleanupOptions {
  dryRun: boolean;
  now?: number;
  /** Files open for writing (default: read from /proc now). */
  writers?: WriterCheck;
  signal?: AbortSignal;
  onProgress?: (examined: number) => void;
  /** Test seam: awaited right before a file is deleted (relative path), to race the deletion. */
  beforeDelete?: (relPath: string) => Promise<void>;
}

const { O_RDONLY, O_DIRECTORY, O_NOFOLLOW } = fsConstants;
const DIR_FLAGS = O_RDONLY | O_DIRECTORY | O_NOFOLLOW;
/** The mount id of an open descriptor (from /proc/self/fdinfo), to match writers found by fdinfo. */
const mountOf = async (h: FileHandle) => /^mnt_id:\s*(\d+)/m.exec(await readFile(`/proc/self/fdinfo/${h.fd}`, 'utf8').catch(() => ''))?.[1];
/** Whether some process has the file (lstat of it, in the directory of mount `mnt`) open for writing. */
const isWritten = (w: WriterCheck, mnt: string | undefined, st: { dev: number; ino: number }) => (mnt !== undefined && w.open.has(`mnt:${mnt}:${st.ino}`)) || w.open.has(`dev:${st.dev}:${st.ino}`);
/** A name inside an open directory, resolved by the kernel through the descriptor, never through the path. */
const at = (dir: FileHandle, name: string) => `/proc/self/fd/${dir.fd}/${name}`;

/**
 * The kernel's own answer to "does any process have these files open?", for when /proc cannot tell: a write lease
 * (fcntl F_SETLEASE F_WRLCK, from python3 — Node has no fcntl) is granted only on a file no other descriptor has
 * open, whoever holds it. The names are opened through our open directory (/proc/<our pid>/fd/<n>/<name>,
 * O_NOFOLLOW), never through a path. Returns name → [inode, errno] (0: nobody has it open), or why it cannot tell.
 */
async function leaseCheck(dir: FileHandle, names: string[]): Promise<Map<string, [number | null, number]> | string> {
  const script = `import fcntl, os, sys, json
d = sys.argv[1]; out = []
for n in sys.argv[2:]:
    try:
        fd = os.open(os.path.join(d, n), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        out.append([n, None, e.errno]); continue
    try:
        ino = os.fstat(fd).st_ino
        try:
            fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_WRLCK); fcntl.fcntl(fd, fcntl.F_SETLEASE, fcntl.F_UNLCK); out.append([n, ino, 0])
        except OSError as e:
            out.append([n, ino, e.errno])
    finally:
        os.close(fd)
print(json.dumps(out))`;
  const answers = new Map<string, [number | null, number]>();
  try {
    for (let i = 0; i < names.length; i += 500) {
      const r = await execa('python3', ['-c', script, `/proc/${process.pid}/fd/${dir.fd}`, ...names.slice(i, i + 500)], { timeout: 60_000 });
      for (const [n, ino, errno] of JSON.parse(r.stdout) as [string, number | null, number][]) answers.set(n, [ino, errno]);
    }
    return answers;
  } catch (err) {
    return `no lease check either (python3: ${((err as { shortMessage?: string }).shortMessage ?? (err as Error).message).split('\n')[0]})`;
  }
}

/**
 * Deletes like GNU `find -P <root> -xdev -name … -mtime +N -delete`: every directory is opened (O_NOFOLLOW |
 * O_DIRECTORY) and everything below it is looked at, entered and deleted through that open descriptor
 * (/proc/self/fd/<n>/<name>), never through a path from the root — so a directory swapped for a symlink while the
 * run goes on cannot send it anywhere: the open descriptor still is the directory the walk found, a symlink is
 * never followed (lstat; O_NOFOLLOW when entering), and another filesystem is never entered.
 */
export async function cleanTree(rule: CleanupRule, protectedDirs: readonly string[], opts: CleanupOptions): Promise<CleanupResult> {
  if (path.isAbsolute(rule.root) && (await lstat(rule.root).catch((err: NodeJS.ErrnoException) => err.code)) === 'ENOENT') {
    // Nothing was ever written there (e.g. no temp files yet): nothing to clean, and the report says so.
    return { category: rule.category, root: rule.root, dryRun: opts.dryRun, files: [], count: 0, bytes: 0, skipped: [{ path: '.', why: 'the directory does not exist: nothing to clean' }] };
  }
  const realRoot = await checkRoot(rule.root, protectedDirs);
  const now = opts.now ?? Date.now();
  const writers = opts.writers ?? (await filesOpenForWriting());
  const result: CleanupResult = { category: rule.category, root: rule.root, dryRun: opts.dryRun, files: [], count: 0, bytes: 0, skipped: [] };
  const cutoff = now - rule.maxAgeDays * DAY_MS;
  const excluded = new Set<string>();
  for (const p of protectedDirs) {
    const st = await stat(p).catch(() => undefined);
    if (st?.isDirectory()) excluded.add(`${st.dev}:${st.ino}`);
  }
  const unchecked = writers.unchecked.length
    ? `its writers cannot be checked in /proc: ${writers.unchecked.length} process(es) whose open files cannot be read (${writers.unchecked.slice(0, 3).map((u) => u.why).join('; ')}${writers.unchecked.length > 3 ? '; …' : ''})`
    : undefined;
  let examined = 0;

  const rootDir = await open(realRoot, DIR_FLAGS);
  try {
    const rootStat = await rootDir.stat();
    const expected = await stat(realRoot);
    if (rootStat.ino !== expected.ino || rootStat.dev !== expected.dev) throw new UnsafeRootError(`Cleanup root ${rule.root} changed while it was being opened`);

    const walk = async (dir: FileHandle, rel: string): Promise<void> => {
      const mnt = await mountOf(dir);
      const doubtful: { name: string; relPath: string; st: Stats }[] = [];
      let names: string[];
      try {
        names = await readdir(`/proc/self/fd/${dir.fd}`);
      } catch (err) {
        result.skipped.push({ path: rel || '.', why: `cannot read directory (${(err as NodeJS.ErrnoException).code})` });
        return;
      }
      for (const name of names) {
        if (opts.signal?.aborted) throw opts.signal.reason ?? new Error('cleanup cancelled');
        const relPath = path.join(rel, name);
        const st = await lstat(at(dir, name)).catch(() => undefined);
        if (!st) continue;
        if (st.isSymbolicLink()) {
          result.skipped.push({ path: relPath, why: 'symlink: not followed, not deleted' });
          continue;
        }
        if (st.isDirectory()) {
          if (excluded.has(`${st.dev}:${st.ino}`)) {
            result.skipped.push({ path: relPath, why: 'protected directory (app, config or backups): not entered' });
            continue;
          }
          if (st.dev !== rootStat.dev) {
            result.skipped.push({ path: relPath, why: 'another filesystem (a mount point): not entered' });
            continue;
          }
          let sub: FileHandle;
          try {
            sub = await open(at(dir, name), DIR_FLAGS);
          } catch (err) {
            const code = (err as NodeJS.ErrnoException).code;
            if (code !== 'ENOENT') result.skipped.push({ path: relPath, why: code === 'ELOOP' || code === 'ENOTDIR' ? 'replaced by a symlink or file during cleanup: not followed' : `cannot open directory (${code})` });
            continue;
          }
          try {
            const again = await sub.stat();
            if (again.ino !== st.ino || again.dev !== st.dev) result.skipped.push({ path: relPath, why: 'replaced during cleanup: not entered' });
            else await walk(sub, relPath);
          } finally {
            await sub.close();
          }
          continue;
        }
        if (!st.isFile() || !rule.matches(name) || st.mtimeMs >= cutoff) continue;
        opts.onProgress?.(++examined);
        if (isWritten(writers, mnt, st)) {
          result.skipped.push({ path: relPath, why: 'open for writing by a running process' });
          continue;
        }
        if (unchecked) {
          doubtful.push({ name, relPath, st });
          continue;
        }
        await remove(dir, name, relPath, st);
      }
      if (doubtful.length) {
        const leases = await leaseCheck(dir, doubtful.map((d) => d.name));
        for (const d of doubtful) {
          const answer = typeof leases === 'string' ? undefined : leases.get(d.name);
          if (answer && answer[1] === 0 && answer[0] === d.st.ino) await remove(dir, d.name, d.relPath, d.st);
          else {
            const why = typeof leases === 'string' ? leases : !answer || answer[0] !== d.st.ino ? 'the file changed meanwhile' : answer[1] === 11 ? 'a write lease was refused (errno 11): some process has it open' : `no write lease could be taken (errno ${answer[1]})`;
            result.skipped.push({ path: d.relPath, why: `${unchecked}; ${why}` });
          }
        }
      }
    };

    const remove = async (dir: FileHandle, name: string, relPath: string, st: Stats): Promise<void> => {
      if (!opts.dryRun) {
        await opts.beforeDelete?.(relPath);
        // Through the open directory: whatever happened to the path meanwhile, this name is looked up in the
        // directory the walk found. If the name now is another file (or a symlink), it is left alone.
        const again = await lstat(at(dir, name)).catch(() => undefined);
        if (!again?.isFile() || again.ino !== st.ino || again.dev !== st.dev) {
          result.skipped.push({ path: relPath, why: 'changed during cleanup (moved or replaced): left alone' });
          return;
        }
        try {
          await unlink(at(dir, name));
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
          result.skipped.push({ path: relPath, why: `cannot delete (${(err as NodeJS.ErrnoException).code})` });
          return;
        }
      }
      result.count++;
      result.bytes += st.size;
      if (result.files.length < LIST_LIMIT) result.files.push({ path: relPath, bytes: st.size, ageDays: Math.floor((now - st.mtimeMs) / DAY_MS) });
    };
    await walk(rootDir, '');
  } finally {
    await rootDir.close();
  }
  result.files.sort((a, b) => a.path.localeCompare(b.path));
  result.skipped.sort((a, b) => a.path.localeCompare(b.path));
  return result;
}
