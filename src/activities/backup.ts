/**
 * Backup and restore activities. Everything that touches PostgreSQL, the file system or a program runs here,
 * on the worker, from validated names only: the workflow passes an environment name, a backup id and a kind;
 * paths, connection details and the password come from the config and the worker's environment.
 *
 * Artifacts: database → `pg_dump -Fc -Z0 | zstd` (custom format, so pg_restore can restore in parallel), with the
 * exact row count of every table taken in the dump's own exported snapshot; files → `tar | zstd`. Each is
 * written under a temporary name, fsynced and renamed, its sha256 computed while writing.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { lstat, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import path from 'node:path';
import type { Writable } from 'node:stream';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import pg from 'pg';
import { getEnvironment, resolveSecret, type EnvironmentConfig, type OpsConfig } from '../config.js';
import { parseBackupId, parseKind, parseTarget, type BackupKind, type FileKind } from '../backup/ids.js';
import {
  catalogueEntry,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  PARTIAL_SUFFIX,
  type Artifact,
  type BackupManifest,
  type CatalogueEntry,
  type Verification,
} from '../backup/manifest.js';
import {
  compressThroughFifo,
  compressionSuffix,
  compressStage,
  decompressStage,
  exists,
  fileSink,
  hashFile,
  runPipeline,
  writeArtifact,
  writeFileAtomic,
  type Stage,
} from '../backup/process.js';
import { countRows, dropDatabase as dropDatabaseWith, userTables } from '../backup/postgres.js';
import { applyRetention, type RetentionPlan } from '../backup/retention.js';
import { asFailure } from './failures.js';

const HEARTBEAT_EVERY_MS = 1000;

// ---------------------------------------------------------------------------------------------- plumbing

function permanent(message: string, type: string): ApplicationFailure {
  return ApplicationFailure.nonRetryable(message, type);
}

/** Activity context when there is one (direct calls from benchmarks have none). */
function context(): Context | undefined {
  try {
    return Context.current();
  } catch {
    return undefined;
  }
}

/** The latest progress of each running activity; {@link guarded} heartbeats it every second. */
const latest = new WeakMap<Context, Record<string, unknown>>();

/** Records progress (bytes, tables…) for the next heartbeat of the current activity. */
function progress(phase: string): (details: Record<string, unknown>) => void {
  const ctx = context();
  return (details) => {
    if (ctx) latest.set(ctx, { phase, ...details });
  };
}

/**
 * Heartbeats every second while `fn` runs — also through steps that report no progress (pg_restore, CREATE
 * DATABASE), so a live activity is never mistaken for a dead one, and a dead worker is noticed quickly.
 */
async function heartbeating<T>(fn: () => Promise<T>): Promise<T> {
  const ctx = context();
  if (!ctx || ctx.info.isLocal) return fn();
  const beat = () => ctx.heartbeat(latest.get(ctx) ?? {});
  beat();
  const timer = setInterval(beat, HEARTBEAT_EVERY_MS);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
  }
}

function signal(): AbortSignal | undefined {
  return context()?.cancellationSignal;
}

/** Connection settings for libpq programs; the password travels only in the child's environment. */
function pgEnv(env: EnvironmentConfig): Record<string, string> {
  const password = resolveSecret(env.database.passwordEnv);
  return {
    PGHOST: env.database.host,
    PGPORT: String(env.database.port),
    PGUSER: env.database.user,
    PGCONNECT_TIMEOUT: '10',
    ...(password !== undefined ? { PGPASSWORD: password } : {}),
  };
}

async function connect(env: EnvironmentConfig, database: string): Promise<pg.Client> {
  const client = new pg.Client({
    host: env.database.host,
    port: env.database.port,
    user: env.database.user,
    password: resolveSecret(env.database.passwordEnv),
    database,
    connectionTimeoutMillis: 10_000,
    application_name: 'llmchat-ops',
  });
  await client.connect();
  return client;
}

async function withClient<T>(env: EnvironmentConfig, database: string, fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = await connect(env, database);
  try {
    return await fn(client);
  } finally {
    await client.end().catch(() => {});
  }
}

