/** A seeded LLMChat database and file tree to back up, plus ways to compare them after a restore. */
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import path from 'node:path';
import pg from 'pg';
import { PG, scratchDatabase, tempDir } from './services.js';

export interface Fixture {
  root: string;
  database: { name: string; url: string; drop: () => Promise<void> };
  dirs: { logs: string; app: string; config: string; uploads: string };
}

/** `messages` rows of ~200 bytes each; 200k ≈ 40 MB, enough for a restore to take a moment. */
export async function seedFixture(messages = 5_000): Promise<Fixture> {
  // The worker reads the database password by variable name (passwordEnv), as in production.
  process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
  // …and the manifest signing key (backup.signingKeyEnv); scripts/env.sh exports the same demo value.
  process.env.LLMCHAT_BACKUP_SIGNING_KEY ??= 'llmchat-demo-backup-signing-key';
  const root = tempDir('backup');
  const database = await scratchDatabase('llmchat_bk');
  await query(database.name, async (c) => {
    await c.query(`INSERT INTO chat_sessions (user_id, agent_id, title)
                   SELECT 'user-' || (g % 50), 'default', 'session ' || g FROM generate_series(1, 200) g`);
    await c.query(
      `INSERT INTO messages (session_id, role, content)
       SELECT (SELECT id FROM chat_sessions ORDER BY id OFFSET (g % 200) LIMIT 1),
              CASE WHEN g % 2 = 0 THEN 'user' ELSE 'assistant' END,
              md5(g::text) || repeat(' lorem ipsum', 14) || ' 你好 ' || g
       FROM generate_series(1, $1::int) g`,
      [messages],
    );
  });
  const dirs = { logs: path.join(root, 'logs'), app: path.join(root, 'app'), config: path.join(root, 'logs', 'config'), uploads: path.join(root, 'logs', 'uploads') };
  await mkdir(path.join(dirs.app, 'src'), { recursive: true });
  await mkdir(path.join(dirs.app, 'node_modules', 'left-pad'), { recursive: true });
  await mkdir(path.join(dirs.app, '.git'), { recursive: true });
  await mkdir(dirs.config, { recursive: true });
  await mkdir(path.join(dirs.uploads, 'avatars'), { recursive: true });
  await writeFile(path.join(dirs.app, 'package.json'), '{"name":"llmchat-backend","version":"1.4.2"}\n');
  await writeFile(path.join(dirs.app, 'src', 'server.js'), 'console.log("llmchat");\n');
  await writeFile(path.join(dirs.app, 'node_modules', 'left-pad', 'index.js'), 'module.exports = 1;\n');
  await writeFile(path.join(dirs.app, '.git', 'HEAD'), 'ref: refs/heads/main\n');
  await writeFile(path.join(dirs.config, 'llmchat.env'), 'LLMCHAT_ENVIRONMENT=production\n');
  await writeFile(path.join(dirs.uploads, 'avatars', 'a.png'), Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7) % 256)));
  await writeFile(path.join(dirs.uploads, 'notes 1.txt'), 'a file name with a space\n');
  return { root, database, dirs };
}

export async function query<T>(database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ ...PG, database });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

/** Row count and a content checksum of every table, in a stable order: equal means same data. */
export async function tableDigests(database: string): Promise<Record<string, { rows: number; md5: string }>> {
  return query(database, async (c) => {
    const { rows: tables } = await c.query<{ t: string }>(`SELECT format('%I.%I', schemaname, tablename) AS t FROM pg_tables WHERE schemaname = 'public' ORDER BY 1`);
    const out: Record<string, { rows: number; md5: string }> = {};
    for (const { t } of tables) {
      const r = await c.query<{ n: string; h: string | null }>(`SELECT count(*) AS n, md5(string_agg(x::text, E'\\n' ORDER BY x::text)) AS h FROM ${t} x`);
      out[t] = { rows: Number(r.rows[0]?.n), md5: r.rows[0]?.h ?? '' };
    }
    return out;
  });
}

/** Every file below `dir` (relative path → sha256), skipping the names in `skip` at the top level. */
export async function treeDigest(dir: string, skip: string[] = []): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  const walk = async (rel: string): Promise<void> => {
    for (const entry of await readdir(path.join(dir, rel), { withFileTypes: true })) {
      const child = path.join(rel, entry.name);
      if (rel === '' && skip.includes(entry.name)) continue;
      if (entry.isDirectory()) await walk(child);
      else out[child] = createHash('sha256').update(await readFile(path.join(dir, child))).digest('hex');
    }
  };
  await walk('');
  return out;
}

export async function databaseExists(name: string): Promise<boolean> {
  return query('llmchat', async (c) => (await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [name])).rowCount === 1);
}
