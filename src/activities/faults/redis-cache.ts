/**
 * The environment's Redis: flush the configured cache key patterns with SCAN MATCH + UNLINK in batches — never
 * FLUSHALL/FLUSHDB, because the Redis may be shared (sessions, queues, other apps' keys).
 */
import { ioredis } from '../../common/lazy-modules.js';
import { Context } from '@temporalio/activity';
import { getEnvironment, resolveSecret, type OpsConfig } from '../../common/config/index.js';
import { permanentOnKnownErrors } from '../common/failures.js';

export interface FlushResult {
  action: 'flush-cache';
  outcome: 'flushed' | 'failed';
  patterns: string[];
  deleted: number;
  detail: string;
  durationMs: number;
}

export function createRedisCacheActivities(cfg: OpsConfig) {
  return {
    async flushCacheKeys(input: { environment: string }): Promise<FlushResult> {
      const env = await permanentOnKnownErrors(() => getEnvironment(cfg, input.environment));
      const patterns = env.faultDetection.recovery.cacheKeyPatterns;
      const password = await permanentOnKnownErrors(() => resolveSecret(env.redis.passwordEnv));
      const started = Date.now();
      let ctx: Context | undefined;
      try {
        ctx = Context.current();
      } catch {
        ctx = undefined;
      }
      const redis = new (ioredis())(env.redis.url, { lazyConnect: true, maxRetriesPerRequest: 1, connectTimeout: 5_000, enableOfflineQueue: false, ...(password ? { password } : {}) });
      let lastError: Error | undefined;
      redis.on('error', (err: Error) => (lastError = err)); // a dropped connection fails the command below, never the worker
      let deleted = 0;
      try {
        await redis.connect();
        for (const pattern of patterns) {
          let cursor = '0';
          do {
            ctx?.cancellationSignal.throwIfAborted();
            const [next, keys] = await redis.scan(cursor, 'MATCH', pattern, 'COUNT', 1000);
            cursor = next;
            if (keys.length) deleted += await redis.unlink(...keys);
            if (ctx && !ctx.info.isLocal) ctx.heartbeat({ pattern, deleted });
          } while (cursor !== '0');
        }
      } catch (err) {
        throw new Error(`Redis ${env.redis.url}: ${(err as Error).message}${lastError && lastError !== err ? ` (${lastError.message})` : ''}`);
      } finally {
        redis.disconnect();
      }
      return { action: 'flush-cache', outcome: 'flushed', patterns, deleted, detail: `deleted ${deleted} key(s) matching ${patterns.join(', ')}`, durationMs: Date.now() - started };
    },
  };
}