const ident = (name: string) => pg.escapeIdentifier(name);
function compareCounts(expected: Record<string, number>, actual: Record<string, number>): string[] {
  const problems: string[] = [];
  for (const [table, n] of Object.entries(expected)) {
    if (!(table in actual)) problems.push(`${table}: missing after restore`);
    else if (actual[table] !== n) problems.push(`${table}: ${actual[table]} rows, expected ${n}`);
  }
  for (const table of Object.keys(actual)) if (!(table in expected)) problems.push(`${table}: not in the backup`);
  return problems;
}

/** A short, stable token for names of scratch databases and staging directories of one run. */
function token(seed: string): string {
  return createHash('sha256').update(seed).digest('hex').slice(0, 8);
}

function backupDir(env: EnvironmentConfig, id: string): string {
  return path.join(env.paths.backups, id);
}

function sourceDir(env: EnvironmentConfig, kind: FileKind): string {
  return kind === 'application' ? env.paths.app : env.paths[kind];
}

async function readManifest(env: EnvironmentConfig, environment: string, backupId: string): Promise<BackupManifest> {
  parseBackupId(backupId, environment);
  const file = path.join(backupDir(env, backupId), MANIFEST_FILE);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw permanent(`Unknown backup ${backupId} for ${environment} (no ${file})`, 'BackupNotFound');
    throw err;
  }
  const m = JSON.parse(text) as BackupManifest;
  if (m.format !== MANIFEST_FORMAT || m.createdBy !== 'llmchat-ops' || m.id !== backupId || m.environment !== environment) {
    throw permanent(`${file} is not an llmchat-ops manifest for backup ${backupId}`, 'BackupNotFound');
  }
  return m;
}

async function saveManifest(env: EnvironmentConfig, m: BackupManifest): Promise<void> {
  await writeFileAtomic(path.join(backupDir(env, m.id), MANIFEST_FILE), JSON.stringify(m, null, 2) + '\n');
}

/** Decompresses an artifact into a temp file (pg_restore needs a seekable file for parallel jobs). */
async function unpackToTemp(env: EnvironmentConfig, artifactPath: string, a: Artifact, name: string): Promise<string> {
  if (a.compression.program === 'none') return artifactPath;
  await mkdir(env.paths.temp, { recursive: true });
  const out = path.join(env.paths.temp, name);
  await rm(out, { force: true });
  try {
    if (a.compression.program === 'zstd') {
      // zstd writes the file itself: no copy of the (large) uncompressed dump through this process.
      await runPipeline({ stages: [{ file: 'zstd', args: ['-d', '-q', '-f', '-o', out, artifactPath] }], signal: signal() });
    } else {
      await runPipeline({ stages: [decompressStage(a.compression.program) as Stage], source: createReadStream(artifactPath), sink: fileSink(out), signal: signal() });
    }
  } catch (err) {
    await rm(out, { force: true });
    throw err;
  }
  return out;
}

async function checkArtifact(env: EnvironmentConfig, m: BackupManifest, kind: BackupKind): Promise<{ artifact: Artifact; file: string }> {
  const a = m.artifacts[kind];
  if (!a) throw permanent(`Backup ${m.id} has no ${kind} artifact (it holds: ${Object.keys(m.artifacts).join(', ') || 'nothing'})`, 'KindNotInBackup');
  const file = path.join(backupDir(env, m.id), a.file);
  if (!(await exists(file))) throw permanent(`Backup ${m.id}: ${a.file} is missing`, 'ChecksumMismatch');
  const beat = progress(`checksum ${kind}`);
  const { sha256, bytes } = await hashFile(file, (b) => beat({ bytes: b, of: a.bytes }), signal());
  if (sha256 !== a.sha256 || bytes !== a.bytes) {
    throw permanent(`Backup ${m.id}: ${a.file} does not match its manifest (sha256 ${sha256.slice(0, 12)}…, ${bytes} bytes; expected ${a.sha256.slice(0, 12)}…, ${a.bytes} bytes)`, 'ChecksumMismatch');
  }
  return { artifact: a, file };
}

