/**
 * weeklyCleanup on the real dev server and file system: a temporary tree with files of chosen ages, a symlink
 * to a file outside the root, a directory symlink, names with spaces and newlines, a log held open by a writer.
 * The dry run lists exactly what the real run then deletes; nothing outside a root or behind a symlink is
 * touched; the weekly backup is the backup workflow as a child; unsafe roots are refused before anything goes.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, open, readdir, symlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import type { OpsConfig } from '../src/common/config/index.js';
import { createWorker } from '../src/worker.js';
import type { CleanupReport } from '../src/workflows/maintenance/weekly-cleanup.js';
import { scratchDatabase, tempDir, PG } from './support/services.js';
import { startDevServer, testConfig, workflowBundle } from './support/temporal.js';

const DAY = 86_400_000;
const TIMEOUT = { timeout: 300_000 };

async function file(p: string, ageDays: number, bytes = 100): Promise<void> {
  await mkdir(path.dirname(p), { recursive: true });
  await writeFile(p, Buffer.alloc(bytes, 120));
  const t = new Date(Date.now() - ageDays * DAY - 3_600_000);
  await utimes(p, t, t);
}

describe('weeklyCleanup (real dev server, file system, backup child)', () => {
  let env: TestWorkflowEnvironment;
  let cfg: OpsConfig;
  let worker: Worker;
  let running: Promise<void>;
  let root: string;
  let outside: string;
  let db: Awaited<ReturnType<typeof scratchDatabase>>;
  const taskQueue = `test-cleanup-${randomUUID()}`;
  const start = (input: unknown) =>
    env.client.workflow.start<(i: unknown) => Promise<CleanupReport>>('weeklyCleanup', { taskQueue, workflowId: `cleanup-${randomUUID()}`, args: [input] });

  before(async () => {
    process.env.LLMCHAT_DB_PASSWORD ??= PG.password;
    env = await startDevServer();
    db = await scratchDatabase('llmchat_cl');
    root = tempDir('cleanup');
    outside = tempDir('cleanup-outside');
    const logs = path.join(root, 'logs');
    // logs: old rotated logs go; a fresh log stays; an old log held open by a writer stays; other names stay.
    await file(path.join(logs, 'app.log.1'), 10);
    await file(path.join(logs, 'old.log'), 8);
    await file(path.join(logs, 'fresh.log'), 2);
    await file(path.join(logs, 'notes.txt'), 100);
    await file(path.join(logs, 'nested', 'worker.log.2.gz'), 9, 250);
    await file(path.join(logs, 'held.log'), 30);
    // tmp: only llmchat-* older than a day.
    await file(path.join(logs, 'tmp', 'llmchat-export 1.json'), 2);
    await file(path.join(logs, 'tmp', 'llmchat-new'), 0);
    await file(path.join(logs, 'tmp', 'other-old'), 5);
    // uploads: anything older than 30 days, with awkward names.
    await file(path.join(logs, 'uploads', 'a file with spaces.png'), 31, 1000);
    await file(path.join(logs, 'uploads', 'line\nbreak.txt'), 45, 10);
    await file(path.join(logs, 'uploads', 'avatars', 'recent.png'), 3);
    // Outside the roots: old files that symlinks inside the roots point to.
    await file(path.join(outside, 'precious.log'), 100);
    await file(path.join(outside, 'dir', 'precious-upload.png'), 100);
    await symlink(path.join(outside, 'precious.log'), path.join(logs, 'link-out.log'));
    await symlink(path.join(outside, 'dir'), path.join(logs, 'uploads', 'linked-dir'));
    await symlink(path.join(outside, 'dir'), path.join(logs, 'linked-logs-dir.log.1'));

    cfg = testConfig({
      address: env.address,
      taskQueue,
      environments: {
        production: { url: 'http://127.0.0.1:1', logs, database: db.name, app: path.join(root, 'app') },
        // paths.logs is "/" (uploads, backups… under /tmp-ish dirs): cleanup must refuse it.
        rooted: { url: 'http://127.0.0.1:1', logs: '/', database: db.name, app: path.join(root, 'app') },
      },
    });
    // A second unsafe case: the uploads root of "unsafe" is inside its backups directory.
    const prodPaths = cfg.environments.production!.paths;
    cfg.environments.unsafe = { ...structuredClone(cfg.environments.production!), paths: { ...prodPaths, uploads: path.join(prodPaths.backups, 'x') } };
    await mkdir(path.join(prodPaths.backups, 'x'), { recursive: true });
    // The config directory lies below the logs root: an old log in it is never touched.
    await file(path.join(prodPaths.config, 'audit.log'), 60);
    worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
    running = worker.run();
  });

  after(async () => {
    worker?.shutdown();
    await running;
    await db?.drop();
    await env?.teardown();
  });

  it('dry run lists, the real run deletes exactly that; symlinks, open files and other names are left alone; backup as a child', TIMEOUT, async () => {
    const logs = cfg.environments.production!.paths.logs;
    const held = await open(path.join(logs, 'held.log'), 'a');
    try {
      const t = new Date(Date.now() - 30 * DAY);
      await held.write('still writing\n');
      await utimes(path.join(logs, 'held.log'), t, t);

      const dry = await (await start({ environment: 'production', dryRun: true, requestedBy: 'test' })).result();
      const listed = (r: CleanupReport) => Object.fromEntries(r.files.map((f) => [f.category, f.files.map((x) => x.path)]));
      const want = {
        logs: ['app.log.1', 'nested/worker.log.2.gz', 'old.log'],
        temp: ['llmchat-export 1.json'],
        uploads: ['a file with spaces.png', 'line\nbreak.txt'],
      };
      assert.deepEqual(listed(dry), want);
      assert.equal(dry.totals.files, 6);
      assert.equal(dry.totals.bytes, 100 + 250 + 100 + 100 + 1000 + 10);
      assert.equal(dry.backup.status, 'dry-run');
      assert.ok(['listed', 'unavailable'].includes(dry.os.status), dry.os.detail);
      assert.ok(existsSync(path.join(logs, 'old.log')) && existsSync(path.join(logs, 'uploads', 'line\nbreak.txt')), 'a dry run deletes nothing');
      const skippedLogs = dry.files.find((f) => f.category === 'logs')!.skipped;
      assert.deepEqual(skippedLogs.map((s) => [s.path, s.why.split(':')[0]]), [
        ['backups', 'protected directory (app, config or backups)'],
        ['config', 'protected directory (app, config or backups)'],
        ['held.log', 'open for writing by a running process'],
        ['link-out.log', 'symlink'],
        ['linked-logs-dir.log.1', 'symlink'],
        ['uploads/linked-dir', 'symlink'],
      ]);

      const real = await (await start({ environment: 'production', requestedBy: 'test' })).result();
      assert.deepEqual(listed(real), want);
      assert.equal(real.totals.files, 6);
      assert.equal(real.backup.status, 'created');
      assert.match(real.backup.backupId ?? '', /^production-/);
      assert.equal(real.os.status, 'disabled');
      assert.ok(real.retention.keep.some((k) => k.id === real.backup.backupId), 'the new backup is kept by retention');

      // What is left: exactly the files that had to stay, and everything outside untouched.
      const left = async (dir: string): Promise<string[]> =>
        (await readdir(dir, { recursive: true, withFileTypes: true })).filter((d) => !d.isDirectory()).map((d) => path.relative(logs, path.join(d.parentPath, d.name))).sort();
      const remaining = await left(logs);
      for (const gone of ['app.log.1', 'old.log', 'nested/worker.log.2.gz', 'tmp/llmchat-export 1.json', 'uploads/a file with spaces.png', 'uploads/line\nbreak.txt']) {
        assert.ok(!remaining.includes(gone), `${gone} deleted`);
      }
      for (const kept of ['config/audit.log', 'fresh.log', 'notes.txt', 'held.log', 'link-out.log', 'tmp/llmchat-new', 'tmp/other-old', 'uploads/avatars/recent.png']) {
        assert.ok(remaining.includes(kept), `${kept} kept`);
      }
      assert.ok(existsSync(path.join(outside, 'precious.log')) && existsSync(path.join(outside, 'dir', 'precious-upload.png')), 'symlink targets outside the root untouched');
    } finally {
      await held.close();
    }
  });

  it('refuses a root of / or one holding the app directory, before deleting anything; bad input', TIMEOUT, async () => {
    const failure = async (input: unknown) => {
      try {
        await (await start(input)).result();
      } catch (err) {
        assert.ok(err instanceof WorkflowFailedError);
        const c = err.cause as { type?: string; message: string; cause?: { type?: string; message: string } };
        return c.cause?.type ? c.cause : c;
      }
      assert.fail(`${JSON.stringify(input)} should have failed`);
    };
    const rooted = await failure({ environment: 'rooted' });
    assert.equal(rooted.type, 'UnsafeRoot');
    assert.match(rooted.message, /system directory \//);
    const unsafe = await failure({ environment: 'unsafe' });
    assert.equal(unsafe.type, 'UnsafeRoot');
    assert.match(unsafe.message, /is \(inside\) .*backups/);
    for (const input of [{ environment: 'production', dryRun: 'yes' }, { environment: '../../etc' }, { environment: 'nowhere' }]) {
      const f = await failure(input);
      assert.ok(f.type === 'BadInput' || f.type === 'UnknownEnvironmentError', `${JSON.stringify(input)} → ${f.type}`);
    }
  });
});
