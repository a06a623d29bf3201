#!/usr/bin/env node
// Schema migrations of the stand-in LLMChat backend.
//
//   node migrate.js up              apply every pending migration this image contains, in order
//   node migrate.js down            revert exactly the latest applied migration
//   node migrate.js down --to N     revert applied migrations newer than N, newest first (retry-safe:
//                                   a second run with the same N is a no-op)
//   node migrate.js status          show applied / pending migrations
//   add --json for one machine-readable JSON object on stdout (the last line)
//
// Env: DATABASE_URL (no password in it), PGPASSWORD or DATABASE_PASSWORD,
//      MIGRATE_LOCK_TIMEOUT_MS (default 60000).
// Each migration runs in its own transaction together with its schema_migrations row. A session-level
// advisory lock serialises concurrent runners; the loser waits, then finds nothing left to do.
// The down SQL of each applied migration is stored in schema_migrations, so an image of an older
// release can still revert a migration that only a newer image contains.
// Exit codes: 0 success, 1 failure, 2 usage error.
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import pg from 'pg';
import { MIGRATIONS_DIR } from './src/config.js';

const LOCK_KEY = 7283652001; // arbitrary, constant for all llmchat-app releases
const FILE_RE = /^(\d{3})_([a-z0-9_]+)\.(up|down)\.sql$/;

function usage(msg) {
  if (msg) process.stderr.write(`migrate: ${msg}\n`);
  process.stderr.write('usage: node migrate.js up|down [--to N]|status [--json]\n');
  process.exit(2);
}

export function loadMigrations(dir = MIGRATIONS_DIR) {
  const byVersion = new Map();
  for (const f of fs.readdirSync(dir)) {
    const m = FILE_RE.exec(f);
    if (!m) continue;
    const version = Number(m[1]);
    const entry = byVersion.get(version) ?? { version, name: m[2] };
    if (entry.name !== m[2]) throw new Error(`migration ${m[1]} has two names: ${entry.name}, ${m[2]}`);
    entry[m[3]] = fs.readFileSync(path.join(dir, f), 'utf8');
    byVersion.set(version, entry);
  }
  const list = [...byVersion.values()].sort((a, b) => a.version - b.version);
  for (const m of list) {
    if (m.up === undefined || m.down === undefined) {
      throw new Error(`migration ${label(m)} needs both .up.sql and .down.sql`);
    }
    m.checksum = crypto.createHash('sha256').update(m.up).digest('hex');
  }
  return list;
}

function label(m) {
  return `${String(m.version).padStart(3, '0')}_${m.name}`;
}

async function tableExists(client) {
  const r = await client.query("SELECT to_regclass('public.schema_migrations') IS NOT NULL AS ok");
  return r.rows[0].ok;
}

async function ensureTable(client) {
  await client.query(`CREATE TABLE IF NOT EXISTS schema_migrations (
    version    integer PRIMARY KEY,
    name       text NOT NULL,
    applied_at timestamptz NOT NULL DEFAULT now(),
    checksum   text,
    down_sql   text
  )`);
}

async function applied(client) {
  if (!(await tableExists(client))) return [];
  const r = await client.query('SELECT version, name, applied_at, checksum, down_sql FROM schema_migrations ORDER BY version');
  return r.rows;
}

async function lock(client, out) {
  const timeout = Number(process.env.MIGRATE_LOCK_TIMEOUT_MS || 60000);
  const deadline = Date.now() + timeout;
  let announced = false;
  for (;;) {
    const r = await client.query('SELECT pg_try_advisory_lock($1) AS ok', [LOCK_KEY]);
    if (r.rows[0].ok) return;
    if (!announced) { out('waiting for the migration lock held by another runner'); announced = true; }
    if (Date.now() > deadline) throw new Error(`could not get the migration lock within ${timeout} ms`);
    await new Promise((res) => setTimeout(res, 200));
  }
}