/** pg_restore of a (decompressed) custom-format archive into `database`, in parallel when jobs > 1. */
async function pgRestore(env: EnvironmentConfig, jobs: number, archive: string, database: string): Promise<void> {
  await runPipeline({
    stages: [{ file: 'pg_restore', args: ['--exit-on-error', '--no-owner', '--no-acl', `--jobs=${jobs}`, `--dbname=${database}`, archive], env: pgEnv(env) }],
    signal: signal(),
  });
}

const MAINTENANCE_DB = 'postgres';

async function databaseExists(env: EnvironmentConfig, name: string): Promise<{ exists: boolean; comment: string | null }> {
  return withClient(env, MAINTENANCE_DB, async (c) => {
    const r = await c.query<{ comment: string | null }>(`SELECT shobj_description(oid, 'pg_database') AS comment FROM pg_database WHERE datname = $1`, [name]);
    return { exists: r.rowCount === 1, comment: r.rows[0]?.comment ?? null };
  });
}

async function createMarkedDatabase(env: EnvironmentConfig, name: string, marker: string): Promise<void> {
  await withClient(env, MAINTENANCE_DB, async (c) => {
    await c.query(`CREATE DATABASE ${ident(name)}`);
    await c.query(`COMMENT ON DATABASE ${ident(name)} IS ${pg.escapeLiteral(marker)}`);
  });
}

async function dropDatabase(env: EnvironmentConfig, name: string): Promise<void> {
  await withClient(env, MAINTENANCE_DB, (c) => dropDatabaseWith(c, name));
}

