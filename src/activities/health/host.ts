/** The worker host: filesystem usage, memory, and the app's log files. */
import { createReadStream } from 'node:fs';
import { readFile, stat, statfs } from 'node:fs/promises';
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import type { FilesystemUsage, LogScan, MemoryUsage } from '../../common/health.js';
import { permanentOnKnownErrors } from '../common/failures.js';

/** Usage of the filesystem holding `p`, computed like `df` (used / (used + available to users)). */
export async function filesystemUsage(p: string): Promise<FilesystemUsage> {
  const s = await statfs(p);
  const total = s.blocks * s.bsize;
  const used = (s.blocks - s.bfree) * s.bsize;
  const available = s.bavail * s.bsize;
  const usedPercent = used + available === 0 ? 0 : (used / (used + available)) * 100;
  return { path: p, usedPercent, totalBytes: total, availableBytes: available };
}

/** Memory in use as `free` reports it: total minus available. */
export async function memoryUsage(meminfo = '/proc/meminfo'): Promise<MemoryUsage> {
  const text = await readFile(meminfo, 'utf8');
  const kb = (key: string) => {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(text);
    if (!m?.[1]) throw new Error(`${meminfo} has no ${key} line`);
    return Number(m[1]) * 1024;
  };
  const total = kb('MemTotal');
  const available = kb('MemAvailable');
  return { usedPercent: ((total - available) / total) * 100, totalBytes: total, availableBytes: available };
}

/**
 * Counts lines containing `ERROR` by streaming the file (app logs grow to gigabytes; never read them whole),
 * honouring cancellation, and heartbeating as it goes when it runs as a regular activity (a local activity
 * cannot heartbeat: its start-to-close timeout bounds it instead).
 */
export async function scanLog(file: string, now = Date.now()): Promise<LogScan> {
  let info;
  try {
    info = await stat(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { file, exists: false, errorLines: 0, lines: 0, bytes: 0 };
    throw err;
  }
  let errorLines = 0;
  let lines = 0;
  let bytes = 0;
  let carry = '';
  const signal = cancellationSignal();
  for await (const chunk of createReadStream(file, { encoding: 'utf8', highWaterMark: 1 << 20, signal })) {
    const text = carry + (chunk as string);
    bytes += Buffer.byteLength(chunk as string);
    const parts = text.split('\n');
    carry = parts.pop() ?? '';
    for (const line of parts) {
      lines++;
      if (line.includes('ERROR')) errorLines++;
    }
    heartbeat({ bytes, of: info.size });
  }
  if (carry.length > 0) {
    lines++;
    if (carry.includes('ERROR')) errorLines++;
  }
  return { file, exists: true, errorLines, lines, bytes, ageMinutes: Math.max(0, (now - info.mtimeMs) / 60_000) };
}

function cancellationSignal(): AbortSignal | undefined {
  try {
    return Context.current().cancellationSignal;
  } catch {
    return undefined;
  }
}

function heartbeat(details: unknown): void {
  let context: Context;
  try {
    context = Context.current();
  } catch {
    return; // not inside an activity (a direct call from a benchmark or test): nothing to report to
  }
  if (!context.info.isLocal) context.heartbeat(details);
}

export function createHostActivities(cfg: OpsConfig) {
  return {
    /** Usage of every distinct filesystem holding the environment's data paths and configured disks. */
    async checkDiskUsage(input: { environment: string }): Promise<FilesystemUsage[]> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      const candidates = [...env.paths.disks, env.paths.logs, env.paths.uploads, env.paths.backups];
      const seen = new Map<number, FilesystemUsage>();
      for (const p of candidates) {
        const existing = await nearestExisting(p);
        const dev = (await stat(existing)).dev;
        if (!seen.has(dev)) seen.set(dev, { ...(await filesystemUsage(existing)), path: p });
      }
      return [...seen.values()];
    },

    async checkMemoryUsage(): Promise<MemoryUsage> {
      return memoryUsage();
    },

    /** ERROR lines and staleness of the environment's app log. */
    async scanAppLog(input: { environment: string }): Promise<LogScan> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      return scanLog(path.join(env.paths.logs, env.paths.appLog));
    },
  };
}

/** A path that may not exist yet still lives on the filesystem of its nearest existing ancestor. */
async function nearestExisting(p: string): Promise<string> {
  for (let cur = path.resolve(p); ; cur = path.dirname(cur)) {
    try {
      await stat(cur);
      return cur;
    } catch {
      if (cur === path.dirname(cur)) return cur;
    }
  }
}
