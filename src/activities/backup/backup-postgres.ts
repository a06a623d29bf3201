/**
 * PostgreSQL side of backup and restore: `pg_dump -Fc -Z0 | zstd` (custom format, so pg_restore can restore in
 * parallel) with the exact row count of every table taken in the dump's own exported snapshot; verification
 * (checksums, archive listing, restore test into a scratch database); restore into a new database or over the
 * live one by a rename swap. Connection details and the password come from the config and the worker's
 * environment, never from the workflow.
 */
import { refuseDuringRelease } from '../common/temporal.js';
import { rm } from 'node:fs/promises';
import path from 'node:path';
import { type Writable } from 'node:stream';
import pg from 'pg';
import { getEnvironment, resolveSecret, type EnvironmentConfig, type OpsConfig } from '../../common/config/index.js';
import { parseBackupId, parseTarget } from './ids.js';
import { PARTIAL_SUFFIX, type Artifact, type Verification } from './manifest.js';
import {
  compressThroughFifo,
  compressionSuffix,
  compressStage,
  followAbort,
  PipelineError,
  runPipeline,
  writeArtifact,
  type Stage,
} from './process.js';
import { cancelBackend, countRows, userTables } from './postgres.js';
import { createRestoreTestDatabase, resetRestoreTestRole, RestoreTestRoleError } from './restore-test-role.js';
import { guarded, permanent, progress, runningAs, runToken, signal, token } from '../common/activity-support.js';
import { MAINTENANCE_DB, withPg } from '../../common/postgres/connect.js';
import type { RestoreResult } from './backup-catalogue.js';
import { backupDir, checkArtifact, readManifest, saveManifest } from './backup-store.js';
import { pgEnv, withClient, ident, compareCounts, unpackVerified, pgRestore, databaseExists, createMarkedDatabase, dropDatabase, countDatabase, swapIn } from './database-steps.js';