/** Exact row counts of every user table, counted over `jobs` connections at once. */
async function countDatabase(env: EnvironmentConfig, name: string, jobs: number): Promise<Record<string, number>> {
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

// ---------------------------------------------------------------------------------------------- activities

export interface BeginBackupInput {
  environment: string;
  backupId: string;
  kinds: BackupKind[];
  requestedBy: string;
  reason: string;
  workflowId: string;
  runId: string;
  safetyFor?: string;
}

export interface RestorePlan {
  backupId: string;
  kind: BackupKind;
  /** Over live data (needs approval and a safety backup) or into a new target. */
  live: boolean;
  /** What will be overwritten or created, for the operator. */
  target: string;
  approvalTimeoutMs: number;
  artifact: { file: string; bytes: number; sha256: string };
}

export interface RestoreResult {
  backupId: string;
  kind: BackupKind;
  target: string;
  live: boolean;
  durationMs: number;
  /** database: per-table row counts compared with the manifest. */
  tables?: number;
  mismatches: string[];
}

export function createBackupActivities(cfg: OpsConfig) {
  const settings = cfg.backup;
  const env = (name: string) => getEnvironment(cfg, name);

  /** Runs an activity body, turning the project's permanent errors (and BadInput names) into non-retryable failures. */
  async function guarded<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await heartbeating(fn);
    } catch (err) {
      if (err instanceof Error && err.name === 'BadInput') throw permanent(err.message, 'BadInput');
      throw asFailure(err);
    }
  }

  return {
    /** Creates the backup directory with an in-progress manifest (idempotent for the same workflow run). */
    async beginBackup(input: BeginBackupInput): Promise<{ directory: string }> {
      return guarded(async () => {
        const e = env(input.environment);
        parseBackupId(input.backupId, input.environment);
        const dir = backupDir(e, input.backupId);
        await mkdir(e.paths.backups, { recursive: true });
        if (await exists(path.join(dir, MANIFEST_FILE))) {
          const m = await readManifest(e, input.environment, input.backupId);
          if (m.workflowId !== input.workflowId || m.runId !== input.runId) {
            throw permanent(`Backup directory ${dir} already belongs to ${m.workflowId}`, 'BackupExists');
          }
          return { directory: dir }; // a retry of this very step
        }
        await mkdir(dir, { recursive: true, mode: 0o700 });
        const manifest: BackupManifest = {
          format: MANIFEST_FORMAT,
          createdBy: 'llmchat-ops',
          id: input.backupId,
          environment: input.environment,
          status: 'in-progress',
          kinds: input.kinds,
          requestedBy: input.requestedBy,
          reason: input.reason,
          workflowId: input.workflowId,
          runId: input.runId,
          startedAt: new Date().toISOString(),
          artifacts: {},
          ...(input.safetyFor ? { safetyFor: input.safetyFor } : {}),
        };
        await saveManifest(e, manifest);
        return { directory: dir };
      });
    },

    /**
     * `pg_dump -Fc -Z0 | <compressor>` into `database.dump[.zst]`, with exact per-table row counts taken in the
     * same snapshot (exported by a REPEATABLE READ transaction that pg_dump joins with --snapshot).
     */
    async dumpDatabase(input: { environment: string; backupId: string }): Promise<Artifact> {
      return guarded(async () => {
        const e = env(input.environment);
        parseBackupId(input.backupId, input.environment);
        const started = Date.now();
        const c = settings.compression;
        const file = `database.dump${compressionSuffix(c.program)}`;
        const dest = path.join(backupDir(e, input.backupId), file);
        await rm(dest, { force: true }); // an earlier attempt may have finished the file but not the step
        const beat = progress('pg_dump');
        const state = { bytes: 0, tables: 0 };
        return withClient(e, e.database.name, async (client) => {
          await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
          const snap = (await client.query<{ s: string }>('SELECT pg_export_snapshot() AS s')).rows[0]!.s;
          const version = (await client.query<{ v: string }>('SHOW server_version')).rows[0]!.v;
          const dump: Stage = {
            file: 'pg_dump',
            args: ['--format=custom', '--compress=0', `--snapshot=${snap}`, '--no-password', `--dbname=${e.database.name}`],
            env: pgEnv(e),
          };
          const compress = compressStage(c);
          // One abort for both halves: if counting fails, pg_dump is killed too (and vice versa the client ends).
          const abort = new AbortController();
          const outer = signal();
          outer?.addEventListener('abort', () => abort.abort(outer.reason), { once: true });
          const failFast = <T>(p: Promise<T>) => p.catch((err: unknown) => (abort.abort(err), Promise.reject(err)));
          const produce = (sink: Writable) =>
            compress
              ? compressThroughFifo({
                  fifo: `${dest}.fifo${PARTIAL_SUFFIX}`,
                  // --no-sync: we fsync the artifact; a pipe cannot be.
                  producer: (fifo) => ({ ...dump, args: [...dump.args, `--file=${fifo}`, '--no-sync'] }),
                  compress,
                  sink,
                  signal: abort.signal,
                })
              : runPipeline({ stages: [dump], sink, signal: abort.signal });
          const [written, tables] = await Promise.all([
            failFast(writeArtifact(
              dest,
              produce,
              (bytes) => {
                state.bytes = bytes;
                beat(state);
              },
            )),
            failFast(userTables(client).then((all) => countRows([client], all, (n) => {
              state.tables = n;
              beat(state);
            }))),
          ]);
          await client.query('COMMIT');
          return {
            kind: 'database',
            file,
            bytes: written.bytes,
            sha256: written.sha256,
            durationMs: Date.now() - started,
            compression: { program: c.program, level: c.level },
            format: 'custom',
            database: e.database.name,
            serverVersion: version,
            tables,
          } satisfies Artifact;
        });
      });
    },

    /** `tar | <compressor>` of the application dir (without excluded names), config or uploads. */
    async archiveFiles(input: { environment: string; backupId: string; kind: FileKind }): Promise<Artifact> {
      return guarded(async () => {
        const e = env(input.environment);
        parseBackupId(input.backupId, input.environment);
        const kind = parseKind(input.kind);
        if (kind === 'database') throw permanent('archiveFiles archives files; use dumpDatabase for the database', 'BadInput');
        const src = sourceDir(e, kind);
        const info = await lstat(src).catch(() => undefined);
        if (!info?.isDirectory()) throw permanent(`Cannot back up ${kind}: ${src} is not a directory`, 'SourceMissing');
        const started = Date.now();
        const c = settings.compression;
        const file = `${kind}.tar${compressionSuffix(c.program)}`;
        const dest = path.join(backupDir(e, input.backupId), file);
        await rm(dest, { force: true });
        const excluded = kind === 'application' ? settings.exclude : [];
        const tar = (out: string): Stage => ({
          file: 'tar',
          args: ['--create', `--file=${out}`, '--numeric-owner', ...excluded.map((x) => `--exclude=${x}`), `--directory=${src}`, '.'],
        });
        const compress = compressStage(c);
        const beat = progress(`tar ${kind}`);
        const written = await writeArtifact(
          dest,
          (sink) =>
            compress
              ? compressThroughFifo({ fifo: `${dest}.fifo${PARTIAL_SUFFIX}`, producer: tar, compress, sink, signal: signal() })
              : runPipeline({ stages: [tar('-')], sink, signal: signal() }),
          (bytes) => beat({ bytes }),
        );
        return {
          kind,
          file,
          bytes: written.bytes,
          sha256: written.sha256,
          durationMs: Date.now() - started,
          compression: { program: c.program, level: c.level },
          format: 'tar',
          source: src,
          excluded,
        } satisfies Artifact;
      });
    },

    /** Records the artifacts and marks the backup complete. */
    async sealBackup(input: { environment: string; backupId: string; artifacts: Artifact[] }): Promise<BackupManifest> {
      return guarded(async () => {
        const e = env(input.environment);
        const m = await readManifest(e, input.environment, input.backupId);
        for (const a of input.artifacts) m.artifacts[a.kind] = a;
        const missing = m.kinds.filter((k) => !m.artifacts[k]);
        if (missing.length) throw permanent(`Backup ${m.id} lacks artifacts for ${missing.join(', ')}`, 'BackupIncomplete');
        m.status = 'complete';
        m.completedAt = new Date().toISOString();
        await saveManifest(e, m);
        return m;
      });
    },

    /** Marks a backup failed and removes its partial files; complete artifacts stay for inspection. */
    async markBackupFailed(input: { environment: string; backupId: string; error: string }): Promise<void> {
      return guarded(async () => {
        const e = env(input.environment);
        const dir = backupDir(e, input.backupId);
        const m = await readManifest(e, input.environment, input.backupId).catch(() => undefined);
        for (const f of await readdir(dir).catch(() => [] as string[])) if (f.endsWith(PARTIAL_SUFFIX)) await rm(path.join(dir, f), { force: true });
        if (!m) return;
        m.status = 'failed';
        m.completedAt = new Date().toISOString();
        m.error = input.error.slice(0, 1000);
        await saveManifest(e, m);
      });
    },

    /**
     * Verification, not "non-empty": every checksum re-read; the database archive listed by pg_restore and,
     * with `restoreTest`, restored into a scratch database whose row counts must equal those recorded at dump
     * time. The scratch database is always dropped. The result is written into the manifest.
     */
    async verifyBackup(input: { environment: string; backupId: string; restoreTest: boolean }): Promise<Verification> {
      return guarded(async () => {
        const e = env(input.environment);
        const m = await readManifest(e, input.environment, input.backupId);
        const problems: string[] = [];
        const db = m.artifacts.database;
        const dbFile = db ? path.join(backupDir(e, m.id), db.file) : undefined;
        // Checksums are re-read while the database archive is decompressed (both read the same file, from cache).
        const [sums, unpacked] = await Promise.all([
          Promise.allSettled(m.kinds.map((kind) => checkArtifact(e, m, kind))),
          db && dbFile && (await exists(dbFile)) ? unpackToTemp(e, dbFile, db, `${m.id}.verify.dump`).then((f) => ({ ok: true as const, f }), (err: Error) => ({ ok: false as const, err })) : undefined,
        ]);
        for (const r of sums) if (r.status === 'rejected') problems.push((r.reason as Error).message);
        const checksums: Verification['checksums'] = problems.length === 0 ? 'ok' : 'mismatch';
        const v: Verification = { status: 'verified', at: '', checksums, problems };
        if (unpacked && !unpacked.ok) problems.push(`cannot decompress ${db?.file}: ${unpacked.err.message}`);
        const archive = unpacked?.ok ? unpacked.f : undefined;
        try {
          if (db && archive && checksums === 'ok') {
            const scratch = `ops_verify_${token(m.id)}`;
            try {
              await runPipeline({ stages: [{ file: 'pg_restore', args: ['--list', archive], env: pgEnv(e) }] }); // listing discarded
              v.archiveList = 'ok';
            } catch (err) {
              v.archiveList = 'failed';
              problems.push(`pg_restore --list: ${(err as Error).message}`);
            }
            if (input.restoreTest && v.archiveList === 'ok') {
              const started = Date.now();
              await dropDatabase(e, scratch); // a leftover of an interrupted attempt
              await createMarkedDatabase(e, scratch, `llmchat-ops verification of ${m.id}`);
              try {
                await pgRestore(e, settings.jobs, archive, scratch);
                const mismatches = compareCounts(db.tables ?? {}, await countDatabase(e, scratch, settings.jobs));
                v.restoreTest = { database: scratch, tables: Object.keys(db.tables ?? {}).length, mismatches, durationMs: Date.now() - started };
                problems.push(...mismatches.map((x) => `restore test: ${x}`));
              } finally {
                await dropDatabase(e, scratch);
              }
            } else if (!input.restoreTest) {
              v.restoreTest = 'skipped';
            }
          }
        } finally {
          if (archive && archive !== dbFile) await rm(archive, { force: true });
        }
        v.status = problems.length === 0 ? 'verified' : 'failed';
        v.at = new Date().toISOString();
        m.verification = v;
        await saveManifest(e, m);
        return v;
      });
    },

    /** The catalogue of an environment, newest first: every backup directory holding one of our manifests. */
    async listBackups(input: { environment: string }): Promise<CatalogueEntry[]> {
      return guarded(async () => {
        const e = env(input.environment);
        const names = await readdir(e.paths.backups).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
        const entries: CatalogueEntry[] = [];
        for (const name of names.sort().reverse()) {
          try {
            parseBackupId(name, input.environment);
            entries.push(catalogueEntry(await readManifest(e, input.environment, name)));
          } catch {
            // not ours: the catalogue only lists what llmchat-ops made
          }
        }
        return entries;
      });
    },

    /** Retention by age and count; never the newest verified backup, never anything we did not create. */
    async pruneBackups(input: { environment: string; activeIds?: string[] }): Promise<RetentionPlan> {
      return guarded(async () => {
        const e = env(input.environment);
        return applyRetention(e.paths.backups, input.environment, settings.retention, { activeIds: new Set(input.activeIds ?? []) });
      });
    },

    /**
     * Everything a restore must know before it waits for approval, checked before anything is touched: the
     * backup exists and is complete, holds `kind`, and its artifact still matches its checksum.
     */
    async planRestore(input: { environment: string; backupId: string; kind: BackupKind; target?: string }): Promise<RestorePlan> {
      return guarded(async () => {
        const e = env(input.environment);
        const kind = parseKind(input.kind);
        const target = parseTarget(kind, input.target);
        const m = await readManifest(e, input.environment, input.backupId);
        if (m.status !== 'complete') throw permanent(`Backup ${m.id} is ${m.status}, not complete; it cannot be restored`, 'BackupIncomplete');
        const { artifact } = await checkArtifact(e, m, kind);
        const live = target === undefined || (kind === 'database' && target === e.database.name);
        const where =
          kind === 'database'
            ? `database ${live ? e.database.name : target} on ${e.database.host}:${e.database.port}`
            : live
              ? sourceDir(e, kind)
              : path.join(e.paths.temp, 'restores', target as string);
        return {
          backupId: m.id,
          kind,
          live,
          target: where,
          approvalTimeoutMs: settings.approvalTimeout,
          artifact: { file: artifact.file, bytes: artifact.bytes, sha256: artifact.sha256 },
        };
      });
    },

    /**
     * Restores the database archive. Into a new target: create it, restore, compare counts. Over the live
     * database: restore into a staging database first, compare counts, then swap names (live → pre-restore,
     * staging → live) and drop the old one — so a crash at any point leaves either the old or the new
     * database complete under the live name, and a retry picks up from whatever state it finds.
     */
    async restoreDatabase(input: { environment: string; backupId: string; target?: string; runToken: string }): Promise<RestoreResult> {
      return guarded(async () => {
        const e = env(input.environment);
        const target = parseTarget('database', input.target);
        const m = await readManifest(e, input.environment, input.backupId);
        const started = Date.now();
        const live = target === undefined || target === e.database.name;
        const t = token(input.runToken);
        const marker = `llmchat-ops restore ${m.id} run ${t}`;
        const expected = m.artifacts.database?.tables ?? {};

        const restoreInto = async (name: string): Promise<string[]> => {
          const artifact = m.artifacts.database;
          if (!artifact) throw permanent(`Backup ${m.id} has no database artifact`, 'KindNotInBackup');
          const file = path.join(backupDir(e, m.id), artifact.file);
          // The checksum is re-read while the archive is decompressed; nothing is restored unless it matches.
          const [sum, unpacked] = await Promise.allSettled([checkArtifact(e, m, 'database'), unpackToTemp(e, file, artifact, `${m.id}.restore-${t}.dump`)]);
          if (sum.status === 'rejected' || unpacked.status === 'rejected') {
            if (unpacked.status === 'fulfilled' && unpacked.value !== file) await rm(unpacked.value, { force: true });
            throw sum.status === 'rejected' ? sum.reason : (unpacked as PromiseRejectedResult).reason;
          }
          const archive = unpacked.value;
          try {
            await createMarkedDatabase(e, name, `${marker} restoring`);
            await pgRestore(e, settings.jobs, archive, name);
          } finally {
            if (archive !== file) await rm(archive, { force: true });
          }
          const mismatches = compareCounts(expected, await countDatabase(e, name, settings.jobs));
          if (mismatches.length === 0) await withClient(e, MAINTENANCE_DB, (c) => c.query(`COMMENT ON DATABASE ${ident(name)} IS ${pg.escapeLiteral(`${marker} restored`)}`));
          return mismatches;
        };
        const result = (name: string, mismatches: string[]): RestoreResult => ({
          backupId: m.id,
          kind: 'database',
          target: name,
          live,
          durationMs: Date.now() - started,
          tables: Object.keys(expected).length,
          mismatches,
        });

        if (!live) {
          const name = target as string;
          const found = await databaseExists(e, name);
          if (found.exists && found.comment === `${marker} restored`) return result(name, []); // done by an earlier attempt
          if (found.exists && !found.comment?.startsWith(marker)) {
            throw permanent(`Database ${name} already exists; restore into a new name (it is never overwritten)`, 'TargetExists');
          }
          if (found.exists) await dropDatabase(e, name); // our own half-restored attempt
          const mismatches = await restoreInto(name);
          if (mismatches.length) throw permanent(`Restored ${name} but row counts differ from the backup: ${mismatches.join('; ')}`, 'RestoreMismatch');
          return result(name, mismatches);
        }

        const liveName = e.database.name;
        const staging = `${liveName.slice(0, 40)}_restore_${t}`;
        const previous = `${liveName.slice(0, 40)}_pre_${t}`;
        const [liveDb, stagingDb, previousDb] = await Promise.all([databaseExists(e, liveName), databaseExists(e, staging), databaseExists(e, previous)]);
        const swapped = liveDb.exists && liveDb.comment === `${marker} restored` && !stagingDb.exists;
        if (!swapped) {
          if (!(stagingDb.exists && stagingDb.comment === `${marker} restored`)) {
            if (stagingDb.exists) await dropDatabase(e, staging);
            const mismatches = await restoreInto(staging);
            if (mismatches.length) {
              await dropDatabase(e, staging);
              throw permanent(`Restore of ${m.id} produced different row counts; live database left untouched: ${mismatches.join('; ')}`, 'RestoreMismatch');
            }
          }
          await withClient(e, MAINTENANCE_DB, async (c) => {
            if (liveDb.exists && !previousDb.exists) {
              // Keep new sessions out, end ours (the app's), then move the live database aside. Sessions of other
              // roles make the rename fail: the live database is then reopened and the step fails with their pids.
              await c.query(`ALTER DATABASE ${ident(liveName)} WITH ALLOW_CONNECTIONS false`);
              try {
                await c.query(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND usename = current_user AND pid <> pg_backend_pid()`, [liveName]);
                await c.query(`ALTER DATABASE ${ident(liveName)} RENAME TO ${ident(previous)}`);
              } catch (err) {
                await c.query(`ALTER DATABASE ${ident(liveName)} WITH ALLOW_CONNECTIONS true`);
                const others = await c.query<{ pid: number; usename: string }>(`SELECT pid, usename FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()`, [liveName]);
                const who = others.rows.map((r) => `${r.usename} (pid ${r.pid})`).join(', ');
                throw new Error(`cannot swap in the restored database: ${(err as Error).message}${who ? `; still connected: ${who}` : ''}`);
              }
            }
            await c.query(`ALTER DATABASE ${ident(staging)} RENAME TO ${ident(liveName)}`);
            await c.query(`ALTER DATABASE ${ident(liveName)} WITH ALLOW_CONNECTIONS true`);
          });
        }
        await dropDatabase(e, previous);
        return result(liveName, []);
      });
    },

    /**
     * Restores a file archive. Into a new target: extract under temp/restores/<target>. Over live files: extract
     * into a sibling staging directory, carry over the excluded entries (node_modules…) of the current one, then
     * swap by renames; a retry resumes from the state it finds.
     */
    async restoreFiles(input: { environment: string; backupId: string; kind: FileKind; target?: string; runToken: string }): Promise<RestoreResult> {
      return guarded(async () => {
        const e = env(input.environment);
        const kind = parseKind(input.kind);
        if (kind === 'database') throw permanent('restoreFiles restores files; use restoreDatabase', 'BadInput');
        const target = parseTarget(kind, input.target);
        const m = await readManifest(e, input.environment, input.backupId);
        const started = Date.now();
        const t = token(input.runToken);
        const live = target === undefined;
        const dest = live ? sourceDir(e, kind) : path.join(e.paths.temp, 'restores', target);
        const staging = `${dest}.restore-${t}`;
        const previous = `${dest}.pre-restore-${t}`;
        const markerName = `.llmchat-ops-restore-${t}`;
        const doneMarker = path.join(dest, markerName);
        const result = (): RestoreResult => ({ backupId: m.id, kind, target: dest, live, durationMs: Date.now() - started, mismatches: [] });

        const carryOver = async () => {
          // Entries the archive leaves out (node_modules, dist, .git) come from the directory being replaced.
          if (!live) return;
          for (const name of settings.exclude) {
            const from = path.join(previous, name);
            if ((await exists(from)) && !(await exists(path.join(dest, name)))) await rename(from, path.join(dest, name));
          }
        };
        if (await exists(doneMarker)) {
          // The swap happened in an earlier attempt; finish its clean-up.
          await carryOver();
          await rm(previous, { recursive: true, force: true });
          if (live) await rm(doneMarker, { force: true });
          return result();
        }
        if (!live && (await exists(dest))) throw permanent(`${dest} already exists; restore into a new target name`, 'TargetExists');
        if (!(await exists(path.join(staging, markerName)))) {
          const { artifact, file } = await checkArtifact(e, m, kind);
          await rm(staging, { recursive: true, force: true });
          await mkdir(staging, { recursive: true });
          const unpack = decompressStage(artifact.compression.program);
          const tar: Stage = { file: 'tar', args: ['--extract', '--file=-', '--no-same-owner', `--directory=${staging}`] };
          await runPipeline({ stages: unpack ? [unpack, tar] : [tar], source: createReadStream(file), signal: signal() });
          await writeFileAtomic(path.join(staging, markerName), `${m.id}\n`);
        }
        await mkdir(path.dirname(dest), { recursive: true });
        if ((await exists(dest)) && !(await exists(previous))) await rename(dest, previous);
        await rename(staging, dest);
        await carryOver();
        await rm(previous, { recursive: true, force: true });
        // A restored inspection copy keeps its marker (it says where it came from); live files do not.
        if (live) await rm(doneMarker, { force: true });
        return result();
      });
    },
  };
}
