// Stand-in LLMChat backend: health, metrics, chat sessions/messages, debug fault injection.
// Plain node:http, no framework. Start: `node src/server.js` (env: see README.md).
import http from 'node:http';
import fs from 'node:fs';
import path from 'node:path';
import { build, loadConfig } from './config.js';
import { Logger } from './log.js';
import { createPool } from './db.js';
import { createRedis } from './redis.js';
import { createMetrics } from './metrics.js';
import { createHealth } from './health.js';
import { redactUrl, withTimeout } from './util.js';

const MAX_BODY = 1024 * 1024;
const MAX_UPLOAD = 5 * 1024 * 1024;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const UPLOAD_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$/;
const ROLES = new Set(['user', 'assistant', 'system']);
const CACHE_TTL_SEC = 60;

class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function send(res, status, body, headers = {}) {
  const payload = typeof body === 'string' ? body : JSON.stringify(body);
  res.writeHead(status, {
    'content-type': typeof body === 'string' ? 'text/plain; charset=utf-8' : 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
    ...headers,
  });
  res.end(payload);
}

function readBody(req, limit) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on('data', (c) => {
      size += c.length;
      if (size > limit) {
        reject(new HttpError(413, `request body larger than ${limit} bytes`));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

async function readJson(req) {
  const buf = await readBody(req, MAX_BODY);
  if (buf.length === 0) throw new HttpError(400, 'request body must be a JSON object');
  let value;
  try {
    value = JSON.parse(buf.toString('utf8'));
  } catch {
    throw new HttpError(400, 'request body is not valid JSON');
  }
  if (value === null || typeof value !== 'object' || Array.isArray(value)) {
    throw new HttpError(400, 'request body must be a JSON object');
  }
  return value;
}

function str(obj, key, { required = false, max = 1000 } = {}) {
  const v = obj[key];
  if (v === undefined || v === null) {
    if (required) throw new HttpError(400, `${key} is required`);
    return null;
  }
  if (typeof v !== 'string') throw new HttpError(400, `${key} must be a string`);
  if (required && v.trim() === '') throw new HttpError(400, `${key} must not be empty`);
  if (v.length > max) throw new HttpError(400, `${key} must be at most ${max} characters`);
  return v;
}

function sessionId(raw) {
  if (!UUID_RE.test(raw)) throw new HttpError(400, 'session id must be a UUID');
  return raw.toLowerCase();
}

function estimateTokens(text) {
  return Math.max(1, Math.ceil(text.length / 4));
}

async function main() {
  const cfg = loadConfig();
  const logger = new Logger({ file: cfg.logFile, stdout: cfg.logToStdout });
  const pool = createPool(cfg, logger);
  const redis = createRedis(cfg, logger);
  const metrics = createMetrics({ pool, redis, cfg });
  metrics.setInfo(build.version);
  const health = createHealth({ pool, redis, cfg, build });
  const writesTokenCount = build.maxMigration >= 2;

  async function cacheGet(key) {
    if (redis.status !== 'ready') return null;
    try { return await withTimeout(redis.get(key), cfg.checkTimeoutMs, 'cache get'); } catch { return null; }
  }
  async function cacheSet(key, value) {
    if (redis.status !== 'ready') return;
    try { await withTimeout(redis.set(key, value, 'EX', CACHE_TTL_SEC), cfg.checkTimeoutMs, 'cache set'); } catch { /* best effort */ }
  }
  async function cacheDel(key) {
    if (redis.status !== 'ready') return;
    try { await withTimeout(redis.del(key), cfg.checkTimeoutMs, 'cache del'); } catch { /* best effort */ }
  }

  // --- handlers -------------------------------------------------------------------------------
  const routes = [];
  const route = (method, pattern, name, handler) => {
    const keys = [];
    const re = new RegExp(`^${pattern.replace(/:([a-z]+)/g, (_, k) => { keys.push(k); return '([^/]+)'; })}$`);
    routes.push({ method, re, keys, name: pattern, handler });
  };

  route('GET', '/health', 'health', async (req, res) => {
    const body = await health.overall();
    send(res, body.status === 'unhealthy' ? 503 : 200, body);
  });
  route('GET', '/health/db', 'health_db', async (req, res) => {
    const c = await health.checkDatabase();
    send(res, c.status === 'healthy' ? 200 : 503, { status: c.status, responseTime: c.responseTime, ...(c.error ? { error: c.error } : {}) });
  });
  route('GET', '/health/redis', 'health_redis', async (req, res) => {
    const c = await health.checkRedis();
    send(res, c.status === 'healthy' ? 200 : 503, { status: c.status, responseTime: c.responseTime, ...(c.error ? { error: c.error } : {}) });
  });
  route('GET', '/metrics', 'metrics', async (req, res) => {
    const text = await metrics.register.metrics();
    res.writeHead(200, { 'content-type': metrics.register.contentType });
    res.end(text);
  });
  route('GET', '/version', 'version', async (req, res) => {
    send(res, 200, { version: build.version, maxMigration: build.maxMigration, fromImage: build.fromImage, node: process.version });
  });

  route('POST', '/api/sessions', 'sessions', async (req, res) => {
    const body = await readJson(req);
    const userId = str(body, 'userId', { required: true, max: 200 });
    const agentId = str(body, 'agentId', { max: 100 });
    const title = str(body, 'title', { max: 500 });
    const r = await pool.query(
      `INSERT INTO chat_sessions (user_id, agent_id, title) VALUES ($1, $2, $3)
       RETURNING id, user_id AS "userId", agent_id AS "agentId", title, created_at AS "createdAt", updated_at AS "updatedAt"`,
      [userId, agentId, title],
    );
    logger.info('session created', { sessionId: r.rows[0].id, userId: userId.slice(0, 64) });
    send(res, 201, r.rows[0]);
  });

  route('GET', '/api/sessions/:id', 'session', async (req, res, p) => {
    const id = sessionId(p.id);
    const r = await pool.query(
      `SELECT id, user_id AS "userId", agent_id AS "agentId", title, created_at AS "createdAt", updated_at AS "updatedAt"
       FROM chat_sessions WHERE id = $1`, [id]);
    if (r.rowCount === 0) throw new HttpError(404, 'session not found');
    send(res, 200, r.rows[0]);
  });

  route('POST', '/api/sessions/:id/messages', 'session_messages', async (req, res, p) => {
    const id = sessionId(p.id);
    const body = await readJson(req);
    const role = str(body, 'role', { required: true, max: 20 });
    if (!ROLES.has(role)) throw new HttpError(400, `role must be one of ${[...ROLES].join(', ')}`);
    const content = str(body, 'content', { required: true, max: 100000 });
    const client = await pool.connect();
    let agentId = null;
    let row;
    try {
      await client.query('BEGIN');
      const s = await client.query('SELECT agent_id FROM chat_sessions WHERE id = $1 FOR UPDATE', [id]);
      if (s.rowCount === 0) {
        await client.query('ROLLBACK');
        throw new HttpError(404, 'session not found');
      }
      agentId = s.rows[0].agent_id;
      const cols = writesTokenCount ? '(session_id, role, content, token_count)' : '(session_id, role, content)';
      const vals = writesTokenCount ? '($1, $2, $3, $4)' : '($1, $2, $3)';
      const params = writesTokenCount ? [id, role, content, estimateTokens(content)] : [id, role, content];
      const m = await client.query(
        `INSERT INTO messages ${cols} VALUES ${vals}
         RETURNING id::text AS id, session_id AS "sessionId", role, content, created_at AS "createdAt"`, params);
      row = m.rows[0];
      if (writesTokenCount) row.tokenCount = params[3];
      await client.query('UPDATE chat_sessions SET updated_at = now() WHERE id = $1', [id]);
      await client.query('COMMIT');
    } catch (err) {
      if (!(err instanceof HttpError)) {
        await client.query('ROLLBACK').catch(() => {});
        metrics.recordChatMessage(agentId, 'error');
      }
      throw err;
    } finally {
      client.release();
    }
    metrics.recordChatMessage(agentId, 'success');
    await cacheDel(`llmchat:cache:messages:${id}`);
    send(res, 201, row);
  });

  route('GET', '/api/sessions/:id/messages', 'session_messages', async (req, res, p) => {
    const id = sessionId(p.id);
    const key = `llmchat:cache:messages:${id}`;
    const cached = await cacheGet(key);
    if (cached) {
      res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-cache': 'hit' });
      res.end(cached);
      return;
    }
    const s = await pool.query('SELECT 1 FROM chat_sessions WHERE id = $1', [id]);
    if (s.rowCount === 0) throw new HttpError(404, 'session not found');
    const m = await pool.query(
      `SELECT id::text AS id, role, content, created_at AS "createdAt"
       FROM messages WHERE session_id = $1 ORDER BY created_at, id LIMIT 1000`, [id]);
    const payload = JSON.stringify({ sessionId: id, messages: m.rows });
    await cacheSet(key, payload);
    res.writeHead(200, { 'content-type': 'application/json; charset=utf-8', 'x-cache': 'miss' });
    res.end(payload);
  });

  route('PUT', '/api/uploads/:name', 'uploads', async (req, res, p) => {
    if (!UPLOAD_NAME_RE.test(p.name) || p.name.includes('..')) throw new HttpError(400, 'invalid upload name');
    const buf = await readBody(req, MAX_UPLOAD);
    await fs.promises.mkdir(cfg.uploadsDir, { recursive: true });
    const final = path.join(cfg.uploadsDir, p.name);
    const tmp = `${final}.tmp-${process.pid}-${Date.now()}`;
    await fs.promises.writeFile(tmp, buf);
    await fs.promises.rename(tmp, final);
    logger.info('upload stored', { name: p.name, bytes: buf.length });
    send(res, 201, { name: p.name, bytes: buf.length });
  });
  route('GET', '/api/uploads/:name', 'uploads', async (req, res, p) => {
    if (!UPLOAD_NAME_RE.test(p.name) || p.name.includes('..')) throw new HttpError(400, 'invalid upload name');
    let buf;
    try { buf = await fs.promises.readFile(path.join(cfg.uploadsDir, p.name)); } catch (err) {
      if (err.code === 'ENOENT') throw new HttpError(404, 'upload not found');
      throw err;
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': buf.length });
    res.end(buf);
  });

  route('POST', '/api/debug/error', 'debug_error', async (req, res) => {
    logger.error('debug error requested', { source: 'POST /api/debug/error' });
    send(res, 500, { error: 'internal error (injected by /api/debug/error)' });
  });
  route('POST', '/api/debug/slow', 'debug_slow', async (req, res, p, url) => {
    const raw = url.searchParams.get('ms') ?? '1000';
    const ms = Number(raw);
    if (!Number.isInteger(ms) || ms < 0) throw new HttpError(400, 'ms must be a non-negative integer');
    const wait = Math.min(ms, 10000);
    await new Promise((r) => setTimeout(r, wait));
    send(res, 200, { sleptMs: wait });
  });

  // --- server ---------------------------------------------------------------------------------
  const server = http.createServer(async (req, res) => {
    const start = process.hrtime.bigint();
    let routeName = 'unmatched';
    let url;
    try {
      url = new URL(req.url, 'http://localhost');
    } catch {
      url = new URL('http://localhost/');
    }
    res.on('finish', () => {
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      metrics.recordHttpRequest(req.method, routeName, res.statusCode, ms);
      const fields = { method: req.method, path: url.pathname.slice(0, 200), route: routeName, status: res.statusCode, durationMs: Math.round(ms * 10) / 10 };
      if (res.statusCode >= 500) logger.warn('request', fields); else logger.info('request', fields);
    });
    try {
      let matched = false;
      let allowed = [];
      for (const r of routes) {
        const m = r.re.exec(url.pathname);
        if (!m) continue;
        if (r.method !== req.method) { allowed.push(r.method); continue; }
        matched = true;
        routeName = r.name;
        const params = Object.fromEntries(r.keys.map((k, i) => [k, decodeURIComponent(m[i + 1])]));
        await r.handler(req, res, params, url);
        break;
      }
      if (!matched) {
        if (allowed.length) throw Object.assign(new HttpError(405, 'method not allowed'), { allow: allowed.join(', ') });
        throw new HttpError(404, 'not found');
      }
    } catch (err) {
      if (res.headersSent) { res.destroy(); return; }
      if (err instanceof HttpError) {
        send(res, err.status, { error: err.message }, err.allow ? { allow: err.allow } : {});
      } else if (err instanceof URIError) {
        send(res, 400, { error: 'malformed URL' });
      } else {
        logger.error('request failed', { method: req.method, path: url.pathname.slice(0, 200), error: err.message });
        send(res, 500, { error: 'internal error' });
      }
    }
  });
  server.keepAliveTimeout = 5000;

  server.on('error', (err) => {
    logger.error('server error', { error: err.message, code: err.code });
    process.exit(1);
  });

  let stopping = false;
  async function shutdown(signal) {
    if (stopping) return;
    stopping = true;
    logger.info('shutting down', { signal });
    const force = setTimeout(() => server.closeAllConnections(), 3000);
    force.unref();
    await new Promise((resolve) => {
      server.close(() => resolve());
      server.closeIdleConnections();
    });
    clearTimeout(force);
    await Promise.allSettled([
      withTimeout(pool.end(), 2000, 'pool end'),
      withTimeout(redis.quit().catch(() => redis.disconnect()), 1000, 'redis quit').catch(() => redis.disconnect()),
    ]);
    logger.info('shutdown complete', { signal });
    logger.close();
    process.exit(0);
  }
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('unhandledRejection', (err) => logger.error('unhandled rejection', { error: String(err?.message ?? err) }));

  server.listen(cfg.port, cfg.host, () => {
    logger.info('server started', {
      version: build.version,
      maxMigration: build.maxMigration,
      flags: build.flags,
      host: cfg.host,
      port: server.address().port,
      database: redactUrl(cfg.databaseUrl),
      redis: redactUrl(cfg.redisUrl),
      logFile: cfg.logFile,
      pid: process.pid,
    });
  });
}

main().catch((err) => {
  process.stderr.write(`llmchat-app failed to start: ${err.stack || err.message}\n`);
  process.exit(1);
});
