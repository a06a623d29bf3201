// PostgreSQL pool. The password comes from PGPASSWORD (or its alias DATABASE_PASSWORD), never the URL.
import pg from 'pg';
import { redactUrl } from './util.js';

export function createPool(cfg, logger) {
  if (cfg.databasePassword !== undefined && process.env.PGPASSWORD === undefined) {
    process.env.PGPASSWORD = cfg.databasePassword;
  }
  const pool = new pg.Pool({
    connectionString: cfg.databaseUrl,
    max: 10,
    idleTimeoutMillis: 30000,
    connectionTimeoutMillis: 2000,
    query_timeout: 10000,
    application_name: 'llmchat-app',
  });
  // An idle client losing its connection (postgres restarted) must not crash the process.
  pool.on('error', (err) => logger.warn('database idle client error', { error: err.message }));
  return pool;
}
