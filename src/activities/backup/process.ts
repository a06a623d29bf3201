/**
 * Worker-side plumbing for backups: process pipelines (pg_dump | zstd → file) through execa with argument
 * arrays, artifacts written under a temporary name then fsynced and renamed, sha256 computed while writing,
 * progress callbacks for heartbeats, and cancellation that kills every stage and leaves no partial file.
 */
import { createHash } from 'node:crypto';
import { constants, createReadStream, createWriteStream } from 'node:fs';
import { open, rename, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { PassThrough, Transform, type Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { execa, type ResultPromise } from 'execa';
import type { Compression } from './manifest.js';
import { PARTIAL_SUFFIX } from './manifest.js';

export interface Stage {
  file: string;
  args: string[];
  env?: Record<string, string>;
}

export interface CompressionSettings {
  program: Compression['program'];
  level: number;
  threads: number;
}

export function compressStage(c: CompressionSettings): Stage | undefined {
  switch (c.program) {
    case 'zstd':
      return { file: 'zstd', args: [`-${c.level}`, `-T${c.threads}`, '-q', '-c'] };
    case 'gzip':
      return { file: 'gzip', args: [`-${Math.min(c.level, 9)}`, '-c'] };
    case 'none':
      return undefined;
  }
}

export function decompressStage(program: Compression['program']): Stage | undefined {
  switch (program) {
    case 'zstd':
      return { file: 'zstd', args: ['-d', '-q', '-c'] };
    case 'gzip':
      return { file: 'gzip', args: ['-d', '-c'] };
    case 'none':
      return undefined;
  }
}

export function compressionSuffix(program: Compression['program']): string {
  return program === 'zstd' ? '.zst' : program === 'gzip' ? '.gz' : '';
}

/** Counts bytes and hashes them on the way through. */
class Digest extends Transform {
  readonly hash = createHash('sha256');
  bytes = 0;
  constructor(private readonly onBytes?: (bytes: number) => void) {
    super();
  }
  override _transform(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null, data?: Buffer) => void): void {
    this.hash.update(chunk);
    this.bytes += chunk.length;
    this.onBytes?.(this.bytes);
    done(null, chunk);
  }
}

/**
 * Process groups of the pipelines still running. Being detached, they are not killed by execa when this process
 * exits; an exit that is not a graceful shutdown (a second Ctrl-C, a fatal error) kills them here instead, so no
 * pg_dump or pg_restore outlives the worker that started it (a SIGKILLed worker cannot: its retry cleans up).
 */
const runningGroups = new Set<number>();
process.on('exit', () => {
  for (const pgid of runningGroups) {
    try {
      process.kill(-pgid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

/**
 * Makes `controller` abort when `signal` does — at once when it already has: an 'abort' listener added to a signal
 * that already fired is never called, so work that links a cancellation after its first awaits would miss one that
 * landed during them and run on. Returns the function that stops following `signal`.
 */
export function followAbort(signal: AbortSignal | undefined, controller: AbortController): () => void {
  if (!signal) return () => {};
  if (signal.aborted) {
    controller.abort(signal.reason);
    return () => {};
  }
  const onAbort = () => controller.abort(signal.reason);
  signal.addEventListener('abort', onAbort, { once: true });
  return () => signal.removeEventListener('abort', onAbort);
}

export class PipelineError extends Error {
  override readonly name = 'PipelineError';
}

/**
 * Runs `stages` as one pipeline: `source` (optional) → stage 1 → … → stage n → `sink`. Resolves when every
 * process exited 0 and every stream finished; on the first failure or on `signal`, kills every stage and
 * rejects with the failing command and its stderr.
 */
export async function runPipeline(opts: { stages: Stage[]; source?: Readable; sink?: Writable; signal?: AbortSignal; cwd?: string }): Promise<void> {
  const { stages, source, sink, signal } = opts;
  if (stages.length === 0) throw new PipelineError('empty pipeline');
  signal?.throwIfAborted();
  const procs: ResultPromise[] = stages.map((s, i) =>
    execa(s.file, s.args, {
      env: s.env,
      cwd: opts.cwd,
      stdin: i === 0 && !source ? 'ignore' : 'pipe',
      stdout: i === stages.length - 1 && !sink ? 'ignore' : 'pipe',
      buffer: { stdout: false },
      stripFinalNewline: true,
      // Its own process group, so a kill reaches the processes it forks too (pg_restore --jobs runs its workers
      // as children; killed alone, the parent left them restoring and holding the pipes open, and the step hung).
      detached: true,
    }) as unknown as ResultPromise,
  );
  for (const p of procs) if (p.pid !== undefined) runningGroups.add(p.pid);
  const streams: Promise<unknown>[] = [];
  if (source) streams.push(pipeline(source, procs[0]!.stdin!));
  for (let i = 0; i + 1 < procs.length; i++) streams.push(pipeline(procs[i]!.stdout!, procs[i + 1]!.stdin!));
  if (sink) streams.push(pipeline(procs.at(-1)!.stdout!, sink));

  const killAll = () => {
    for (const p of procs) {
      if (p.pid !== undefined) {
        try {
          process.kill(-p.pid, 'SIGKILL');
        } catch {
          // the group is gone already
        }
      }
      p.kill('SIGKILL');
    }
  };
  const onAbort = () => killAll();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const results = await Promise.allSettled([...procs, ...streams]);
    signal?.throwIfAborted();
    const failedProc = results.slice(0, procs.length).find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failedProc) {
      const e = failedProc.reason as { shortMessage?: string; message: string; stderr?: unknown };
      const stderr = typeof e.stderr === 'string' && e.stderr ? `: ${e.stderr.trim().split('\n').slice(-5).join(' | ')}` : '';
      throw new PipelineError(`${e.shortMessage ?? e.message}${stderr}`);
    }
    const failedStream = results.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failedStream) throw new PipelineError(`stream failed: ${(failedStream.reason as Error).message}`);
  } catch (err) {
    killAll();
    throw err;
  } finally {
    signal?.removeEventListener('abort', onAbort);
    for (const p of procs) if (p.pid !== undefined) runningGroups.delete(p.pid);
  }
}

/**
 * A producer of an attempt whose worker was killed may still be blocked opening `fifo` for writing (its reader died
 * with the worker): it would wait forever, holding a database session. Opening the pipe for reading and closing it
 * again lets its open() return; its first write then fails (EPIPE) and it exits.
 */
async function releaseStaleWriter(fifo: string): Promise<void> {
  try {
    const info = await stat(fifo);
    if (!info.isFIFO()) return;
    const fh = await open(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
    await new Promise((r) => setTimeout(r, 50)); // the writer wakes while a reader is there
    await fh.close();
  } catch {
    // no pipe there, or nothing to release
  }
}

/**
 * `producer` writes into a named pipe that `compress` reads: the uncompressed stream goes from process to process
 * through the kernel and only the compressed bytes reach `sink` (to be hashed and written). Either side failing
 * kills the other, which would otherwise wait on the pipe forever. The pipe lives at `fifo` while it runs.
 */
export async function compressThroughFifo(opts: {
  fifo: string;
  producer: (fifo: string) => Stage;
  compress: Stage;
  sink: Writable;
  signal?: AbortSignal;
}): Promise<void> {
  const { fifo, compress, sink } = opts;
  // Linked before the first await, so a cancellation landing during the preparation is not missed.
  const both = new AbortController();
  const unfollow = followAbort(opts.signal, both);
  const stop = <T>(p: Promise<T>) => p.catch((err: unknown) => (both.abort(err), Promise.reject(err)));
  try {
    await releaseStaleWriter(fifo);
    await rm(fifo, { force: true });
    await runPipeline({ stages: [{ file: 'mkfifo', args: ['-m', '600', fifo] }], signal: both.signal });
    await Promise.all([
      stop(runPipeline({ stages: [opts.producer(fifo)], signal: both.signal })),
      stop(runPipeline({ stages: [{ ...compress, args: [...compress.args, fifo] }], sink, signal: both.signal })),
    ]);
  } finally {
    unfollow();
    await rm(fifo, { force: true });
  }
}

/** fsync a file or directory (a directory, so a rename inside it survives a crash). */
async function fsyncFile(p: string): Promise<void> {
  const fh = await open(p, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * Writes an artifact atomically: the producer writes into `<dest>.partial`, which is fsynced and renamed to
 * `dest` only when the producer succeeded. Any failure or cancellation removes the partial file.
 */
export async function writeArtifact(
  dest: string,
  produce: (sink: Writable) => Promise<void>,
  onBytes?: (bytes: number) => void,
): Promise<{ bytes: number; sha256: string }> {
  const tmp = dest + PARTIAL_SUFFIX;
  await rm(tmp, { force: true });
  const digest = new Digest(onBytes);
  try {
    await Promise.all([produce(digest), pipeline(digest, createWriteStream(tmp, { flags: 'wx', mode: 0o600 }))]);
    await fsyncFile(tmp);
  } catch (err) {
    digest.destroy();
    await rm(tmp, { force: true });
    throw err;
  }
  await rename(tmp, dest);
  await fsyncFile(path.dirname(dest));
  return { bytes: digest.bytes, sha256: digest.hash.digest('hex') };
}

/** sha256 and size of a file, streamed, with progress. */
export async function hashFile(file: string, onBytes?: (bytes: number) => void, signal?: AbortSignal): Promise<{ bytes: number; sha256: string }> {
  const digest = new Digest(onBytes);
  const sink = new PassThrough();
  sink.resume();
  await pipeline(createReadStream(file, { signal, highWaterMark: 1 << 20 }), digest, sink);
  return { bytes: digest.bytes, sha256: digest.hash.digest('hex') };
}

/** Writes a small file (JSON, markers) atomically: temp name, fsync, rename, fsync the directory. */
export async function writeFileAtomic(dest: string, text: string): Promise<void> {
  const tmp = dest + PARTIAL_SUFFIX;
  await rm(tmp, { force: true });
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, dest);
  await fsyncFile(path.dirname(dest));
}

export async function exists(p: string): Promise<boolean> {
  try {
    await stat(p);
    return true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw err;
  }
}

/** A file sink for pipelines that only decompress to a temp file (no digest needed). */
export function fileSink(file: string): Writable {
  return createWriteStream(file, { flags: 'w', mode: 0o600 });
}
