/**
 * Cleanup that cannot be redirected (issue 15, point 6), on the real file system, no Temporal needed:
 * - a real race: while cleanTree deletes old logs in <root>/sub, another process keeps swapping <root>/sub for a
 *   symlink to an outside directory holding files of the same names and ages — not one outside file may go;
 * - the same swap made at the worst moment (right before a deletion, through the test seam) every time;
 * - a worker that cannot read another process's open files (a non-root worker: /proc/<pid>/fd of root's
 *   processes is unreadable) keeps every file and says why.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { chown, mkdir, open, readdir, rename, symlink, unlink, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { cleanTree, isLogName, type CleanupRule } from '../src/activities/maintenance/cleanup.js';
import { ROOT, tempDir } from './support/services.js';

const DAY = 86_400_000;
const FILES = 5000;

async function oldFiles(dir: string, n: number): Promise<void> {
  await mkdir(dir, { recursive: true });
  const t = new Date(Date.now() - 30 * DAY);
  for (let i = 0; i < n; i++) {
    const f = path.join(dir, `app-${i}.log`);
    await writeFile(f, 'x'.repeat(64));
    await utimes(f, t, t);
  }
}

const rule = (root: string): CleanupRule => ({ category: 'logs', root, maxAgeDays: 7, matches: isLogName });

describe('cleanup that a concurrent symlink swap cannot redirect (real file system)', () => {
  it('a process swapping a directory for a symlink to an outside directory during the run: nothing outside is deleted', { timeout: 120_000 }, async () => {
    const root = tempDir('race-root');
    const outside = tempDir('race-outside');
    await oldFiles(path.join(root, 'sub'), FILES);
    await oldFiles(outside, FILES);
    // The swapper: renameat2(RENAME_EXCHANGE) of <root>/sub (the directory) and <root>/sub.link (a symlink to the
    // outside directory), atomically and as fast as it can: each name is a directory half the time and a symlink
    // to the outside the other half.
    await symlink(outside, path.join(root, 'sub.link'));
    const swapper = spawn('python3', ['-c', `
import ctypes, signal, sys
libc = ctypes.CDLL(None, use_errno=True)
a, b = sys.argv[1].encode(), sys.argv[2].encode()
stop = False
def on_term(*_):
    global stop
    stop = True
signal.signal(signal.SIGTERM, on_term)
swaps = 0
while not stop:
    if libc.renameat2(-100, a, -100, b, 2) == 0:
        swaps += 1
if swaps % 2:
    libc.renameat2(-100, a, -100, b, 2)
print(swaps)
`, path.join(root, 'sub'), path.join(root, 'sub.link')], { stdio: ['ignore', 'pipe', 'inherit'] });
    let swaps = '';
    swapper.stdout.on('data', (d: Buffer) => (swaps += d.toString()));
    const exited = new Promise((r) => swapper.on('exit', r));
    let deleted = 0;
    try {
      await new Promise((r) => setTimeout(r, 200));
      // Rounds until everything inside is gone (a file seen while its directory was away is found next round).
      for (let round = 0; round < 50; round++) {
        const r = await cleanTree(rule(root), [], { dryRun: false, writers: { open: new Set(), unchecked: [] } });
        deleted += r.count;
        if (deleted >= FILES) break;
      }
    } finally {
      swapper.kill('SIGTERM');
      await exited;
    }
    const outsideLeft = (await readdir(outside)).length;
    console.log(`race: ${swaps.trim()} swaps during the run; ${deleted} files deleted inside; ${FILES - outsideLeft} deleted outside`);
    assert.ok(Number(swaps) > 100, `the swapper raced the run (${swaps.trim()} swaps)`);
    assert.equal(outsideLeft, FILES, 'not one file outside the root was deleted');
    assert.equal(deleted, FILES, 'every old file inside was deleted');
    assert.deepEqual(await readdir(path.join(root, 'sub')), []);
  });

  it('the swap at the worst moment, right before each deletion: the deletion stays in the directory the walk opened', { timeout: 60_000 }, async () => {
    const root = tempDir('swap-root');
    const outside = tempDir('swap-outside');
    await oldFiles(path.join(root, 'a', 'b'), 3);
    await oldFiles(path.join(outside, 'b'), 3);
    let swapped = 0;
    const r = await cleanTree(rule(root), [], {
      dryRun: false,
      writers: { open: new Set(), unchecked: [] },
      beforeDelete: async (rel) => {
        // a/ (an ancestor of the file's directory) becomes a symlink to the outside directory, whose b/ holds the
        // same names: a path-based unlink of <root>/a/b/<name> now means <outside>/b/<name>.
        if (existsSync(path.join(root, 'a.moved'))) {
          await unlink(path.join(root, 'a'));
          await rename(path.join(root, 'a.moved'), path.join(root, 'a'));
        }
        await rename(path.join(root, 'a'), path.join(root, 'a.moved'));
        await symlink(outside, path.join(root, 'a'));
        swapped++;
        assert.ok(rel.startsWith('a/b/'));
      },
    });
    assert.equal(swapped, 3);
    assert.deepEqual((await readdir(path.join(outside, 'b'))).sort(), ['app-0.log', 'app-1.log', 'app-2.log'], 'outside untouched');
    assert.equal(r.count, 3, 'the files the walk found were deleted, where they are');
    assert.deepEqual(await readdir(path.join(root, 'a.moved', 'b')), []);
  });

  it('a worker that cannot read other processes\' open files asks the kernel (a write lease): a file held open is kept, saying why', { timeout: 60_000 }, async () => {
    const root = tempDir('unchecked-root');
    await oldFiles(path.join(root, 'logs'), 2);
    // The tree belongs to nobody, who may delete in it; but as nobody, /proc/<pid>/fd of root's processes
    // (this test's, the database's, …) cannot be read: whether they write these files is unknown to /proc. This
    // (root) process holds app-0.log open for writing.
    for (const p of [root, path.join(root, 'logs'), ...['app-0.log', 'app-1.log'].map((f) => path.join(root, 'logs', f))]) await chown(p, 65534, 65534);
    const held = await open(path.join(root, 'logs', 'app-0.log'), 'a');
    const script = `import(${JSON.stringify(path.join(ROOT, 'dist/src/activities/maintenance/cleanup.js'))}).then(async (m) => {
      const r = await m.cleanTree({ category: 'logs', root: ${JSON.stringify(root)}, maxAgeDays: 7, matches: m.isLogName }, [], { dryRun: false });
      console.log(JSON.stringify(r));
    })`;
    const asNobody = (PATH: string) => execa('/usr/bin/setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', process.execPath, '-e', script], { cwd: '/', env: { PATH }, extendEnv: false });
    try {
      const r = JSON.parse((await asNobody('/usr/bin:/bin')).stdout) as Awaited<ReturnType<typeof cleanTree>>;
      console.log(`as nobody: deleted ${JSON.stringify(r.files.map((f) => f.path))}, kept ${JSON.stringify(r.skipped)}`);
      assert.deepEqual(r.files.map((f) => f.path), ['logs/app-1.log'], 'the file nobody has open goes');
      assert.deepEqual(r.skipped.map((s) => s.path), ['logs/app-0.log'], 'the held one stays');
      assert.match(r.skipped[0]!.why, /writers cannot be checked in \/proc: \d+ process\(es\) whose open files cannot be read \(\/proc\/\d+\/fd: EACCES.*a write lease was refused \(errno 11\): some process has it open/);

      // Without a way to ask the kernel either (no python3 on the PATH): every file is kept, saying why.
      await oldFiles(path.join(root, 'logs2'), 1);
      for (const p of [path.join(root, 'logs2'), path.join(root, 'logs2', 'app-0.log')]) await chown(p, 65534, 65534);
      const r2 = JSON.parse((await asNobody('/nonexistent')).stdout) as Awaited<ReturnType<typeof cleanTree>>;
      assert.equal(r2.count, 0);
      assert.deepEqual(r2.skipped.map((s) => s.path), ['logs/app-0.log', 'logs2/app-0.log']);
      for (const s of r2.skipped) assert.match(s.why, /writers cannot be checked in \/proc: .*EACCES.*no lease check either \(python3/);
    } finally {
      await held.close();
    }
    assert.deepEqual((await readdir(path.join(root, 'logs'))).sort(), ['app-0.log']);
  });
});
