/**
 * Data for bench/backup.ts: a large LLMChat database (kept between runs) and a file tree to back up.
 *
 * Database `llmchat_bench_large` (override: BENCH_DB): the app's own schema (app/migrate.js up), pgbench's
 * tables (`pgbench -i -s BENCH_PGBENCH_SCALE`, default 20) and `chat_sessions` / `messages` filled with
 * BENCH_MESSAGES (default 1,000,000) messages of mixed compressibility: prose from a word list, JSON tool calls
 * with hex ids, base64 blobs. It is reused while it carries our seed marker and is at least 500 MB;
 * BENCH_RESEED=1 drops and seeds it again. The marker is written last, so an interrupted seed is redone.
 *
 * File tree (fresh per run, under a temp dir): an application dir of a few thousand small source files plus a
 * node_modules dir (which both the guide and our archive leave out), a config dir, and ~150 MB of uploads —
 * incompressible "images"/"pdfs" (random bytes) and text (logs, CSV, JSON, Markdown).
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import pg from 'pg';
import { PG, ROOT } from '../test/support/services.js';

export const LARGE_DB = process.env.BENCH_DB ?? 'llmchat_bench_large';
export const MIN_DB_BYTES = 500 * 1024 * 1024;
const SCALE = Number(process.env.BENCH_PGBENCH_SCALE ?? 20);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 1_000_000);
const SESSIONS = 50_000;
/** Changes when the seed recipe changes, so an old database is not mistaken for this one. */
const SEED_MARKER = `llmchat-ops bench seed v1 scale=${SCALE} messages=${MESSAGES}`;

/** Environment for libpq programs (pg_dump, pgbench...) run by the benchmark itself. */
export function libpqEnv(): NodeJS.ProcessEnv {
  return { ...process.env, PGHOST: PG.host, PGPORT: String(PG.port), PGUSER: PG.user, PGPASSWORD: PG.password };
}

export async function withDb<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...PG, database });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end().catch(() => {});
  }
}

export async function databaseSize(name: string): Promise<number> {
  return withDb('postgres', async (c) => Number((await c.query<{ n: string }>('SELECT pg_database_size($1) AS n', [name])).rows[0]!.n));
}

