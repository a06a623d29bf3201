// Prometheus metrics with the guide's names (prefix llmchat_), plus prom-client's default process
// metrics (process_resident_memory_bytes, ...). Gauges that need a query are filled at scrape time,
// each bounded by a timeout so a dead dependency cannot hang /metrics.
import client from 'prom-client';
import { withTimeout } from './util.js';

export function createMetrics({ pool, redis, cfg }) {
  const register = new client.Registry();
  client.collectDefaultMetrics({ register });

  const httpRequestsTotal = new client.Counter({
    name: 'llmchat_http_requests_total',
    help: 'HTTP请求总数 (total HTTP requests)',
    labelNames: ['method', 'route', 'status_code'],
    registers: [register],
  });
  const httpRequestDuration = new client.Histogram({
    name: 'llmchat_http_request_duration_seconds',
    help: 'HTTP请求持续时间 (HTTP request duration)',
    labelNames: ['method', 'route'],
    buckets: [0.1, 0.5, 1, 2, 5, 10],
    registers: [register],
  });
  const chatMessagesTotal = new client.Counter({
    name: 'llmchat_chat_messages_total',
    help: '聊天消息总数 (chat messages)',
    labelNames: ['agent_id', 'status'],
    registers: [register],
  });
  let lastActive = 0;
  new client.Gauge({
    name: 'llmchat_active_sessions_total',
    help: `当前活跃会话数 (sessions updated in the last ${cfg.activeSessionWindowSec} s)`,
    registers: [register],
    async collect() {
      try {
        const r = await withTimeout(
          pool.query(
            "SELECT count(*)::bigint AS n FROM chat_sessions WHERE updated_at > now() - make_interval(secs => $1)",
            [cfg.activeSessionWindowSec],
          ),
          cfg.checkTimeoutMs,
          'active sessions query',
        );
        lastActive = Number(r.rows[0].n);
      } catch {
        // keep the last known value while the database is unavailable
      }
      this.set(lastActive);
    },
  });
  new client.Gauge({
    name: 'llmchat_database_connections_active',
    help: '活跃数据库连接数 (open connections in the pool)',
    registers: [register],
    collect() { this.set(pool.totalCount); },
  });
  new client.Gauge({
    name: 'llmchat_redis_connections_active',
    help: '活跃Redis连接数 (1 when the Redis client is connected)',
    registers: [register],
    collect() { this.set(redis.status === 'ready' ? 1 : 0); },
  });
  const info = new client.Gauge({
    name: 'llmchat_app_info',
    help: 'Build information of the running release',
    labelNames: ['version'],
    registers: [register],
  });

  return {
    register,
    setInfo(version) { info.set({ version }, 1); },
    recordHttpRequest(method, route, statusCode, durationMs) {
      httpRequestsTotal.inc({ method, route, status_code: String(statusCode) });
      httpRequestDuration.observe({ method, route }, durationMs / 1000);
    },
    recordChatMessage(agentId, status) {
      chatMessagesTotal.inc({ agent_id: agentId || 'none', status });
    },
  };
}
