/**
 * What do the backup activities cost against the same work done by hand, and against the guide's backup.sh?
 * On a seeded database of ≥ 500 MB (bench/seed-large.ts, kept between runs) and a file tree (app + node_modules
 * to leave out, config, ~150 MB of uploads), interleaved over BENCH_ROUNDS rounds (default 3; the order of the
 * two sides alternates every round), each figure a ratio measured in this run:
 *   (a) our database step (beginBackup + dumpDatabase: row counts in the dump's snapshot, sha256, fsync+rename)
 *       vs `pg_dump --format=custom --compress=0 | zstd -3 -T0 -q -c > file` spawned by hand.   Goal ≤ 1.10×.
 *   (b) our whole backup (beginBackup; dumpDatabase + archiveFiles ×3 in parallel, as the workflow's
 *       Promise.all; sealBackup; no verifyBackup) vs the guide's way, sequential: `pg_dump > file.sql`, then
 *       `tar czf` of the app (without node_modules), config and uploads.   Goal ≤ 0.5×, and our output no
 *       larger than the guide's once its SQL is gzipped (`gzip -6`, timed and reported separately).
 *   (c) verifyBackup({ restoreTest: true }) of that backup (checksums re-read, pg_restore --list, restore into a
 *       scratch database, row counts) vs `zstd -d` to a temp file + create db + `pg_restore --jobs=<jobs>` +
 *       drop db by hand.   Goal ≤ 1.10×.
 * Prints the p50 of each side, their ratio, sizes in MB, MET / NOT MET per goal, and the load average per round
 * (other work on the machine skews both sides, which interleaving only partly evens out). Each side starts after
 * an untimed `sync`, so none pays for the write-back of the step before it.
 * Run: `npm run bench:backup` (PostgreSQL must be up: scripts/services.sh up postgres). BENCH_RESEED=1 re-seeds.
 */
import { spawn, type StdioOptions } from 'node:child_process';
import { randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, open, rm, stat } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import pg from 'pg';
import { createBackupActivities } from '../src/activities/backup/backup.js';
import { BACKUP_KINDS, makeBackupId } from '../src/activities/backup/ids.js';
import type { Artifact } from '../src/activities/backup/manifest.js';
import { PG, tempDir } from '../test/support/services.js';
import { testConfig } from '../test/support/temporal.js';
import { buildFileTree, ensureLargeDatabase, libpqEnv, run, withDb } from './seed-large.js';

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const ENVIRONMENT = 'production';
const MB = 2 ** 20;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
};
const sec = (ms: number) => `${(ms / 1000).toFixed(2).padStart(7)} s`;
const mb = (bytes: number) => `${(bytes / MB).toFixed(1)} MB`;
const since = (t0: number) => performance.now() - t0;
/** 1-minute load average: the figures are only as quiet as the machine (anything else running shows here). */
const load = () => os.loadavg()[0]!.toFixed(2);

/** A child process by argument array; `done` resolves on exit 0 and rejects with its stderr tail otherwise. */
function proc(file: string, args: string[], stdio: StdioOptions, env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(file, args, { env, stdio });
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr = (stderr + d.toString()).slice(-4000)));
  const done = new Promise<void>((resolve, reject) => {
    child.on('error', reject);
    child.on('close', (code, sig) => (code === 0 ? resolve() : reject(new Error(`${file} ${args.join(' ')} exited ${code ?? sig}: ${stderr.trim()}`))));
  });
  return { child, done };
}

/** `file args > out`: the program writes straight into the file (as a shell redirection does). */
async function toFile(file: string, args: string[], out: string, env?: NodeJS.ProcessEnv): Promise<void> {
  const fh = await open(out, 'w', 0o600);
  try {
    await proc(file, args, ['ignore', fh.fd, 'pipe'], env).done;
  } finally {
    await fh.close();
  }
}

async function size(file: string): Promise<number> {
  return (await stat(file)).size;
}

