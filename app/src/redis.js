// Redis client: fails fast while Redis is unreachable (no offline queue, 1 s command timeout) so a dead
// Redis degrades /health instead of hanging requests. Connection state changes are logged once each,
// not on every reconnect attempt.
import Redis from 'ioredis';
import { redactUrl } from './util.js';

export function createRedis(cfg, logger) {
  const client = new Redis(cfg.redisUrl, {
    lazyConnect: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: cfg.checkTimeoutMs,
    commandTimeout: cfg.checkTimeoutMs,
    retryStrategy: (times) => Math.min(200 * times, 2000),
    reconnectOnError: () => false,
    connectionName: 'llmchat-app',
  });
  let state = 'connecting';
  client.on('ready', () => {
    if (state !== 'ready') logger.info('redis connected', { url: redactUrl(cfg.redisUrl) });
    state = 'ready';
  });
  client.on('error', (err) => {
    if (state === 'ready' || state === 'connecting') {
      logger.error('redis connection problem', { url: redactUrl(cfg.redisUrl), error: err.message });
      state = 'failing';
    }
  });
  client.on('end', () => { state = 'ended'; });
  return client;
}

export function redisReady(client) {
  return client.status === 'ready';
}