/** Runs a program to completion (argument array, no shell); rejects with its stderr tail on a non-zero exit. */
export function run(file: string, args: string[], opts: { env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { env: opts.env ?? process.env, cwd: opts.cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
    child.on('error', reject);
    child.on('close', (code, sig) => (code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')} exited ${code ?? sig}: ${stderr.trim()}`))));
  });
}

const WORDS = (
  'the a of to and in is that for it with as was on be at by this have from or one had not but what all were when we there can an your which their ' +
  'said if do will each about how up out them then she many some so these would other into has more her two like him see time could no make than ' +
  'first been its who now people my made over did down only way find use may water long little very after words called just where most know ' +
  'deploy database migration rollback container redis postgres latency token model prompt answer assistant session upload backup restore ' +
  'schedule workflow activity retry timeout heartbeat worker queue config secret vacuum index query transaction snapshot replica cluster ' +
  '你好 谢谢 请问 数据库 备份 恢复 部署 回滚 日志 监控 告警 会话 消息 模型'
).split(' ');

export interface SeedResult {
  name: string;
  bytes: number;
  /** null when an earlier seed was reused. */
  seededMs: number | null;
}

/** The large database: reused when it carries our marker and is big enough, else (re)seeded. */
export async function ensureLargeDatabase(log: (line: string) => void): Promise<SeedResult> {
  const found = await withDb('postgres', async (c) => {
    const r = await c.query<{ comment: string | null; n: string }>(
      `SELECT shobj_description(oid, 'pg_database') AS comment, pg_database_size(datname) AS n FROM pg_database WHERE datname = $1`,
      [LARGE_DB],
    );
    return r.rows[0];
  });
  if (found && found.comment === SEED_MARKER && Number(found.n) >= MIN_DB_BYTES && process.env.BENCH_RESEED !== '1') {
    return { name: LARGE_DB, bytes: Number(found.n), seededMs: null };
  }
  const t0 = performance.now();
  log(`seeding ${LARGE_DB}: pgbench -i -s ${SCALE} + ${MESSAGES.toLocaleString('en')} messages (${found ? 'replacing the existing one' : 'new'})…`);
  const ident = pg.escapeIdentifier(LARGE_DB);
  await withDb('postgres', async (c) => {
    // Not WITH (FORCE): for a non-superuser that fails while an autovacuum worker is in the database.
    await c.query(`DROP DATABASE IF EXISTS ${ident}`);
    await c.query(`CREATE DATABASE ${ident}`);
  });
  await run('node', ['app/migrate.js', 'up'], {
    cwd: ROOT,
    env: { ...process.env, DATABASE_URL: `postgres://${PG.user}@${PG.host}:${PG.port}/${LARGE_DB}`, PGPASSWORD: PG.password },
  });
  const pgbench = existsSync('/usr/lib/postgresql/15/bin/pgbench') ? '/usr/lib/postgresql/15/bin/pgbench' : 'pgbench';
  await run(pgbench, ['-i', '-q', '-s', String(SCALE), LARGE_DB], { env: libpqEnv() });
  log(`  pgbench tables done (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  await withDb(LARGE_DB, async (c) => {
    await c.query(
      `INSERT INTO chat_sessions (user_id, agent_id, title, created_at, updated_at)
       SELECT 'user-' || (g % 5000), CASE WHEN g % 3 = 0 THEN 'claude' ELSE 'default' END,
              'session ' || g || ' about ' || (ARRAY['billing', 'deploys', 'postgres', 'the weather', 'a poem', '数据库'])[1 + g % 6],
              now() - make_interval(mins => g), now() - make_interval(mins => g / 2)
       FROM generate_series(1, $1::int) g`,
      [SESSIONS],
    );
    // Mixed compressibility: half prose (random words), a quarter JSON tool calls with hex ids, a quarter base64.
    await c.query(
      `WITH s AS (SELECT id, row_number() OVER (ORDER BY created_at) AS n FROM chat_sessions)
       INSERT INTO messages (session_id, role, content, token_count, created_at)
       SELECT s.id,
              CASE WHEN g % 2 = 0 THEN 'user' WHEN g % 50 = 1 THEN 'system' ELSE 'assistant' END,
              CASE
                WHEN g % 4 IN (0, 1) THEN
                  array_to_string(ARRAY(SELECT ($3::text[])[1 + floor(random() * array_length($3::text[], 1))::int]
                                        FROM generate_series(1, 8 + ((g::bigint * 7919) % 70)::int)), ' ')
                WHEN g % 4 = 2 THEN
                  '{"tool":"search","call_id":"' || md5(g::text) || '","args":{"query":"' || md5(random()::text) ||
                  '","top_k":' || (g % 20) || '},"result_ids":["' || md5((g * 3)::text) || '","' || md5((g * 5)::text) || '"]}'
                ELSE
                  'attachment:' || encode(decode(md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text), 'hex'), 'base64')
              END,
              10 + (g * 31) % 900,
              now() - make_interval(secs => ($2::int - g))
       FROM generate_series(1, $2::int) g JOIN s ON s.n = 1 + g % $1::int`,
      [SESSIONS, MESSAGES, WORDS],
    );
  });
  log(`  messages done (${((performance.now() - t0) / 1000).toFixed(1)} s)`);
  // Hint bits, visibility map and statistics set now, so the first timed dump does not pay for them.
  await withDb(LARGE_DB, (c) => c.query('VACUUM (FREEZE, ANALYZE)'));
  await withDb('postgres', (c) => c.query(`COMMENT ON DATABASE ${ident} IS ${pg.escapeLiteral(SEED_MARKER)}`));
  const bytes = await databaseSize(LARGE_DB);
  if (bytes < MIN_DB_BYTES) throw new Error(`${LARGE_DB} is only ${(bytes / 2 ** 20).toFixed(0)} MB; raise BENCH_PGBENCH_SCALE or BENCH_MESSAGES`);
  return { name: LARGE_DB, bytes, seededMs: performance.now() - t0 };
}

// ---------------------------------------------------------------------------------------------- file tree

/** Deterministic xorshift32, so the text files are the same on every run. */
function prng(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

function text(rand: () => number, bytes: number, line: (rand: () => number, i: number) => string): string {
  const parts: string[] = [];
  let n = 0;
  for (let i = 0; n < bytes; i++) {
    const l = line(rand, i) + '\n';
    parts.push(l);
    n += Buffer.byteLength(l);
  }
  return parts.join('');
}

const pick = <T>(rand: () => number, xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)] as T;
const words = (rand: () => number, n: number) => Array.from({ length: n }, () => pick(rand, WORDS)).join(' ');
const hex = (rand: () => number, n: number) => Array.from({ length: n }, () => Math.floor(rand() * 16).toString(16)).join('');

function sourceFile(rand: () => number, i: number): string {
  const fns = 2 + Math.floor(rand() * 10);
  let s = `// ${words(rand, 12)}\nimport { ${pick(rand, ['query', 'log', 'retry', 'send'])} } from '../lib/util${i % 40}.js';\n\n`;
  for (let f = 0; f < fns; f++) {
    s += `/** ${words(rand, 6 + Math.floor(rand() * 20))} */\nexport async function handler${i}_${f}(req, res) {\n`;
    for (let k = 0; k < 3 + Math.floor(rand() * 8); k++) s += `  const v${k} = await query('${words(rand, 3)}', [req.params.id, ${Math.floor(rand() * 1000)}]);\n`;
    s += `  if (!v0) return res.status(404).json({ error: '${words(rand, 4)}' });\n  return res.json(v0);\n}\n\n`;
  }
  return s;
}

export interface FileTree {
  app: string;
  config: string;
  uploads: string;
  /** Bytes and files in each (application: without node_modules, and node_modules on its own). */
  sizes: { app: number; appFiles: number; nodeModules: number; config: number; uploads: number; uploadFiles: number };
}

/** Builds the tree at `app` and `<logs>/{config,uploads}` (the layout testConfig expects). */
export async function buildFileTree(app: string, logs: string): Promise<FileTree> {
  const rand = prng(20240601);
  const config = path.join(logs, 'config');
  const uploads = path.join(logs, 'uploads');
  const sizes = { app: 0, appFiles: 0, nodeModules: 0, config: 0, uploads: 0, uploadFiles: 0 };
  const put = async (file: string, data: string | Buffer, what: keyof typeof sizes) => {
    await mkdir(path.dirname(file), { recursive: true });
    await writeFile(file, data);
    sizes[what] += Buffer.byteLength(data);
  };

  // Application: ~3,000 source files in nested dirs, plus node_modules (~2,000 files) that must stay out.
  await put(path.join(app, 'package.json'), JSON.stringify({ name: 'llmchat-backend', version: '1.4.2', type: 'module' }, null, 2) + '\n', 'app');
  for (let i = 0; i < 3000; i++) {
    const dir = path.join(app, 'src', `mod${i % 30}`, `part${Math.floor(i / 30) % 10}`);
    await put(path.join(dir, `file${i}.${pick(rand, ['js', 'js', 'ts', 'json', 'sql'])}`), sourceFile(rand, i), 'app');
    sizes.appFiles++;
  }
  for (let i = 0; i < 2000; i++) {
    const dir = path.join(app, 'node_modules', `pkg${i % 200}`, i % 2 ? 'lib' : 'dist');
    await put(path.join(dir, `index${i}.js`), sourceFile(rand, i) + (i % 5 === 0 ? randomBytes(8192).toString('base64') : ''), 'nodeModules');
  }

  // Config: a handful of env/yaml/json files.
  for (let i = 0; i < 12; i++) {
    const body = text(rand, 2000 + Math.floor(rand() * 6000), (r, k) => `LLMCHAT_SETTING_${i}_${k}=${pick(r, ['true', 'false', hex(r, 32), words(r, 3)])}`);
    await put(path.join(config, `llmchat-${i}.${pick(rand, ['env', 'yaml', 'json'])}`), body, 'config');
  }

  // Uploads: ~150 MB — ~90 MB of incompressible media (random bytes), ~60 MB of text of several kinds.
  for (let i = 0; i < 60; i++) {
    const bytes = Math.floor((0.5 + rand() * 2) * 2 ** 20);
    await put(path.join(uploads, 'images', `u${i % 20}`, `photo-${i}.${pick(rand, ['jpg', 'png', 'webp', 'pdf'])}`), randomBytes(bytes), 'uploads');
    sizes.uploadFiles++;
  }
  const kinds = [
    (r: () => number, k: number) => `2024-06-${String(1 + (k % 28)).padStart(2, '0')}T12:${String(k % 60).padStart(2, '0')}:00Z INFO request id=${hex(r, 16)} path=/api/chat/${Math.floor(r() * 1e6)} ms=${Math.floor(r() * 900)} ${words(r, 4)}`,
    (r: () => number, k: number) => `${k},${hex(r, 8)},user-${Math.floor(r() * 5000)},${(r() * 1000).toFixed(2)},"${words(r, 5)}"`,
    (r: () => number, k: number) => JSON.stringify({ id: k, session: hex(r, 32), role: pick(r, ['user', 'assistant']), content: words(r, 10 + Math.floor(r() * 40)) }),
    (r: () => number) => words(r, 8 + Math.floor(r() * 20)),
  ];
  for (let i = 0; i < 40; i++) {
    const body = text(rand, Math.floor((1 + rand()) * 2 ** 20), kinds[i % kinds.length]!);
    await put(path.join(uploads, 'documents', `d${i % 8}`, `doc-${i}.${['log', 'csv', 'jsonl', 'md'][i % 4]}`), body, 'uploads');
    sizes.uploadFiles++;
  }
  return { app, config, uploads, sizes };
}
