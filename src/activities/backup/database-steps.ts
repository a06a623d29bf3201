/**
 * The PostgreSQL steps of backup and restore that the activities in backup-postgres.ts put together: libpq
 * settings, verified unpacking of an artifact, pg_restore, marked scratch databases, exact row counts, and the
 * swap of a restored database into place.
 */
import { createHash } from 'node:crypto';
import { mkdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { resolveSecret, type EnvironmentConfig } from '../../common/config/index.js';
import { type Artifact, type BackupManifest } from './manifest.js';
import {
  decompressStage,
  fileSink,
  runPipeline,
  type Stage,
} from './process.js';
import { countRows, dropDatabase as dropDatabaseWith, userTables } from './postgres.js';
import { progress, runningAs, signal } from '../common/activity-support.js';
import { connectPg, MAINTENANCE_DB, withPg } from '../../common/postgres/connect.js';
import { checkArtifact, openArtifact, requireChecksum } from './backup-store.js';

/** Connection settings for libpq programs; the password travels only in the child's environment. */
export function pgEnv(env: EnvironmentConfig): Record<string, string> {
  const password = resolveSecret(env.database.passwordEnv);
  return {
    PGHOST: env.database.host,
    PGPORT: String(env.database.port),
    PGUSER: env.database.user,
    PGCONNECT_TIMEOUT: '10',
    ...(password !== undefined ? { PGPASSWORD: password } : {}),
  };
}

export const connect = (env: EnvironmentConfig, database: string) => connectPg(env, database, { applicationName: `llmchat-ops ${runningAs()}` });
export const withClient = <T>(env: EnvironmentConfig, database: string, fn: (c: pg.Client) => Promise<T>) =>
  withPg(env, database, fn, { applicationName: `llmchat-ops ${runningAs()}` });

export const ident = (name: string) => pg.escapeIdentifier(name);
export function compareCounts(expected: Record<string, number>, actual: Record<string, number>): string[] {
  const problems: string[] = [];
  for (const [table, n] of Object.entries(expected)) {
    if (!(table in actual)) problems.push(`${table}: missing after restore`);
    else if (actual[table] !== n) problems.push(`${table}: ${actual[table]} rows, expected ${n}`);
  }
  for (const table of Object.keys(actual)) if (!(table in expected)) problems.push(`${table}: not in the backup`);
  return problems;
}
/**
 * Decompresses the database artifact into a temp file (pg_restore needs a seekable file for parallel jobs) in ONE
 * read of the artifact, opened once and never through a link: the bytes hashed are exactly the bytes decompressed,
 * so an artifact swapped or rewritten while a restore runs cannot be restored under the checksum of another. The
 * temp file is kept only if the checksum matched. Uncompressed (`none`) artifacts are copied while hashed, for the
 * same reason. zstd writes the decompressed file itself: only the compressed bytes pass through this process.
 */
export async function unpackVerified(env: EnvironmentConfig, m: BackupManifest, a: Artifact, name: string): Promise<string> {
  await mkdir(env.paths.temp, { recursive: true });
  const out = path.join(env.paths.temp, name);
  await rm(out, { force: true });
  const fh = await openArtifact(env, m, a);
  const hash = createHash('sha256');
  let bytes = 0;
  const beat = progress('checksum and decompress database');
  const tap = new Transform({
    transform(chunk: Buffer, _enc: BufferEncoding, done: (err: Error | null, data?: Buffer) => void) {
      hash.update(chunk);
      bytes += chunk.length;
      beat({ bytes, of: a.bytes });
      done(null, chunk);
    },
  });
  try {
    const read = fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 1 << 20 });
    const source = read.pipe(tap);
    read.on('error', (err: Error) => tap.destroy(err));
    const program = a.compression.program;
    if (program === 'zstd') await runPipeline({ stages: [{ file: 'zstd', args: ['-d', '-q', '-f', '-o', out] }], source, signal: signal() });
    else if (program === 'gzip') await runPipeline({ stages: [decompressStage(program) as Stage], source, sink: fileSink(out), signal: signal() });
    else await pipeline(source, fileSink(out), { signal: signal() });
  } catch (err) {
    await rm(out, { force: true });
    await fh.close().catch(() => {});
    // A damaged artifact usually fails to decompress before its checksum is complete: say which it is.
    if (!signal()?.aborted) await checkArtifact(env, m, 'database');
    throw err;
  }
  await fh.close();
  try {
    requireChecksum(m, a, { bytes, sha256: hash.digest('hex') });
  } catch (err) {
    await rm(out, { force: true });
    throw err;
  }
  return out;
}

/** pg_restore of a (decompressed) custom-format archive into `database`, in parallel when jobs > 1. */
export async function pgRestore(env: EnvironmentConfig, jobs: number, archive: string, database: string): Promise<void> {
  await runPipeline({
    stages: [{ file: 'pg_restore', args: ['--exit-on-error', '--no-owner', '--no-acl', `--jobs=${jobs}`, `--dbname=${database}`, archive], env: pgEnv(env) }],
    signal: signal(),
  });
}


