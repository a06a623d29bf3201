// Run-time configuration of the stand-in LLMChat backend.
//
// Behaviour that belongs to a *release* (its version, which migrations it ships, whether its health
// check is broken) comes from build-info.json, which app/build-images.sh writes into the image. Only
// when that file is absent (running from the source tree) do we fall back to APP_VERSION from the env.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const APP_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const MIGRATIONS_DIR = path.join(APP_ROOT, 'migrations');

function readBuildInfo() {
  const file = path.join(APP_ROOT, 'build-info.json');
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (err) {
    if (err.code === 'ENOENT') return null;
    throw new Error(`cannot read ${file}: ${err.message}`);
  }
}

function maxMigrationOnDisk() {
  try {
    const nums = fs.readdirSync(MIGRATIONS_DIR)
      .map((f) => /^(\d{3})_[a-z0-9_]+\.up\.sql$/.exec(f))
      .filter(Boolean)
      .map((m) => Number(m[1]));
    return nums.length ? Math.max(...nums) : 0;
  } catch {
    return 0;
  }
}

const buildInfo = readBuildInfo();

export const build = Object.freeze({
  fromImage: buildInfo !== null,
  version: buildInfo?.version ?? process.env.APP_VERSION ?? 'dev',
  maxMigration: buildInfo?.maxMigration ?? maxMigrationOnDisk(),
  flags: Object.freeze({ ...(buildInfo?.flags ?? {}) }),
  contentHash: buildInfo?.contentHash ?? null,
});

function int(name, def, min, max) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!Number.isInteger(n) || n < min || n > max) {
    throw new Error(`${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return n;
}

function ratio(name, def) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return def;
  const n = Number(raw);
  if (!(n > 0 && n <= 1)) throw new Error(`${name} must be a number in (0, 1], got ${JSON.stringify(raw)}`);
  return n;
}

export function loadConfig() {
  return {
    port: int('PORT', 3001, 0, 65535),
    host: process.env.HOST || '127.0.0.1',
    databaseUrl: process.env.DATABASE_URL || 'postgres://llmchat@127.0.0.1:5432/llmchat',
    // the password never lives in DATABASE_URL; pg reads PGPASSWORD itself, DATABASE_PASSWORD is an alias
    databasePassword: process.env.PGPASSWORD ?? process.env.DATABASE_PASSWORD ?? undefined,
    redisUrl: process.env.REDIS_URL || 'redis://127.0.0.1:6379/0',
    logFile: process.env.LOG_FILE || '/var/log/llmchat/app.log',
    uploadsDir: process.env.UPLOADS_DIR || '/var/uploads/llmchat',
    diskCheckPath: process.env.DISK_CHECK_PATH || '/',
    checkTimeoutMs: int('HEALTH_CHECK_TIMEOUT_MS', 1000, 50, 30000),
    memoryThreshold: ratio('HEALTH_MEMORY_THRESHOLD', 0.9),
    diskThreshold: ratio('HEALTH_DISK_THRESHOLD', 0.9),
    activeSessionWindowSec: int('ACTIVE_SESSION_WINDOW_SEC', 1800, 1, 86400 * 30),
    logToStdout: process.env.LOG_STDOUT !== '0',
  };
}