export function createBackupPostgresActivities(cfg: OpsConfig) {
  const settings = cfg.backup;
  const env = (name: string) => getEnvironment(cfg, name);

  return {
    /**
     * `pg_dump -Fc -Z0 | <compressor>` into `database.dump[.zst]`, with exact per-table row counts taken in the
     * same snapshot (exported by a REPEATABLE READ transaction that pg_dump joins with --snapshot).
     */
    async dumpDatabase(input: { environment: string; backupId: string }): Promise<Artifact> {
      // One abort for both halves: if counting fails, pg_dump is killed too (and vice versa the count is cancelled).
      // It follows the cancellation from the start, before the first await: a cancel landing while we connect, begin
      // or export the snapshot has fired before the dump starts, and a listener added then would never run.
      const abort = new AbortController();
      const unfollow = followAbort(signal(), abort);
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
          const { s: snap, pid } = (await client.query<{ s: string; pid: number }>('SELECT pg_export_snapshot() AS s, pg_backend_pid() AS pid')).rows[0]!;
          const version = (await client.query<{ v: string }>('SHOW server_version')).rows[0]!.v;
          const dump: Stage = {
            file: 'pg_dump',
            args: ['--format=custom', '--compress=0', `--snapshot=${snap}`, '--no-password', `--dbname=${e.database.name}`],
            // A killed pg_dump's session would wait on for a lock it queued for (the server does not notice the client
            // gone meanwhile): checking every second, it ends with it.
            env: { ...pgEnv(e), PGOPTIONS: [process.env.PGOPTIONS, '-c client_connection_check_interval=1000'].filter(Boolean).join(' ') },
          };
          const compress = compressStage(c);
          abort.signal.throwIfAborted();
          // Our count waiting on a lock (an app's LOCK TABLE) does not see the abort, and ending our client would leave
          // its session waiting on (the server does not notice): it is cancelled from a second session.
          const as = { applicationName: `llmchat-ops ${runningAs()}` }; // the listener runs outside the activity's context
          let cancelling: Promise<void> | undefined;
          const cancelCount = () => void (cancelling = withPg(e, MAINTENANCE_DB, (admin) => cancelBackend(admin, pid), as).catch(() => {}));
          abort.signal.addEventListener('abort', cancelCount, { once: true });
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
            }, abort.signal))),
          ]).catch(async (err: unknown) => {
            await cancelling;
            // The cancellation or the first real failure, not what it caused in the other half (a killed pg_dump).
            throw abort.signal.aborted ? abort.signal.reason : err;
          }).finally(() => abort.signal.removeEventListener('abort', cancelCount));
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
      }).finally(unfollow);
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
        // Unique per run (stable across its retries): two verifications of one backup at once never share a name.
        const run = runToken();
        // The database archive is checksummed in the read that decompresses it; the file archives are listed member
        // by member meanwhile. A decompression failure of an archive whose checksum matched is its own problem.
        const [sums, unpacked] = await Promise.all([
          Promise.allSettled(m.kinds.map((kind) => (kind === 'database' && db ? undefined : checkArtifact(e, m, kind)))),
          db ? unpackVerified(e, m, db, `${m.id}.verify-${run}.dump`).then((f) => ({ ok: true as const, f }), (err: Error) => ({ ok: false as const, err })) : undefined,
        ]);
        const undecompressable = unpacked && !unpacked.ok && unpacked.err instanceof PipelineError ? unpacked.err : undefined;
        if (unpacked && !unpacked.ok && !undecompressable) problems.push(unpacked.err.message);
        for (const r of sums) if (r.status === 'rejected') problems.push((r.reason as Error).message);
        // File archives were listed member by member by checkArtifact (src/activities/backup/tar-members.ts): record the result.
        const fileArchives: NonNullable<Verification['fileArchives']> = {};
        m.kinds.forEach((kind, i) => {
          const r = sums[i]!;
          if (kind === 'database') return;
          if (r.status === 'fulfilled') fileArchives[kind] = { members: r.value?.members ?? 0, status: 'ok' };
          else if ((r.reason as { type?: string }).type === 'UnsafeArchive' || (r.reason as { type?: string }).type === 'CorruptArchive') fileArchives[kind] = { members: 0, status: 'refused' };
        });
        // 'mismatch' also when an archive was refused for a member: its listing stopped there, so its checksum was not proven.
        const checksums: Verification['checksums'] = problems.length === 0 ? 'ok' : 'mismatch';
        const v: Verification = { status: 'verified', at: '', checksums, ...(Object.keys(fileArchives).length ? { fileArchives } : {}), problems };
        if (undecompressable) problems.push(`cannot decompress ${db?.file}: ${undecompressable.message}`);
        const archive = unpacked?.ok ? unpacked.f : undefined;
        try {
          if (db && archive && checksums === 'ok') {
            const scratch = `ops_verify_${token(m.id)}_${run}`;
            try {
              await runPipeline({ stages: [{ file: 'pg_restore', args: ['--list', archive], env: pgEnv(e) }], signal: signal() }); // listing discarded
              v.archiveList = 'ok';
            } catch (err) {
              v.archiveList = 'failed';
              problems.push(`pg_restore --list: ${(err as Error).message}`);
            }
            if (input.restoreTest && v.archiveList === 'ok') {
              const started = Date.now();
              await dropDatabase(e, scratch); // a leftover of an interrupted attempt
              // The dump is untrusted SQL: it is restored and counted only as the restricted restore-test role, which
              // owns just this scratch database (src/activities/backup/restore-test-role.ts); the app role never connects to it.
              const { role, passwordEnv } = settings.restoreTest;
              const asRole: EnvironmentConfig = { ...e, database: { ...e.database, user: role, passwordEnv } };
              await withClient(e, MAINTENANCE_DB, async (c) => {
                // Verifications run side by side and reset the same role: one reset at a time (two ALTER ROLE of one
                // role at once fail with "tuple concurrently updated"). Released when this session ends.
                await c.query('SELECT pg_advisory_lock(hashtext($1))', [`llmchat-ops restore-test role ${role}`]);
                await resetRestoreTestRole(c, role, resolveSecret(passwordEnv) as string, e.database.user).catch((err: unknown) => {
                  throw err instanceof RestoreTestRoleError ? permanent(err.message, err.name) : err;
                });
                await createRestoreTestDatabase(c, scratch, role, `llmchat-ops verification of ${m.id}`);
              });
              try {
                await pgRestore(asRole, settings.jobs, archive, scratch);
                const mismatches = compareCounts(db.tables ?? {}, await countDatabase(asRole, scratch, settings.jobs));
                v.restoreTest = { database: scratch, role, tables: Object.keys(db.tables ?? {}).length, mismatches, durationMs: Date.now() - started };
                problems.push(...mismatches.map((x) => `restore test: ${x}`));
              } finally {
                await dropDatabase(e, scratch);
              }
            } else if (!input.restoreTest) {
              v.restoreTest = 'skipped';
            }
          }
        } finally {
          if (archive) await rm(archive, { force: true });
        }
        v.status = problems.length === 0 ? 'verified' : 'failed';
        v.at = new Date().toISOString();
        m.verification = v;
        await saveManifest(e, m);
        return v;
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
        if (live) await refuseDuringRelease(input.environment, `restore of the database from ${m.id}`);
        const t = token(input.runToken);
        const marker = `llmchat-ops restore ${m.id} run ${t}`;
        const expected = m.artifacts.database?.tables ?? {};

        const restoreInto = async (name: string): Promise<string[]> => {
          const artifact = m.artifacts.database;
          if (!artifact) throw permanent(`Backup ${m.id} has no database artifact`, 'KindNotInBackup');
          // Checksummed in the same read that decompresses it; nothing is restored unless it matches.
          const archive = await unpackVerified(e, m, artifact, `${m.id}.restore-${t}.dump`);
          try {
            await createMarkedDatabase(e, name, `${marker} restoring`);
            await pgRestore(e, settings.jobs, archive, name);
          } finally {
            await rm(archive, { force: true });
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

        /** Drops `name` if it carries this run's marker (never anyone else's database); says so if it cannot. */
        const removeOurs = async (name: string, err: unknown): Promise<never> => {
          try {
            const found = await databaseExists(e, name);
            if (found.exists && found.comment?.startsWith(marker)) await dropDatabase(e, name);
          } catch (cleanup) {
            if (err instanceof Error) err.message += ` (the half-restored database ${name} could not be removed: ${(cleanup as Error).message})`;
          }
          throw err;
        };

        if (!live) {
          const name = target as string;
          const found = await databaseExists(e, name);
          if (found.exists && found.comment === `${marker} restored`) return result(name, []); // done by an earlier attempt
          if (found.exists && !found.comment?.startsWith(marker)) {
            throw permanent(`Database ${name} already exists; restore into a new name (it is never overwritten)`, 'TargetExists');
          }
          if (found.exists) await dropDatabase(e, name); // our own half-restored attempt
          // A failed restore leaves no half-built target behind (a retry starts afresh anyway).
          const mismatches = await restoreInto(name).catch((err: unknown) => removeOurs(name, err));
          if (mismatches.length) await removeOurs(name, permanent(`Restore of ${m.id} into ${name} produced different row counts (${name} removed): ${mismatches.join('; ')}`, 'RestoreMismatch'));
          return result(name, mismatches);
        }

        const liveName = e.database.name;
        const staging = `${liveName.slice(0, 40)}_restore_${t}`;
        const previous = `${liveName.slice(0, 40)}_pre_${t}`;
        const [liveDb, stagingDb] = await Promise.all([databaseExists(e, liveName), databaseExists(e, staging)]);
        const swapped = liveDb.exists && liveDb.comment === `${marker} restored` && !stagingDb.exists;
        if (!swapped) {
          if (!(stagingDb.exists && stagingDb.comment === `${marker} restored`)) {
            if (stagingDb.exists) await dropDatabase(e, staging);
            const mismatches = await restoreInto(staging).catch((err: unknown) => removeOurs(staging, err));
            if (mismatches.length) {
              await removeOurs(staging, permanent(`Restore of ${m.id} produced different row counts; live database left untouched: ${mismatches.join('; ')}`, 'RestoreMismatch'));
            }
          }
          await swapIn(e, { liveName, staging, previous, liveExists: liveDb.exists, restoredMarker: `${marker} restored` });
        }
        try {
          await dropDatabase(e, previous);
        } catch (err) {
          // The swap is done; only the clean-up of the old data failed. A retry finishes it; say where it is.
          throw new Error(`restored ${m.id} into ${liveName}; the previous data is still in database ${previous} and could not be dropped yet: ${(err as Error).message}`);
        }
        return result(liveName, []);
      });
    },

  };
}
