/**
 * What the worker's memory is made of, for the log: `kill -USR2 <worker pid>` logs it at once, and the worker
 * logs it every 10 minutes on its own. Resident memory splits into the main thread's V8 heap, memory outside it
 * held by JavaScript objects (Buffers), and the rest: the workflow thread's own V8 isolate with the bundle, the
 * SDK's Rust core (gRPC, caches), code and libraries (file-backed).
 */
import { readFileSync } from 'node:fs';
import type { Worker } from '@temporalio/worker';

export interface MemoryReport {
  rssMB: number;
  /** Resident pages backed by files (node, libraries, the native SDK module): shared with other processes. */
  fileMB?: number;
  /** Anonymous resident pages: heaps of both V8 isolates, Rust and malloc. */
  anonMB?: number;
  heapUsedMB: number;
  heapTotalMB: number;
  externalMB: number;
  threads?: number;
  cachedWorkflows?: number;
}

const mb = (bytes: number) => Math.round((bytes / 1048576) * 10) / 10;

function procKb(file: string, key: string): number | undefined {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+)`, 'm').exec(readFileSync(file, 'utf8'));
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined; // not Linux, or /proc hidden: the report keeps what node itself knows
  }
}

export function memoryReport(worker?: Pick<Worker, 'getStatus'>): MemoryReport {
  const u = process.memoryUsage();
  const file = procKb('/proc/self/status', 'RssFile');
  const anon = procKb('/proc/self/status', 'RssAnon');
  const threads = procKb('/proc/self/status', 'Threads');
  return {
    rssMB: mb(u.rss),
    ...(file !== undefined ? { fileMB: mb(file * 1024) } : {}),
    ...(anon !== undefined ? { anonMB: mb(anon * 1024) } : {}),
    heapUsedMB: mb(u.heapUsed),
    heapTotalMB: mb(u.heapTotal),
    externalMB: mb(u.external),
    ...(threads !== undefined ? { threads } : {}),
    ...(worker ? { cachedWorkflows: worker.getStatus().numCachedWorkflows } : {}),
  };
}

/** Logs the report on SIGUSR2 and every `everyMs`; returns the function that stops both. */
export function logMemory(worker: Pick<Worker, 'getStatus'>, log: (msg: string, meta: MemoryReport) => void, everyMs = 600_000): () => void {
  const emit = () => log('worker memory', memoryReport(worker));
  const timer = setInterval(emit, everyMs);
  timer.unref();
  process.on('SIGUSR2', emit);
  return () => {
    clearInterval(timer);
    process.off('SIGUSR2', emit);
  };
}