export async function databaseExists(env: EnvironmentConfig, name: string): Promise<{ exists: boolean; comment: string | null }> {
  return withClient(env, MAINTENANCE_DB, async (c) => {
    const r = await c.query<{ comment: string | null }>(`SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`, [name]);
    return { exists: r.rowCount === 1, comment: r.rows[0]?.comment ?? null };
  });
}

export async function createMarkedDatabase(env: EnvironmentConfig, name: string, marker: string): Promise<void> {
  await withClient(env, MAINTENANCE_DB, async (c) => {
    await c.query(`CREATE DATABASE ${ident(name)}`);
    await c.query(`COMMENT ON DATABASE ${ident(name)} IS ${pg.escapeLiteral(marker)}`);
  });
}

export async function dropDatabase(env: EnvironmentConfig, name: string): Promise<void> {
  await withClient(env, MAINTENANCE_DB, (c) => dropDatabaseWith(c, name));
}

/** Exact row counts of every user table, counted over `jobs` connections at once. */
export async function countDatabase(env: EnvironmentConfig, name: string, jobs: number): Promise<Record<string, number>> {
  const beat = progress('count rows');
  const clients: pg.Client[] = [];
  try {
    clients.push(await connect(env, name));
    const tables = await userTables(clients[0] as pg.Client);
    while (clients.length < Math.min(jobs, tables.length)) clients.push(await connect(env, name));
    return await countRows(clients, tables, (done) => beat({ tables: done, of: tables.length }));
  } finally {
    await Promise.all(clients.map((c) => c.end().catch(() => {})));
  }
}

/**
 * Puts the restored `staging` database under the live name. New sessions are kept out of the live database first
 * (committed on its own, so it takes effect) and our role's sessions on it — the app's — are ended; then both
 * renames and the reopening run in ONE transaction: a dropped connection, a terminated session or a refused rename
 * rolls all of it back, so the live name always holds a complete database — the old one or the restored one.
 * On failure the old database is reopened on a fresh connection and the error says exactly which name holds what.
 */
export async function swapIn(
  env: EnvironmentConfig,
  n: { liveName: string; staging: string; previous: string; liveExists: boolean; restoredMarker: string },
): Promise<void> {
  const { liveName, staging, previous } = n;
  let closed = false;
  try {
    await withClient(env, MAINTENANCE_DB, async (c) => {
      if (n.liveExists) {
        await c.query(`ALTER DATABASE ${ident(liveName)} WITH ALLOW_CONNECTIONS false`);
        closed = true;
        await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()`, [liveName]);
      }
      await c.query('BEGIN');
      try {
        if (n.liveExists) await c.query(`ALTER DATABASE ${ident(liveName)} RENAME TO ${ident(previous)}`);
        await c.query(`ALTER DATABASE ${ident(staging)} RENAME TO ${ident(liveName)}`);
        await c.query(`ALTER DATABASE ${ident(liveName)} WITH ALLOW_CONNECTIONS true`);
        signal()?.throwIfAborted(); // cancelled, or the data lock was lost: do not commit
        await c.query('COMMIT');
      } catch (err) {
        await c.query('ROLLBACK').catch(() => {});
        throw err;
      }
    });
  } catch (err) {
    // Whatever failed (possibly the connection itself, possibly during COMMIT), look at the server afresh.
    let state: string;
    try {
      state = await withClient(env, MAINTENANCE_DB, async (c) => {
        const { rows } = await c.query<{ datname: string; comment: string | null; datallowconn: boolean }>(
          `SELECT datname, shobj_description(oid, 'pg_database') AS comment, datallowconn FROM pg_database WHERE datname = ANY($1)`,
          [[liveName, staging, previous]],
        );
        const db = (name: string) => rows.find((r) => r.datname === name);
        const live = db(liveName);
        if (live?.comment === n.restoredMarker) return 'swapped';
        if (live && closed) await c.query(`ALTER DATABASE ${ident(liveName)} WITH ALLOW_CONNECTIONS true`);
        const others = await c.query<{ pid: number; usename: string; application_name: string }>(
          `SELECT pid, usename, application_name FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`,
          [liveName],
        );
        const who = others.rows.map((r) => `${r.usename} ${r.application_name} (pid ${r.pid})`).join(', ');
        return (
          `${live ? `the previous data is still live in ${liveName} (reopened)` : `no database is named ${liveName}`}` +
          `${db(staging) ? `; the restored data waits in ${staging}` : ''}${db(previous) ? `; ${previous} holds the data moved aside` : ''}` +
          `${who ? `; still connected to ${liveName}: ${who}` : ''}`
        );
      });
    } catch (inspect) {
      state = `the state could not be read (${(inspect as Error).message}): ${liveName} holds the previous data${closed ? ' and may refuse connections until the restore is retried' : ''}, the restored data is in ${staging}`;
    }
    if (state === 'swapped') return; // the COMMIT went through before the connection failed
    throw new Error(`cannot swap in the restored database: ${(err as Error).message}; ${state}`, { cause: err });
  }
}
