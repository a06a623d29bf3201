/**
 * Incremental log scanning: each run reads only the bytes appended since the offset the previous run reached,
 * so its cost follows the new bytes, not the file's size. The cursor notices
 * - rotation by rename (new inode): the rest of the old file is read from its rotated name (same inode, next to
 *   it), then the new file from the start;
 * - truncation (size below the offset) and copy-truncate followed by new writes (the first bytes changed):
 *   the file is read again from the start;
 * - a file deleted and recreated: new inode, old one gone → the new file from the start.
 * Only complete lines are counted; a partial last line waits for its newline.
 */
import { createHash } from 'node:crypto';
import { open, readdir, stat } from 'node:fs/promises';
import path from 'node:path';

export interface LogCursor {
  dev: number;
  ino: number;
  /** Byte offset just after the last complete line counted. */
  offset: number;
  /** sha256 of the first `headBytes` bytes, to recognise the same content after copy-truncate. */
  headHash: string;
  headBytes: number;
}

export interface LogWindowScan {
  file: string;
  exists: boolean;
  /** First sight of this file: the cursor starts at its end, nothing is counted. */
  baseline: boolean;
  rotated: boolean;
  truncated: boolean;
  /** Bytes read in this run (the cost). */
  bytesRead: number;
  newLines: number;
  /** New lines containing the error pattern. */
  errorLines: number;
  sizeBytes: number;
  /** Minutes since the file was last written. */
  ageMinutes?: number;
}

const HEAD = 256;
const CHUNK = 1 << 20;

async function headOf(file: string, bytes: number): Promise<{ hash: string; bytes: number }> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(bytes);
    const { bytesRead } = await fh.read(buf, 0, bytes, 0);
    return { hash: createHash('sha256').update(buf.subarray(0, bytesRead)).digest('hex'), bytes: bytesRead };
  } finally {
    await fh.close();
  }
}

export interface CountResult {
  bytesRead: number;
  /** Offset after the last newline seen (where the next run starts). */
  endOffset: number;
  lines: number;
  matches: number;
}

/**
 * Counts complete lines and lines containing `pattern` in [from, to) of `file`; `onProgress` is called per chunk
 * (heartbeats) and `signal` aborts the read.
 */
export async function countLines(file: string, from: number, to: number, pattern: string, onProgress?: (read: number) => void, signal?: AbortSignal): Promise<CountResult> {
  const needle = Buffer.from(pattern, 'utf8');
  const fh = await open(file, 'r');
  let lines = 0;
  let matches = 0;
  let pos = from;
  let lastLineEnd = from;
  let carry: Buffer = Buffer.alloc(0);
  try {
    const buf = Buffer.alloc(CHUNK);
    while (pos < to) {
      signal?.throwIfAborted();
      const { bytesRead } = await fh.read(buf, 0, Math.min(CHUNK, to - pos), pos);
      if (bytesRead === 0) break;
      const data = carry.length ? Buffer.concat([carry, buf.subarray(0, bytesRead)]) : buf.subarray(0, bytesRead);
      const dataStart = pos - carry.length;
      let lineStart = 0;
      // Walk newlines and pattern hits side by side: each byte is searched once for each, however rare the hits.
      let hit = data.indexOf(needle, 0);
      for (;;) {
        const nl = data.indexOf(10, lineStart);
        if (nl < 0) break;
        lines++;
        if (hit >= 0 && hit < nl) {
          matches++;
          hit = data.indexOf(needle, nl + 1);
        }
        lineStart = nl + 1;
      }
      lastLineEnd = dataStart + lineStart;
      carry = Buffer.from(data.subarray(lineStart));
      pos += bytesRead;
      onProgress?.(pos - from);
    }
  } finally {
    await fh.close();
  }
  return { bytesRead: pos - from, endOffset: lastLineEnd, lines, matches };
}

