// Health checks, aggregated exactly like the guide's HealthController.aggregateHealthStatus:
// no unhealthy check -> healthy; fewer than half unhealthy -> degraded; otherwise unhealthy.
import fs from 'node:fs';
import os from 'node:os';
import { withTimeout } from './util.js';

export function aggregateHealthStatus(checks) {
  const unhealthy = checks.filter(
    (c) => c.status === 'fulfilled' && c.value.status === 'unhealthy',
  ).length;
  if (unhealthy === 0) return 'healthy';
  if (unhealthy < checks.length / 2) return 'degraded';
  return 'unhealthy';
}

async function timed(name, fn) {
  const start = process.hrtime.bigint();
  try {
    const details = await fn();
    const responseTime = Number((process.hrtime.bigint() - start) / 1000n) / 1000;
    if (details && details.unhealthy) {
      const { unhealthy, error, ...rest } = details;
      return { name, status: 'unhealthy', responseTime, error, details: rest };
    }
    return { name, status: 'healthy', responseTime, ...(details ? { details } : {}) };
  } catch (err) {
    const responseTime = Number((process.hrtime.bigint() - start) / 1000n) / 1000;
    return { name, status: 'unhealthy', responseTime, error: err.message };
  }
}

export function createHealth({ pool, redis, cfg, build }) {
  const t = cfg.checkTimeoutMs;

  const checkDatabase = () => timed('database', async () => {
    await withTimeout(pool.query('SELECT 1'), t, 'database check');
    return { connected: true };
  });

  const checkRedis = () => timed('redis', async () => {
    if (redis.status !== 'ready') throw new Error(`redis not connected (${redis.status})`);
    const pong = await withTimeout(redis.ping(), t, 'redis check');
    if (pong !== 'PONG') throw new Error(`unexpected PING reply ${JSON.stringify(pong)}`);
    return { connected: true };
  });

  const checkMemory = () => timed('memory', async () => {
    const total = os.totalmem();
    const free = os.freemem();
    const usage = total > 0 ? (total - free) / total : 0;
    const rss = process.memoryUsage.rss();
    const details = {
      usagePercent: Math.round(usage * 10000) / 100,
      thresholdPercent: cfg.memoryThreshold * 100,
      rssBytes: rss,
    };
    if (usage > cfg.memoryThreshold) {
      return { unhealthy: true, error: `memory usage ${details.usagePercent}% above threshold`, ...details };
    }
    return details;
  });

  const checkDisk = () => timed('disk', async () => {
    const s = await withTimeout(fs.promises.statfs(cfg.diskCheckPath), t, 'disk check');
    const total = s.blocks * s.bsize;
    const avail = s.bavail * s.bsize;
    const used = total - s.bfree * s.bsize;
    // same formula as df's Use%: used / (used + available to unprivileged users)
    const usage = used + avail > 0 ? used / (used + avail) : 0;
    const details = {
      path: cfg.diskCheckPath,
      usagePercent: Math.round(usage * 10000) / 100,
      thresholdPercent: cfg.diskThreshold * 100,
      availableBytes: avail,
    };
    if (usage > cfg.diskThreshold) {
      return { unhealthy: true, error: `disk usage ${details.usagePercent}% above threshold`, ...details };
    }
    return details;
  });

  async function overall() {
    const settled = await Promise.allSettled([checkDatabase(), checkRedis(), checkMemory(), checkDisk()]);
    let status = aggregateHealthStatus(settled);
    const checks = settled.map((s, i) => (s.status === 'fulfilled'
      ? s.value
      : { name: ['database', 'redis', 'memory', 'disk'][i], status: 'unhealthy', error: String(s.reason) }));
    if (build.flags.failHealthCheck) {
      // A release whose health check is broken (version v3 of the stand-in): its self-test always fails.
      checks.push({
        name: 'release',
        status: 'unhealthy',
        responseTime: 0,
        error: `release self-test failed for ${build.version}`,
      });
      status = 'unhealthy';
    }
    return {
      status,
      timestamp: new Date().toISOString(),
      checks,
      uptime: process.uptime(),
      version: build.version,
    };
  }

  return { overall, checkDatabase, checkRedis, checkMemory, checkDisk };
}
