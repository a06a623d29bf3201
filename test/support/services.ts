/**
 * Test support: the real services the suite runs against (started by scripts/services.sh before the tests),
 * plus per-test resources — a scratch database, a private redis-server, the stand-in app as a process.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import pg from 'pg';
import { dropDatabase } from '../../src/activities/backup/postgres.js';

/** The repository root, found from this file whether it runs from test/ or dist/test/. */
export const ROOT = (() => {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json')) || !existsSync(path.join(dir, 'app'))) {
    const up = path.dirname(dir);
    if (up === dir) throw new Error('cannot find the repository root');
    dir = up;
  }
  return dir;
})();

export const PG = {
  host: process.env.PGHOST ?? '127.0.0.1',
  port: Number(process.env.PGPORT ?? 5432),
  user: 'llmchat',
  password: process.env.LLMCHAT_DB_PASSWORD ?? 'llmchat-demo',
};

const tempDirs: string[] = [];
process.once('exit', () => {
  // Everything a test file made under the system temp dir goes with it (LLMCHAT_KEEP_TEST_DIRS=1 keeps it).
  if (process.env.LLMCHAT_KEEP_TEST_DIRS === '1') return;
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true, maxRetries: 3 });
});

/** A fresh directory under the system temp dir, removed when the test process exits. */
export function tempDir(prefix: string): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), `llmchat-ops-test-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

/**
 * A port for a server another process will start (a receiver, Prometheus, an app): a random free one below the
 * kernel's ephemeral range (32768-60999 here), where the ports picked for outgoing connections and for `listen(0)`
 * servers come from — a port from that range, free when probed, was now and then taken by someone else's socket
 * before the process it was meant for bound it. Never the same port twice in one test process.
 */
const handedOut = new Set<number>();
export async function freePort(): Promise<number> {
  for (let i = 0; i < 200; i++) {
    const port = 20_000 + Math.floor(Math.random() * 12_000);
    if (handedOut.has(port) || !(await bindable(port))) continue;
    handedOut.add(port);
    return port;
  }
  throw new Error('freePort: no free port found in 20000-31999 after 200 tries');
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.unref();
    srv.once('error', () => resolve(false));
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)));
  });
}

export async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 30_000, intervalMs = 150): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, intervalMs));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export const httpOk = (url: string) => async () => (await fetch(url, { signal: AbortSignal.timeout(2000) })).ok;

/** Drops a database the way the activities do (no FORCE: autovacuum), for test clean-up. */
export const dropDatabaseOf = dropDatabase;

/** A fresh database with the LLMChat schema (the app's own migrations), dropped by `drop()`. */
export async function scratchDatabase(prefix = 'llmchat_test'): Promise<{ name: string; url: string; drop: () => Promise<void> }> {
  const name = `${prefix}_${process.pid}_${Date.now().toString(36)}`;
  const admin = new pg.Client({ ...PG, database: 'llmchat' });
  await admin.connect();
  try {
    await admin.query(`CREATE DATABASE ${name}`);
  } finally {
    await admin.end();
  }
  const url = `postgres://${PG.user}@${PG.host}:${PG.port}/${name}`;
  await execa('node', ['app/migrate.js', 'up'], { cwd: ROOT, env: { DATABASE_URL: url, PGPASSWORD: PG.password } });
  return {
    name,
    url,
    drop: async () => {
      const c = new pg.Client({ ...PG, database: 'llmchat' });
      await c.connect();
      try {
        await dropDatabaseOf(c, name);
      } finally {
        await c.end();
      }
    },
  };
}

/** A private redis-server, so a test can kill Redis without disturbing anyone else. */
export async function privateRedis(): Promise<{ port: number; url: string; stop: () => Promise<void> }> {
  const port = await freePort();
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: 'ignore' });
  await waitFor(`redis on ${port}`, async () => {
    const out = await execa('redis-cli', ['-p', String(port), 'ping'], { reject: false });
    return out.stdout.trim() === 'PONG';
  });
  return { port, url: `redis://127.0.0.1:${port}/0`, stop: () => stopChild(child) };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export interface AppProcess {
  url: string;
  logFile: string;
  stop: () => Promise<void>;
}

/** The stand-in LLMChat backend as a plain process (the same code the images run). */
export async function startAppProcess(opts: { databaseUrl: string; redisUrl: string; logDir: string; version?: string }): Promise<AppProcess> {
  const port = await freePort();
  await mkdir(opts.logDir, { recursive: true });
  const logFile = path.join(opts.logDir, 'app.log');
  const child = spawn('node', ['app/src/server.js'], {
    cwd: ROOT,
    stdio: 'ignore',
    env: {
      ...process.env,
      PORT: String(port),
      HOST: '127.0.0.1',
      DATABASE_URL: opts.databaseUrl,
      PGPASSWORD: PG.password,
      REDIS_URL: opts.redisUrl,
      LOG_FILE: logFile,
      UPLOADS_DIR: path.join(opts.logDir, 'uploads'),
      APP_VERSION: opts.version ?? 'v1',
      LOG_STDOUT: '0',
    },
  });
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`app on ${url}`, httpOk(`${url}/health/db`));
  return { url, logFile, stop: () => stopChild(child) };
}
