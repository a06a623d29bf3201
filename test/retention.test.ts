import assert from 'node:assert/strict';
import { existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { makeBackupId } from '../src/activities/backup/ids.js';
import { MANIFEST_FILE, MANIFEST_FORMAT, type BackupManifest } from '../src/activities/backup/manifest.js';
import { applyRetention, planRetention, scanBackups, type RetentionCandidate, type RetentionPlan } from '../src/activities/backup/retention.js';
import { tempDir } from './support/services.js';

const DAY = 24 * 60 * 60 * 1000;
const NOW = new Date('2026-11-26T08:00:00Z');
const POLICY = { maxAgeDays: 30, keepCount: 10 };

let seq = 0;

interface Spec {
  daysOld: number;
  env?: string;
  status?: BackupManifest['status'];
  verification?: 'verified' | 'failed' | 'unverified';
  over?: Partial<BackupManifest>;
}

/** A manifest as the backup workflow writes it, `daysOld` days before NOW; the id's timestamp agrees. */
function manifest(spec: Spec): BackupManifest {
  const env = spec.env ?? 'production';
  const startedAt = new Date(NOW.getTime() - spec.daysOld * DAY);
  const id = makeBackupId(env, startedAt, (0xa00000 + ++seq).toString(16));
  const status = spec.status ?? 'complete';
  return {
    format: MANIFEST_FORMAT,
    createdBy: 'llmchat-ops',
    id,
    environment: env,
    status,
    kinds: ['database'],
    requestedBy: 'test',
    reason: 'test',
    workflowId: `backup-${id}`,
    runId: 'run-1',
    startedAt: startedAt.toISOString(),
    ...(status === 'complete' ? { completedAt: new Date(startedAt.getTime() + 60_000).toISOString() } : {}),
    artifacts: {},
    ...(spec.verification ? { verification: { status: spec.verification, at: startedAt.toISOString(), checksums: 'ok', problems: [] } } : {}),
    ...spec.over,
  };
}

/** Writes a backup directory (manifest plus a dummy artifact) named after the manifest's id; returns the id. */
function writeBackup(dir: string, spec: Spec, name?: string): string {
  const m = manifest(spec);
  const backupDir = path.join(dir, name ?? m.id);
  mkdirSync(backupDir, { recursive: true });
  writeFileSync(path.join(backupDir, MANIFEST_FILE), JSON.stringify(m, null, 2));
  writeFileSync(path.join(backupDir, 'database.dump'), 'dump');
  return m.id;
}

const onDisk = (dir: string) => readdirSync(dir).sort();
const ids = (decisions: { id: string }[]) => decisions.map((d) => d.id).sort();
const sorted = (...xs: string[]) => [...xs].sort();

function candidates(...specs: Spec[]): RetentionCandidate[] {
  return specs.map((s) => {
    const m = manifest(s);
    return { id: m.id, manifest: m };
  });
}

describe('backup retention', () => {
  it('removes complete backups older than maxAgeDays, by manifest startedAt', async () => {
    const dir = tempDir('retention-age');
    const [d1, d10, d31, d45] = [1, 10, 31, 45].map((daysOld) => writeBackup(dir, { daysOld })) as [string, string, string, string];
    const r = await applyRetention(dir, 'production', { maxAgeDays: 30, keepCount: 10 }, { now: NOW });
    assert.deepEqual(ids(r.keep), sorted(d1, d10));
    assert.deepEqual(ids(r.remove), sorted(d31, d45));
    for (const d of r.remove) assert.match(d.why, /older than the 30-day limit/);
    assert.deepEqual(r.ignored, []);
    assert.deepEqual(onDisk(dir), sorted(d1, d10));
  });

  it('keeps only the newest keepCount complete backups', async () => {
    const dir = tempDir('retention-count');
    const [a, b, c, d, e] = [1, 2, 3, 4, 5].map((daysOld) => writeBackup(dir, { daysOld })) as [string, string, string, string, string];
    const r = await applyRetention(dir, 'production', { maxAgeDays: 30, keepCount: 2 }, { now: NOW });
    assert.deepEqual(ids(r.keep), sorted(a, b));
    assert.deepEqual(ids(r.remove), sorted(c, d, e));
    assert.deepEqual(onDisk(dir), sorted(a, b));
  });

  it('always keeps the newest verified backup, even the oldest beyond both limits; a newer unverified one is kept by count', async () => {
    const dir = tempDir('retention-verified');
    const young = writeBackup(dir, { daysOld: 1 });
    const second = writeBackup(dir, { daysOld: 5, verification: 'unverified' });
    const badVerify = writeBackup(dir, { daysOld: 40, verification: 'failed' });
    const verified = writeBackup(dir, { daysOld: 60, verification: 'verified' });
    const r = await applyRetention(dir, 'production', { maxAgeDays: 30, keepCount: 1 }, { now: NOW });
    assert.deepEqual(ids(r.keep), sorted(young, verified));
    assert.deepEqual(ids(r.remove), sorted(second, badVerify));
    assert.match(r.keep.find((k) => k.id === verified)!.why, /newest verified/);
    assert.deepEqual(onDisk(dir), sorted(young, verified));
  });

  it('with `distrust`, a forged newer "verified" manifest is ignored, so the real newest verified backup stays protected', async () => {
    const dir = tempDir('retention-distrust');
    const young = writeBackup(dir, { daysOld: 1 });
    const forged = writeBackup(dir, { daysOld: 35, verification: 'verified', over: { requestedBy: 'forger' } });
    const real = writeBackup(dir, { daysOld: 60, verification: 'verified' });
    const distrust = (m: unknown) => ((m as BackupManifest).requestedBy === 'forger' ? 'signature does not match' : undefined);
    const naive = await applyRetention(dir, 'production', { maxAgeDays: 30, keepCount: 1 }, { now: NOW, dryRun: true });
    assert.deepEqual(ids(naive.remove), [real], 'without distrust the forged manifest would get the real one deleted');
    const r = await applyRetention(dir, 'production', { maxAgeDays: 30, keepCount: 1 }, { now: NOW, distrust });
    assert.deepEqual(ids(r.keep), sorted(young, real));
    assert.deepEqual(r.remove, []);
    assert.deepEqual(r.ignored, [{ name: forged, why: 'signature does not match' }]);
    assert.deepEqual(onDisk(dir), sorted(young, forged, real));
  });

  it('protects only the newest verified backup, not every verified one', () => {
    const [young, v40, v60] = candidates({ daysOld: 1 }, { daysOld: 40, verification: 'verified' }, { daysOld: 60, verification: 'verified' }) as [RetentionCandidate, RetentionCandidate, RetentionCandidate];
    const plan = planRetention([v60, young, v40], NOW, { maxAgeDays: 30, keepCount: 1 });
    assert.deepEqual(ids(plan.keep), sorted(young.id, v40.id));
    assert.deepEqual(ids(plan.remove), [v60.id]);
  });

  it('a verified backup among the newest uses its keepCount slot rather than adding one', () => {
    const [verified, older] = candidates({ daysOld: 1, verification: 'verified' }, { daysOld: 2 }) as [RetentionCandidate, RetentionCandidate];
    const plan = planRetention([older, verified], NOW, { maxAgeDays: 30, keepCount: 1 });
    assert.deepEqual(ids(plan.keep), [verified.id]);
    assert.deepEqual(ids(plan.remove), [older.id]);
  });

  it('breaks ties in startedAt by id (the larger id counts as newer)', () => {
    const [a, b] = candidates({ daysOld: 3 }, { daysOld: 3 }) as [RetentionCandidate, RetentionCandidate];
    const sameStart = { ...b, manifest: { ...b.manifest, startedAt: a.manifest.startedAt } };
    const larger = a.id > sameStart.id ? a : sameStart;
    const smaller = larger === a ? sameStart : a;
    for (const order of [[a, sameStart], [sameStart, a]]) {
      const plan: RetentionPlan = planRetention(order, NOW, { maxAgeDays: 30, keepCount: 1 });
      assert.deepEqual(ids(plan.keep), [larger.id]);
      assert.deepEqual(ids(plan.remove), [smaller.id]);
    }
  });

  it('removes failed/in-progress backups older than a day, keeps younger ones and active ones, and does not count them', async () => {
    const dir = tempDir('retention-partial');
    const complete = writeBackup(dir, { daysOld: 2 });
    const oldFailed = writeBackup(dir, { daysOld: 2, status: 'failed' });
    const oldRunning = writeBackup(dir, { daysOld: 3, status: 'in-progress' });
    const youngFailed = writeBackup(dir, { daysOld: 0.5, status: 'failed' });
    const youngRunning = writeBackup(dir, { daysOld: 0.5, status: 'in-progress' });
    const activeRunning = writeBackup(dir, { daysOld: 5, status: 'in-progress' });
    const r = await applyRetention(dir, 'production', { maxAgeDays: 30, keepCount: 1 }, { now: NOW, activeIds: new Set([activeRunning]) });
    assert.deepEqual(ids(r.remove), sorted(oldFailed, oldRunning));
    assert.deepEqual(ids(r.keep), sorted(complete, youngFailed, youngRunning, activeRunning));
    assert.match(r.keep.find((k) => k.id === activeRunning)!.why, /being written/);
    assert.deepEqual(onDisk(dir), sorted(complete, youngFailed, youngRunning, activeRunning));
  });

  it('leaves foreign things alone and reports them in ignored', async () => {
    const dir = tempDir('retention-foreign');
    const elsewhere = tempDir('retention-elsewhere');
    const ours = writeBackup(dir, { daysOld: 1 });
    const oursOld = writeBackup(dir, { daysOld: 90 });

    writeFileSync(path.join(dir, 'notes.txt'), 'mine');
    mkdirSync(path.join(dir, 'my-stuff'));
    writeFileSync(path.join(dir, 'my-stuff', 'keep.txt'), 'mine');

    const noManifest = manifest({ daysOld: 90 }).id;
    mkdirSync(path.join(dir, noManifest));
    writeFileSync(path.join(dir, noManifest, 'database.dump'), 'dump');

    const someoneElse = writeBackup(dir, { daysOld: 90, over: { createdBy: 'someone-else' as 'llmchat-ops' } });
    const staging = writeBackup(dir, { daysOld: 90, env: 'staging' });

    // A copy of one backup's directory under another backup's name: the manifest does not vouch for it.
    const mismatched = manifest({ daysOld: 90 }).id;
    writeBackup(dir, { daysOld: 90 }, mismatched);

    // Named with a production id, but the manifest says it belongs to another environment.
    const envMismatch = writeBackup(dir, { daysOld: 90, over: { environment: 'staging' } });

    const fileNamedLikeBackup = manifest({ daysOld: 90 }).id;
    writeFileSync(path.join(dir, fileNamedLikeBackup), 'not a directory');

    // A symlink named like an old backup of ours, pointing at a real, otherwise-removable backup elsewhere.
    const linked = writeBackup(elsewhere, { daysOld: 90 });
    symlinkSync(path.join(elsewhere, linked), path.join(dir, linked), 'dir');

    const scan = await scanBackups(dir, 'production');
    assert.deepEqual(ids(scan.candidates), sorted(ours, oursOld));

    const r = await applyRetention(dir, 'production', POLICY, { now: NOW });
    assert.deepEqual(ids(r.remove), [oursOld]);
    assert.deepEqual(ids(r.keep), [ours]);
    const why = Object.fromEntries(r.ignored.map((i) => [i.name, i.why]));
    assert.deepEqual(Object.keys(why).sort(), sorted('notes.txt', 'my-stuff', noManifest, someoneElse, staging, mismatched, envMismatch, fileNamedLikeBackup, linked));
    assert.match(why['notes.txt']!, /foreign file/);
    assert.match(why['my-stuff']!, /foreign directory/);
    assert.match(why[noManifest]!, /no manifest\.json/);
    assert.match(why[someoneElse]!, /someone-else/);
    assert.match(why[staging]!, /environment "staging"/);
    assert.match(why[mismatched]!, /id mismatch/);
    assert.match(why[envMismatch]!, /for environment "staging", not production/);
    assert.match(why[fileNamedLikeBackup]!, /not a directory/);
    assert.match(why[linked]!, /symbolic link/);

    assert.deepEqual(onDisk(dir), sorted(ours, 'notes.txt', 'my-stuff', noManifest, someoneElse, staging, mismatched, envMismatch, fileNamedLikeBackup, linked));
    assert.equal(readFileSync(path.join(dir, 'my-stuff', 'keep.txt'), 'utf8'), 'mine');
    assert.ok(existsSync(path.join(dir, noManifest, 'database.dump')));
    assert.ok(lstatSync(path.join(dir, linked)).isSymbolicLink());
    assert.ok(lstatSync(path.join(elsewhere, linked)).isDirectory());
    assert.deepEqual(onDisk(path.join(elsewhere, linked)), ['database.dump', MANIFEST_FILE].sort());
  });

  it('dryRun plans the same removals but deletes nothing', async () => {
    const dir = tempDir('retention-dry');
    const all = [1, 10, 31, 45].map((daysOld) => writeBackup(dir, { daysOld }));
    const before = onDisk(dir);
    const r = await applyRetention(dir, 'production', POLICY, { now: NOW, dryRun: true });
    assert.deepEqual(ids(r.remove), sorted(all[2]!, all[3]!));
    assert.deepEqual(onDisk(dir), before);
    assert.equal(before.length, 4);
  });

  it('a missing backup directory is empty, not an error', async () => {
    const missing = path.join(tempDir('retention-missing'), 'nope');
    assert.deepEqual(await scanBackups(missing, 'production'), { candidates: [], ignored: [] });
    assert.deepEqual(await applyRetention(missing, 'production', POLICY, { now: NOW }), { keep: [], remove: [], ignored: [] });
  });

  it('rejects an invalid policy with a RangeError, before deleting anything', async () => {
    const dir = tempDir('retention-policy');
    const old = writeBackup(dir, { daysOld: 45 });
    const bad = [
      { maxAgeDays: 30, keepCount: 0 },
      { maxAgeDays: 30, keepCount: -1 },
      { maxAgeDays: 30, keepCount: 1.5 },
      { maxAgeDays: 0, keepCount: 1 },
      { maxAgeDays: -3, keepCount: 1 },
      { maxAgeDays: Number.NaN, keepCount: 1 },
    ];
    for (const policy of bad) {
      assert.throws(() => planRetention([], NOW, policy), RangeError, JSON.stringify(policy));
      await assert.rejects(applyRetention(dir, 'production', policy, { now: NOW }), RangeError);
    }
    assert.deepEqual(onDisk(dir), [old]);
  });
});