/** The rotated copy of a file: a sibling whose name starts with the file's name and has the old inode. */
async function findRotated(file: string, dev: number, ino: number): Promise<string | undefined> {
  const dir = path.dirname(file);
  const base = path.basename(file);
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  for (const name of names) {
    if (name === base || !name.startsWith(base)) continue;
    const p = path.join(dir, name);
    const s = await stat(p).catch(() => undefined);
    if (s && s.isFile() && s.dev === dev && s.ino === ino) return p;
  }
  return undefined;
}

export interface ScanOptions {
  pattern: string;
  now?: number;
  onProgress?: (read: number) => void;
  signal?: AbortSignal;
}

/** Scans what was appended since `prev`; returns the scan and the cursor to store for the next run. */
export async function scanIncrementally(file: string, prev: LogCursor | undefined, opts: ScanOptions): Promise<{ scan: LogWindowScan; cursor?: LogCursor }> {
  const now = opts.now ?? Date.now();
  const info = await stat(file).catch((err: NodeJS.ErrnoException) => {
    if (err.code === 'ENOENT') return undefined;
    throw err;
  });
  const empty = { rotated: false, truncated: false, bytesRead: 0, newLines: 0, errorLines: 0 };
  if (!info) {
    // Keep the old cursor: if the file comes back under a new inode it is read from its start.
    return { scan: { file, exists: false, baseline: false, ...empty, sizeBytes: 0 }, ...(prev ? { cursor: prev } : {}) };
  }
  const ageMinutes = Math.max(0, (now - info.mtimeMs) / 60_000);
  const head = await headOf(file, HEAD);
  if (!prev) {
    // First sight: start at the end of the last complete line, like `tail -F`.
    const lastNl = await lastNewlineBefore(file, info.size);
    const cursor = { dev: info.dev, ino: info.ino, offset: lastNl, headHash: head.hash, headBytes: head.bytes };
    return { scan: { file, exists: true, baseline: true, ...empty, sizeBytes: info.size, ageMinutes }, cursor };
  }

  let bytesRead = 0;
  let lines = 0;
  let matches = 0;
  let rotated = false;
  let truncated = false;
  let from: number;
  const sameFile = info.dev === prev.dev && info.ino === prev.ino;
  if (sameFile) {
    const sameHead = prev.headBytes === 0 || (await headOf(file, prev.headBytes)).hash === prev.headHash;
    if (info.size < prev.offset || !sameHead) {
      truncated = true;
      from = 0;
    } else {
      from = prev.offset;
    }
  } else {
    rotated = true;
    from = 0;
    const old = await findRotated(file, prev.dev, prev.ino);
    if (old) {
      const oldSize = (await stat(old)).size;
      if (oldSize > prev.offset) {
        const r = await countLines(old, prev.offset, oldSize, opts.pattern, opts.onProgress, opts.signal);
        bytesRead += r.bytesRead;
        lines += r.lines;
        matches += r.matches;
      }
    }
  }
  const r = await countLines(file, from, info.size, opts.pattern, (n) => opts.onProgress?.(bytesRead + n), opts.signal);
  bytesRead += r.bytesRead;
  lines += r.lines;
  matches += r.matches;
  return {
    scan: { file, exists: true, baseline: false, rotated, truncated, bytesRead, newLines: lines, errorLines: matches, sizeBytes: info.size, ageMinutes },
    cursor: { dev: info.dev, ino: info.ino, offset: r.endOffset, headHash: head.hash, headBytes: head.bytes },
  };
}

/** Offset just after the last newline in the first `size` bytes (reads backwards from the end, 64 KiB at a time). */
async function lastNewlineBefore(file: string, size: number): Promise<number> {
  const fh = await open(file, 'r');
  try {
    const buf = Buffer.alloc(64 * 1024);
    for (let end = size; end > 0; ) {
      const start = Math.max(0, end - buf.length);
      const { bytesRead } = await fh.read(buf, 0, end - start, start);
      const i = buf.subarray(0, bytesRead).lastIndexOf(10);
      if (i >= 0) return start + i + 1;
      end = start;
    }
    return 0;
  } finally {
    await fh.close();
  }
}