async function main(): Promise<void> {
  const started = performance.now();
  // The activities read the database password by variable name (passwordEnv), as in production.
  process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
  // The worker's other secrets, by the names the config gives them (demo values as in scripts/env.sh).
  process.env.LLMCHAT_BACKUP_SIGNING_KEY ??= 'llmchat-demo-backup-signing-key';
  process.env.LLMCHAT_RESTORE_TEST_DB_PASSWORD ??= 'llmchat-restore-test-demo';

  const seed = await ensureLargeDatabase((l) => console.log(l));
  const root = tempDir('bench-backup');
  const logs = path.join(root, 'logs');
  const appDir = path.join(root, 'app');
  const rawDir = path.join(root, 'raw');
  const guideDir = path.join(root, 'guide');
  const freshDb = `bench_raw_restore_${process.pid}`;
  // Plain DROP DATABASE, as `dropdb` does: nobody else uses this database, and WITH (FORCE) fails for a non-superuser
  // role when an autovacuum worker has just started on the freshly restored database (PostgreSQL 15: "must be a
  // member of the role whose process is being terminated"); plain DROP cancels autovacuum workers itself.
  const dropDb = (name: string) => withDb('postgres', (c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)}`));
  const dropFresh = () => dropDb(freshDb);

  try {
    const tTree = performance.now();
    const tree = await buildFileTree(appDir, logs);
    const treeMs = since(tTree);
    await mkdir(rawDir, { recursive: true });
    await mkdir(guideDir, { recursive: true });

    const cfg = testConfig({
      address: '127.0.0.1:7233', // unused: the activities are called directly, without a worker
      taskQueue: 'bench-backup',
      environments: { [ENVIRONMENT]: { url: 'http://127.0.0.1:9', logs, database: seed.name, app: appDir } },
    });
    const e = cfg.environments[ENVIRONMENT]!;
    const acts = createBackupActivities(cfg);
    const { level, threads, program } = cfg.backup.compression;
    if (program !== 'zstd') throw new Error(`the benchmark compares against zstd; the config says ${program}`);
    const jobs = cfg.backup.jobs;
    const db = seed.name;

    const newBackup = async (kinds: (typeof BACKUP_KINDS)[number][]) => {
      const backupId = makeBackupId(ENVIRONMENT, new Date(), randomBytes(3).toString('hex'));
      await acts.beginBackup({ environment: ENVIRONMENT, backupId, kinds, requestedBy: 'bench', reason: 'benchmark', workflowId: `bench-${backupId}`, runId: randomUUID() });
      return backupId;
    };
    const dropBackup = (id: string) => rm(path.join(e.paths.backups, id), { recursive: true, force: true });

    // ------------------------------------------------------------------ (a) database step
    const oursDatabase = async () => {
      const t = performance.now();
      const id = await newBackup(['database']);
      const a = await acts.dumpDatabase({ environment: ENVIRONMENT, backupId: id });
      const ms = since(t);
      await dropBackup(id);
      return { ms, bytes: a.bytes };
    };
    const rawDatabase = async () => {
      const out = path.join(rawDir, 'database.dump.zst');
      const t = performance.now();
      const dump = proc('pg_dump', ['--format=custom', '--compress=0', `--dbname=${db}`], ['ignore', 'pipe', 'pipe'], libpqEnv());
      const zstd = proc('zstd', [`-${level}`, `-T${threads}`, '-q', '-c'], ['pipe', 'pipe', 'pipe']);
      await Promise.all([
        dump.done,
        zstd.done,
        pipeline(dump.child.stdout as Readable, zstd.child.stdin as Writable),
        pipeline(zstd.child.stdout as Readable, createWriteStream(out)),
      ]);
      const ms = since(t);
      const bytes = await size(out);
      await rm(out, { force: true });
      return { ms, bytes };
    };

    // ------------------------------------------------------------------ (b) whole backup
    const oursWhole = async () => {
      const t = performance.now();
      const id = await newBackup([...BACKUP_KINDS]);
      const artifacts: Artifact[] = await Promise.all(
        BACKUP_KINDS.map((kind) =>
          kind === 'database' ? acts.dumpDatabase({ environment: ENVIRONMENT, backupId: id }) : acts.archiveFiles({ environment: ENVIRONMENT, backupId: id, kind }),
        ),
      );
      await acts.sealBackup({ environment: ENVIRONMENT, backupId: id, artifacts });
      const ms = since(t);
      const by = Object.fromEntries(artifacts.map((a) => [a.kind, a])) as Record<(typeof BACKUP_KINDS)[number], Artifact>;
      return { ms, id, bytes: artifacts.reduce((n, a) => n + a.bytes, 0), by };
    };
    const guideWhole = async () => {
      const f = {
        sql: path.join(guideDir, 'database.sql'),
        app: path.join(guideDir, 'app.tar.gz'),
        config: path.join(guideDir, 'config.tar.gz'),
        uploads: path.join(guideDir, 'uploads.tar.gz'),
        sqlGz: path.join(guideDir, 'database.sql.gz'),
      };
      const steps: Record<string, number> = {};
      const step = async (name: string, fn: () => Promise<void>) => {
        const t = performance.now();
        await fn();
        steps[name] = since(t);
      };
      const t = performance.now();
      await step('pg_dump', () => toFile('pg_dump', [`--dbname=${db}`], f.sql, libpqEnv()));
      await step('tar app', () => run('tar', ['czf', f.app, '--exclude=node_modules', '-C', appDir, '.']));
      await step('tar config', () => run('tar', ['czf', f.config, '-C', e.paths.config, '.']));
      await step('tar uploads', () => run('tar', ['czf', f.uploads, '-C', e.paths.uploads, '.']));
      const ms = since(t);
      // Not part of the timed run: what the SQL becomes once gzipped, for a fair size comparison.
      const tg = performance.now();
      await toFile('gzip', ['-6', '-c', f.sql], f.sqlGz);
      const gzipMs = since(tg);
      const sizes = { sql: await size(f.sql), app: await size(f.app), config: await size(f.config), uploads: await size(f.uploads), sqlGz: await size(f.sqlGz) };
      for (const file of Object.values(f)) await rm(file, { force: true });
      return { ms, gzipMs, steps, sizes };
    };

    // ------------------------------------------------------------------ (c) verification restore
    /** Fails are recorded and reported (not timed); the round's scratch database is then removed here. */
    const verifyFailures: string[] = [];
    const oursVerify = async (id: string) => {
      const t = performance.now();
      try {
        const v = await acts.verifyBackup({ environment: ENVIRONMENT, backupId: id, restoreTest: true });
        const ms = since(t);
        if (v.status !== 'verified') throw new Error(`${v.status}: ${v.problems.join('; ')}`);
        return { ms, restoreAndCountMs: typeof v.restoreTest === 'object' ? v.restoreTest.durationMs : NaN };
      } catch (err) {
        verifyFailures.push(`verifyBackup of ${id} failed after ${(since(t) / 1000).toFixed(1)} s: ${(err as Error).message}`);
        console.log(`  ${verifyFailures.at(-1)}`);
        const left = await withDb('postgres', (c) =>
          c.query<{ datname: string }>(`SELECT datname FROM pg_database WHERE shobj_description(oid, 'pg_database') = $1`, [`llmchat-ops verification of ${id}`]),
        );
        for (const { datname } of left.rows) {
          console.log(`  removing its leftover scratch database ${datname}`);
          await dropDb(datname);
        }
        return undefined;
      }
    };
    const rawVerify = async (id: string) => {
      const archive = path.join(e.paths.backups, id, 'database.dump.zst');
      const tmp = path.join(rawDir, 'restore.dump');
      const ident = pg.escapeIdentifier(freshDb);
      const t = performance.now();
      await run('zstd', ['-d', '-q', '-f', '-o', tmp, archive]);
      const unpackMs = since(t);
      await withDb('postgres', async (c) => {
        await c.query(`DROP DATABASE IF EXISTS ${ident}`);
        await c.query(`CREATE DATABASE ${ident}`);
      });
      const tr = performance.now();
      await run('pg_restore', ['--exit-on-error', '--no-owner', '--no-acl', `--jobs=${jobs}`, `--dbname=${freshDb}`, tmp], { env: libpqEnv() });
      const restoreMs = since(tr);
      await dropFresh();
      await rm(tmp, { force: true });
      return { ms: since(t), unpackMs, restoreMs };
    };

    // ------------------------------------------------------------------ rounds
    const r = {
      a: { ours: [] as number[], raw: [] as number[], oursBytes: 0, rawBytes: 0 },
      b: { ours: [] as number[], guide: [] as number[], gzip: [] as number[], oursBytes: 0, oursBy: {} as Record<string, number>, guideSizes: {} as Record<string, number>, oursKindMs: {} as Record<string, number[]>, guideSteps: {} as Record<string, number[]> },
      c: { ours: [] as number[], raw: [] as number[], oursRestore: [] as number[], rawUnpack: [] as number[], rawRestore: [] as number[] },
    };
    const push = (m: Record<string, number[]>, k: string, v: number) => (m[k] ??= []).push(v);
    // Before each side: `sync` (untimed), so nobody pays for the write-back of the step before it.
    const settle = () => run('sync', []);
    const both = async <A, B>(oursFirst: boolean, ours: () => Promise<A>, raw: () => Promise<B>): Promise<[A, B]> => {
      await settle();
      if (oursFirst) {
        const a = await ours();
        await settle();
        return [a, await raw()];
      }
      const b = await raw();
      await settle();
      return [await ours(), b];
    };

    console.log(
      `backup benchmark: ${ROUNDS} rounds, interleaved (the side that goes first alternates); ${os.cpus().length} cores; ` +
        `zstd -${level} -T${threads}; pg_restore --jobs=${jobs}; load average at start ${load()}`,
    );
    console.log(
      `database ${db}: ${mb(seed.bytes)} (pg_database_size), ${seed.seededMs === null ? 'reused from an earlier run' : `seeded in ${(seed.seededMs / 1000).toFixed(1)} s`}`,
    );
    console.log(
      `files (built in ${(treeMs / 1000).toFixed(1)} s): app ${mb(tree.sizes.app)} in ${tree.sizes.appFiles + 1} files (+ node_modules ${mb(tree.sizes.nodeModules)}, left out), ` +
        `config ${mb(tree.sizes.config)}, uploads ${mb(tree.sizes.uploads)} in ${tree.sizes.uploadFiles} files`,
    );

    for (let i = 0; i < ROUNDS; i++) {
      const oursFirst = i % 2 === 0;
      const tRound = performance.now();

      const [aOurs, aRaw] = await both(oursFirst, oursDatabase, rawDatabase);
      r.a.ours.push(aOurs.ms);
      r.a.raw.push(aRaw.ms);
      r.a.oursBytes = aOurs.bytes;
      r.a.rawBytes = aRaw.bytes;

      const [bOurs, bGuide] = await both(oursFirst, oursWhole, guideWhole);
      r.b.ours.push(bOurs.ms);
      r.b.guide.push(bGuide.ms);
      r.b.gzip.push(bGuide.gzipMs);
      r.b.oursBytes = bOurs.bytes;
      r.b.oursBy = Object.fromEntries(Object.entries(bOurs.by).map(([k, a]) => [k, a.bytes]));
      r.b.guideSizes = bGuide.sizes;
      for (const [k, a] of Object.entries(bOurs.by)) push(r.b.oursKindMs, k, a.durationMs);
      for (const [k, ms] of Object.entries(bGuide.steps)) push(r.b.guideSteps, k, ms);

      let cText = 'verifyBackup FAILED';
      try {
        const [cOurs, cRaw] = await both(oursFirst, () => oursVerify(bOurs.id), () => rawVerify(bOurs.id));
        if (cOurs) {
          r.c.ours.push(cOurs.ms);
          r.c.raw.push(cRaw.ms);
          r.c.oursRestore.push(cOurs.restoreAndCountMs);
          r.c.rawUnpack.push(cRaw.unpackMs);
          r.c.rawRestore.push(cRaw.restoreMs);
          cText = `${(cOurs.ms / cRaw.ms).toFixed(2)}x`;
        }
      } finally {
        await dropBackup(bOurs.id);
        await rm(path.join(e.paths.temp), { recursive: true, force: true });
      }
      console.log(
        `round ${i + 1}/${ROUNDS} (${oursFirst ? 'ours' : 'baseline'} first, ${(since(tRound) / 1000).toFixed(1)} s, load average ${load()} incl. this bench): ` +
          `(a) ${(aOurs.ms / aRaw.ms).toFixed(2)}x  (b) ${(bOurs.ms / bGuide.ms).toFixed(2)}x  ` +
          `(c) ${cText}`,
      );
    }

    // ------------------------------------------------------------------ report
    const goal = (label: string, ratio: number, limit: number) =>
      console.log(`goal: ${label} <= ${limit.toFixed(2)}x -> ${ratio <= limit ? 'MET' : 'NOT MET'} (${ratio.toFixed(3)}x)`);
    const perRound = (ours: number[], base: number[]) => ours.map((o, k) => `${(o / base[k]!).toFixed(2)}x`).join(' ');
    const figure = (title: string, oursLabel: string, ours: number[], baseLabel: string, base: number[]) => {
      const ratio = median(ours) / median(base);
      console.log(title);
      console.log(`  p50  ${oursLabel} ${sec(median(ours))}   ${baseLabel} ${sec(median(base))}   ratio ${ratio.toFixed(3)}x   (per round: ${perRound(ours, base)})`);
      return ratio;
    };

    console.log('');
    const ra = figure('(a) database step: beginBackup + dumpDatabase vs pg_dump -Fc -Z0 | zstd by hand', 'ours', r.a.ours, 'by hand', r.a.raw);
    console.log(`       output: ours ${mb(r.a.oursBytes)}, by hand ${mb(r.a.rawBytes)}`);
    goal('(a) ours / by hand', ra, 1.1);

    console.log('');
    const rb = figure("(b) whole backup: our activities (parallel, as the workflow) vs the guide's backup.sh (sequential)", 'ours', r.b.ours, 'guide', r.b.guide);
    const gs = r.b.guideSizes as { sql: number; app: number; config: number; uploads: number; sqlGz: number };
    const guideFiles = gs.app + gs.config + gs.uploads;
    const guideTotal = gs.sql + guideFiles;
    const guideGzTotal = gs.sqlGz + guideFiles;
    const withGzip = r.b.guide.map((g, k) => g + r.b.gzip[k]!);
    console.log(`       guide + gzip -6 of its SQL (gzip alone p50 ${sec(median(r.b.gzip)).trim()}): p50 ${sec(median(withGzip)).trim()}, ratio ${(median(r.b.ours) / median(withGzip)).toFixed(3)}x`);
    console.log(`       ours, each artifact p50 (they run at once): ${Object.entries(r.b.oursKindMs).map(([k, v]) => `${k} ${sec(median(v)).trim()}`).join(', ')}`);
    console.log(`       guide, each step p50 (one after another):   ${Object.entries(r.b.guideSteps).map(([k, v]) => `${k} ${sec(median(v)).trim()}`).join(', ')}`);
    const by = r.b.oursBy;
    console.log(`       output ours (zstd): ${mb(r.b.oursBytes)} = database ${mb(by.database!)} + app ${mb(by.application!)} + config ${mb(by.config!)} + uploads ${mb(by.uploads!)}`);
    console.log(`       output guide:       ${mb(guideTotal)} = plain SQL ${mb(gs.sql)} + app ${mb(gs.app)} + config ${mb(gs.config)} + uploads ${mb(gs.uploads)} (tar.gz)`);
    console.log(`       output guide, SQL gzipped: ${mb(guideGzTotal)} = SQL.gz ${mb(gs.sqlGz)} + ${mb(guideFiles)} tar.gz`);
    goal('(b) ours / guide', rb, 0.5);
    console.log(
      `goal: (b) our output <= the guide's with gzip -> ${r.b.oursBytes <= guideGzTotal ? 'MET' : 'NOT MET'} ` +
        `(${mb(r.b.oursBytes)} vs ${mb(guideGzTotal)}, ${(r.b.oursBytes / guideGzTotal).toFixed(3)}x; database alone ${mb(by.database!)} zstd vs ${mb(gs.sqlGz)} gzip)`,
    );

    console.log('');
    if (r.c.ours.length === 0) {
      console.log('(c) verification: no round produced a figure');
      verifyFailures.forEach((f) => console.log(`       ${f}`));
      console.log('goal: (c) ours / by hand <= 1.10x -> NOT MET (verifyBackup failed in every round)');
      console.log('');
      console.log(`total run time ${(since(started) / 1000).toFixed(1)} s`);
      return;
    }
    const rc = figure('(c) verification: verifyBackup({restoreTest:true}) vs zstd -d + createdb + pg_restore + dropdb by hand', 'ours', r.c.ours, 'by hand', r.c.raw);
    const rest = r.c.ours.map((o, k) => o - r.c.oursRestore[k]!);
    console.log(
      `       ours: drop-if-exists + create + restore + row counts p50 ${sec(median(r.c.oursRestore)).trim()}; ` +
        `the rest (checksums of all artifacts, unpack, --list, final drop, manifest) p50 ${sec(median(rest)).trim()} (per round: ${rest.map((x) => (x / 1000).toFixed(2)).join(' ')} s)`,
    );
    const rawRest = r.c.raw.map((o, k) => o - r.c.rawUnpack[k]! - r.c.rawRestore[k]!);
    console.log(
      `       by hand: zstd -d p50 ${sec(median(r.c.rawUnpack)).trim()}, pg_restore p50 ${sec(median(r.c.rawRestore)).trim()}, ` +
        `create + drop database p50 ${sec(median(rawRest)).trim()}`,
    );
    goal('(c) ours / by hand', rc, 1.1);
    if (verifyFailures.length) {
      console.log(`       verifyBackup FAILED in ${verifyFailures.length} of ${ROUNDS} rounds (left out of the figures above):`);
      verifyFailures.forEach((f) => console.log(`       ${f}`));
    }

    console.log('');
    console.log(`total run time ${(since(started) / 1000).toFixed(1)} s`);
  } finally {
    await dropFresh().catch(() => {});
    await rm(root, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