async function inTransaction(client, fn) {
  await client.query('BEGIN');
  try {
    await fn();
    await client.query('COMMIT');
  } catch (err) {
    await client.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

async function cmdUp(client, migrations, out) {
  await lock(client, out);
  await ensureTable(client);
  const done = new Map((await applied(client)).map((r) => [r.version, r]));
  const result = { applied: [], skipped: [], warnings: [] };
  for (const m of migrations) {
    const prev = done.get(m.version);
    if (prev) {
      if (prev.checksum && prev.checksum !== m.checksum) {
        result.warnings.push(`${label(m)} was applied with different content (checksum mismatch)`);
      }
      result.skipped.push(label(m));
      continue;
    }
    const t0 = Date.now();
    await inTransaction(client, async () => {
      await client.query(m.up);
      await client.query(
        'INSERT INTO schema_migrations (version, name, checksum, down_sql) VALUES ($1, $2, $3, $4)',
        [m.version, m.name, m.checksum, m.down],
      );
    });
    out(`applied ${label(m)} (${Date.now() - t0} ms)`);
    result.applied.push(label(m));
  }
  const known = new Set(migrations.map((m) => m.version));
  for (const r of done.values()) {
    if (!known.has(r.version)) result.warnings.push(`${label(r)} is applied but not contained in this image`);
  }
  for (const w of result.warnings) out(`warning: ${w}`);
  if (result.applied.length === 0) out('nothing to apply: database is up to date for this image');
  return result;
}

async function cmdDown(client, migrations, out, to) {
  await lock(client, out);
  const rows = await applied(client);
  const inImage = new Map(migrations.map((m) => [m.version, m]));
  const targets = to === undefined
    ? rows.slice(-1)
    : rows.filter((r) => r.version > to).reverse();
  const result = { reverted: [] };
  if (targets.length === 0) {
    out(to === undefined ? 'nothing to revert: no migration is applied' : `nothing to revert: no applied migration is newer than ${to}`);
    return result;
  }
  for (const r of targets) {
    const downSql = inImage.get(r.version)?.down ?? r.down_sql;
    if (!downSql) throw new Error(`no down migration known for ${label(r)} (not in this image, none stored)`);
    const t0 = Date.now();
    await inTransaction(client, async () => {
      await client.query(downSql);
      await client.query('DELETE FROM schema_migrations WHERE version = $1', [r.version]);
    });
    out(`reverted ${label(r)} (${Date.now() - t0} ms)`);
    result.reverted.push(label(r));
  }
  return result;
}

async function cmdStatus(client, migrations, out) {
  const rows = await applied(client);
  const done = new Map(rows.map((r) => [r.version, r]));
  const list = migrations.map((m) => ({
    version: m.version,
    name: m.name,
    state: done.has(m.version) ? 'applied' : 'pending',
    appliedAt: done.get(m.version)?.applied_at ?? null,
  }));
  const known = new Set(migrations.map((m) => m.version));
  for (const r of rows) {
    if (!known.has(r.version)) list.push({ version: r.version, name: r.name, state: 'applied-not-in-image', appliedAt: r.applied_at });
  }
  list.sort((a, b) => a.version - b.version);
  for (const m of list) {
    out(`${label(m).padEnd(32)} ${m.state.padEnd(20)} ${m.appliedAt ? new Date(m.appliedAt).toISOString() : ''}`);
  }
  const current = rows.length ? rows[rows.length - 1].version : 0;
  const imageMax = migrations.length ? migrations[migrations.length - 1].version : 0;
  out(`current: ${current}, image contains up to: ${imageMax}, pending: ${list.filter((m) => m.state === 'pending').length}`);
  return { current, imageMax, migrations: list };
}

async function main() {
  const args = process.argv.slice(2);
  const json = args.includes('--json');
  const rest = args.filter((a) => a !== '--json');
  const cmd = rest.shift();
  let to;
  if (cmd === 'down' && rest[0] === '--to') {
    rest.shift();
    const v = rest.shift();
    if (!/^\d{1,6}$/.test(v ?? '')) usage('--to needs a migration number');
    to = Number(v);
  }
  if (!['up', 'down', 'status'].includes(cmd) || rest.length) usage(cmd ? `unexpected arguments: ${[cmd, ...rest].join(' ')}` : 'missing command');
  const out = json ? (line) => process.stderr.write(`${line}\n`) : (line) => process.stdout.write(`${line}\n`);

  if (process.env.PGPASSWORD === undefined && process.env.DATABASE_PASSWORD !== undefined) {
    process.env.PGPASSWORD = process.env.DATABASE_PASSWORD;
  }
  const migrations = loadMigrations();
  const client = new pg.Client({
    connectionString: process.env.DATABASE_URL || 'postgres://llmchat@127.0.0.1:5432/llmchat',
    connectionTimeoutMillis: 5000,
    application_name: 'llmchat-migrate',
  });
  await client.connect();
  let result;
  try {
    if (cmd === 'up') result = await cmdUp(client, migrations, out);
    else if (cmd === 'down') result = await cmdDown(client, migrations, out, to);
    else result = await cmdStatus(client, migrations, out);
  } finally {
    await client.end().catch(() => {}); // ends the session, which releases the advisory lock
  }
  if (json) process.stdout.write(`${JSON.stringify({ ok: true, command: cmd, ...result })}\n`);
}

main().catch((err) => {
  process.stderr.write(`migrate: ${err.message}\n`);
  if (process.argv.includes('--json')) process.stdout.write(`${JSON.stringify({ ok: false, error: err.message })}\n`);
  process.exit(1);
});
