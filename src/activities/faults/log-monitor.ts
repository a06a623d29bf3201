/** 日志监控 — the environment's log files, read incrementally from the offsets the previous run reached. */
import path from 'node:path';
import { Context } from '@temporalio/activity';
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { scanIncrementally, type LogCursor, type LogWindowScan } from './log-cursor.js';
import { changeFaultState } from './shared-state.js';
import { faultStateKey, isNum, isObject } from './state-file.js';
import { permanentOnKnownErrors } from '../common/failures.js';

function validCursors(v: unknown): Record<string, LogCursor> | undefined {
  if (!isObject(v)) return undefined;
  const out: Record<string, LogCursor> = {};
  for (const [file, c] of Object.entries(v)) {
    if (isObject(c) && isNum(c.dev) && isNum(c.ino) && isNum(c.offset) && c.offset >= 0 && typeof c.headHash === 'string' && isNum(c.headBytes)) {
      out[file] = { dev: c.dev, ino: c.ino, offset: c.offset, headHash: c.headHash, headBytes: c.headBytes };
    }
  }
  return out;
}

function activityContext(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

export function createLogMonitorActivities(cfg: OpsConfig) {
  return {
    /** New ERROR lines and staleness of every watched log since the previous run; heartbeats with bytes read. */
    async scanWatchedLogs(input: { environment: string }): Promise<LogWindowScan[]> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      const fd = env.faultDetection;
      const files = (fd.logFiles.length ? fd.logFiles : [env.paths.appLog]).map((f) => path.resolve(env.paths.logs, f));
      const key = faultStateKey(input.environment, env);
      const ctx = activityContext();
      // Cursors shared by every worker (src/activities/faults/shared-state.ts): a scan on another host resumes where this one stopped.
      return changeFaultState(env, key, 'log-cursors', validCursors, async (stored) => {
        const cursors = stored ?? {};
        const scans: LogWindowScan[] = [];
        for (const file of files) {
          const { scan, cursor } = await scanIncrementally(file, cursors[file], {
            pattern: fd.errorPattern,
            signal: ctx?.cancellationSignal,
            onProgress: (read) => {
              if (ctx && !ctx.info.isLocal) ctx.heartbeat({ file, bytesRead: read });
            },
          });
          if (cursor) cursors[file] = cursor;
          else delete cursors[file];
          scans.push(scan);
        }
        return { next: cursors, result: scans };
      }, (msg, meta) => (ctx?.log ?? console).warn(msg, meta));
    },
  };
}
