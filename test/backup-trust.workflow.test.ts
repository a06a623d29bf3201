/**
 * A backup is trusted only if llmchat-ops wrote it: signed manifests (tampering, malformed manifests, symlinks,
 * key rotation, operator import), and file archives that could escape or arm their target refused before
 * anything lands — through the real workflows on a dev server and the activities themselves.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { cp, mkdir, readdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { WorkflowFailedError } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { execa } from 'execa';
import { createActivities } from '../src/activities/index.js';
import type { ImportSummary } from '../src/activities/backup/backup-import.js';
import { makeBackupId } from '../src/activities/backup/ids.js';
import type { BackupManifest, CatalogueEntry } from '../src/activities/backup/manifest.js';
import { keyId, signingKeys, signManifest } from '../src/activities/backup/signature.js';
import type { OpsConfig } from '../src/common/config/index.js';
import type { BackupResult } from '../src/workflows/backup/backup.js';
import { treeDigest, type Fixture } from './support/backup-fixture.js';
import { startBackupStack, type BackupStack } from './support/backup-stack.js';
import { startDevServer, testConfig, testConfigYaml, workflowBundle } from './support/temporal.js';
import { ROOT } from './support/services.js';
import { craftTar, type CraftedEntry } from './support/tar-craft.js';

describe('backups are trusted only if llmchat-ops wrote them; archives cannot escape or arm their target', { timeout: 600_000 }, () => {
  let env: TestWorkflowEnvironment;
  let fx: Fixture;
  let cfg: OpsConfig;
  let stack: BackupStack;
  let baseline: BackupResult;
  const taskQueue = `test-backup-trust-${randomUUID()}`;
  const backups = () => cfg.environments.production!.paths.backups;
  const temp = () => cfg.environments.production!.paths.temp;
  let seq = 0x100000;
  const newId = () => makeBackupId('production', new Date(Date.UTC(2026, 0, 1, 0, 0, seq % 60)), (++seq).toString(16));

  const start = <T>(type: string, input: unknown) => env.client.workflow.start<(i: unknown) => Promise<T>>(type, { taskQueue, workflowId: `${type}-${randomUUID()}`, args: [input] });
  const run = async <T>(type: string, input: unknown) => (await start<T>(type, input)).result();
  /** The innermost failure (type and message) a workflow run ended with. */
  const failureOf = async (p: Promise<unknown>): Promise<{ type?: string; message: string; nonRetryable?: boolean }> => {
    try {
      await p;
    } catch (err) {
      assert.ok(err instanceof WorkflowFailedError, String(err));
      let inner = err.cause as { type?: string; message: string; nonRetryable?: boolean; cause?: unknown } | undefined;
      while (inner?.cause) inner = inner.cause as typeof inner;
      return { type: inner?.type, message: inner?.message ?? '', nonRetryable: inner?.nonRetryable };
    }
    assert.fail('the workflow should have failed');
  };
  const activityFailure = async (p: Promise<unknown>): Promise<{ type?: string; message: string; nonRetryable?: boolean }> => {
    try {
      await p;
    } catch (err) {
      const e = err as { type?: string; message: string; nonRetryable?: boolean };
      return { type: e.type, message: e.message, nonRetryable: e.nonRetryable };
    }
    assert.fail('the activity should have failed');
  };
  const manifestPath = (id: string) => path.join(backups(), id, 'manifest.json');
  const readJson = async (id: string) => JSON.parse(await readFile(manifestPath(id), 'utf8')) as BackupManifest;
  const writeJson = (id: string, m: unknown) => writeFile(manifestPath(id), JSON.stringify(m, null, 2));
  const sign = (m: BackupManifest) => signManifest(m, signingKeys(cfg.backup));

  /** A copy of the baseline backup under a new id; `edit` may change it; signed with the worker's key unless `signed` is false. */
  async function plant(edit: (m: BackupManifest, dir: string) => Promise<void> | void = () => {}, signed = true): Promise<string> {
    const id = newId();
    const dir = path.join(backups(), id);
    await cp(path.join(backups(), baseline.backupId), dir, { recursive: true });
    const m = { ...(await readJson(id)), id, workflowId: `planted-${id}` };
    await edit(m, dir);
    const { signature: _s, ...body } = m;
    await writeJson(id, signed ? sign(body) : body);
    return id;
  }

  /** A signed backup whose only artifact is `entries` as uploads.tar.zst. */
  async function plantArchive(entries: CraftedEntry[] | Buffer): Promise<string> {
    const tar = Buffer.isBuffer(entries) ? entries : craftTar(entries);
    return plant(async (m, dir) => {
      for (const f of await readdir(dir)) if (f !== 'manifest.json') await rm(path.join(dir, f));
      const raw = path.join(dir, 'uploads.tar');
      await writeFile(raw, tar);
      await execa('zstd', ['-q', '--rm', raw]);
      const { stdout } = await execa('sha256sum', [`${raw}.zst`]);
      const uploads = baseline.manifest.artifacts.uploads!;
      m.kinds = ['uploads'];
      m.artifacts = { uploads: { ...uploads, bytes: (await readFile(`${raw}.zst`)).length, sha256: stdout.split(' ')[0]! } };
      delete m.verification;
    });
  }

  before(async () => {
    stack = await startBackupStack(taskQueue, 300);
    ({ env, fx, cfg } = stack);
    baseline = await run<BackupResult>('backup', { environment: 'production', requestedBy: 'test', reason: 'baseline', verify: 'checksums' });
  });

  after(async () => {
    await stack?.stop();
    await rm(fx.root, { recursive: true, force: true });
  });

  it('signs every manifest it writes with the current key (HMAC over everything else in it)', async () => {
    const m = await readJson(baseline.backupId);
    assert.equal(m.signature?.algorithm, 'hmac-sha256');
    assert.equal(m.signature?.keyId, keyId(Buffer.from(process.env.LLMCHAT_BACKUP_SIGNING_KEY!)));
    assert.equal(m.status, 'complete');
    assert.equal(m.verification?.status, 'verified', 'the verification result was written and re-signed');
    // The file archives were listed member by member during verification.
    assert.deepEqual(m.verification?.problems, []);
    for (const kind of ['application', 'config', 'uploads'] as const) {
      assert.equal(m.verification?.fileArchives?.[kind]?.status, 'ok', kind);
      assert.ok((m.verification?.fileArchives?.[kind]?.members ?? 0) >= 2, `${kind}: members counted`);
    }
  });

  it('refuses a manifest changed after signing, in verify and restore; the catalogue marks it and still lists the others', async () => {
    const id = await plant();
    const m = await readJson(id);
    m.requestedBy = 'mallory';
    await writeJson(id, m);
    const verify = await failureOf(run('verifyBackup', { environment: 'production', backupId: id, restoreTest: false }));
    assert.equal(verify.type, 'ManifestSignatureInvalid');
    assert.match(verify.message, /does not match its signature/);
    const restore = await failureOf(run('restore', { environment: 'production', backupId: id, kind: 'uploads', target: `t-${seq}`, requestedBy: 'test' }));
    assert.equal(restore.type, 'ManifestSignatureInvalid');
    assert.equal(existsSync(path.join(temp(), 'restores', `t-${seq}`)), false);

    const list = await run<CatalogueEntry[]>('listBackups', { environment: 'production' });
    const bad = list.find((e) => e.id === id);
    assert.equal(bad?.status, 'untrusted');
    assert.match(bad?.problem ?? '', /does not match its signature/);
    assert.equal(list.find((e) => e.id === baseline.backupId)?.status, 'complete', 'the good backup is still listed as usable');
  });

  it('refuses an unsigned manifest (llmchat-ops did not write it)', async () => {
    const id = await plant(undefined, false);
    const f = await failureOf(run('restore', { environment: 'production', backupId: id, kind: 'uploads', target: `t-${seq}`, requestedBy: 'test' }));
    assert.equal(f.type, 'ManifestSignatureInvalid');
    assert.match(f.message, /not signed/);
  });

  it('a malformed manifest is a clear non-retryable error for that backup only (schema: paths, types, bounds)', async () => {
    const cases: [string, (m: BackupManifest) => void, RegExp][] = [
      ['artifact path', (m) => void (m.artifacts.uploads!.file = '../../../etc/passwd'), /artifacts\.uploads\.file: must be "uploads\.tar\.zst"/],
      ['absolute artifact path', (m) => void (m.artifacts.database!.file = '/etc/shadow'), /artifacts\.database\.file/],
      ['bytes type', (m) => void ((m.artifacts.config as unknown as Record<string, unknown>).bytes = '12'), /artifacts\.config\.bytes/],
      ['oversized reason', (m) => void (m.reason = 'x'.repeat(5000)), /reason/],
      ['unknown field', (m) => void ((m as unknown as Record<string, unknown>).restoreCommand = 'rm -rf /'), /Unrecognized key/i],
      ['kind mismatch', (m) => void (m.artifacts.uploads!.kind = 'config'), /artifacts\.uploads/],
    ];
    for (const [what, edit, message] of cases) {
      const id = await plant(edit);
      const f = await failureOf(run('verifyBackup', { environment: 'production', backupId: id, restoreTest: false }));
      assert.equal(f.type, 'ManifestInvalid', `${what}: ${f.message}`);
      assert.equal(f.nonRetryable, true, what);
      assert.match(f.message, message, what);
    }
    const notJson = await plant();
    await writeFile(manifestPath(notJson), '{"format": "llmchat-ops-backup/1", ');
    assert.equal((await failureOf(run('restore', { environment: 'production', backupId: notJson, kind: 'config', target: `t-${seq}` }))).type, 'ManifestInvalid');
    const list = await run<CatalogueEntry[]>('listBackups', { environment: 'production' });
    assert.match(list.find((e) => e.id === notJson)?.problem ?? '', /not valid JSON/);
    assert.equal(list.find((e) => e.id === baseline.backupId)?.status, 'complete');
  });

  it('never follows a symlink: not for the manifest, not for an artifact (even one whose bytes match)', async () => {
    const viaLink = await plant();
    const real = path.join(fx.root, `elsewhere-${seq}.json`);
    await cp(manifestPath(viaLink), real);
    await rm(manifestPath(viaLink));
    await symlink(real, manifestPath(viaLink));
    const f1 = await failureOf(run('verifyBackup', { environment: 'production', backupId: viaLink, restoreTest: false }));
    assert.equal(f1.type, 'ManifestInvalid');
    assert.match(f1.message, /symlink/);

    const artifactLink = await plant();
    const file = path.join(backups(), artifactLink, 'uploads.tar.zst');
    await rm(file);
    await symlink(path.join(backups(), baseline.backupId, 'uploads.tar.zst'), file); // same bytes, same checksum
    const f2 = await failureOf(run('restore', { environment: 'production', backupId: artifactLink, kind: 'uploads', target: `t-${seq}`, requestedBy: 'test' }));
    assert.equal(f2.type, 'ArtifactInvalid');
    assert.match(f2.message, /symlink/);
  });

  it('retention leaves untrusted backups alone: a forged "verified" manifest neither counts nor gets deleted', async () => {
    const forged = await plant((m) => void (m.verification = { status: 'verified', at: new Date().toISOString(), checksums: 'ok', problems: [] }), false);
    const r = await createActivities(cfg).pruneBackups({ environment: 'production' });
    const ignored = r.ignored?.find((i) => i.name === forged);
    assert.match(ignored?.why ?? '', /not signed.*untrusted; left alone/);
    assert.ok(!r.keep.some((k) => k.id === forged) && !r.remove.some((k) => k.id === forged));
    assert.ok(r.keep.some((k) => k.id === baseline.backupId));
    assert.equal(existsSync(path.join(backups(), forged)), true);
  });

  it('`safetyFor` cannot be set by a caller of the backup workflow', async () => {
    const f = await failureOf(run('backup', { environment: 'production', kinds: ['config'], safetyFor: 'restore-of-something' }));
    assert.equal(f.type, 'BadInput');
    assert.match(f.message, /safetyFor/);
  });

  describe('crafted file archives are refused naming the first bad member; nothing lands, staging is removed', () => {
    const ok: CraftedEntry[] = [{ name: './', type: '5' }, { name: './avatars/', type: '5' }, { name: './avatars/a.png', data: 'png' }];
    const classes: [string, CraftedEntry[], string, RegExp][] = [
      ['character device', [...ok, { name: './avatars/null', type: '3' }], './avatars/null', /character device/],
      ['block device', [...ok, { name: './sda', type: '4' }], './sda', /block device/],
      ['FIFO', [...ok, { name: './pipe', type: '6' }], './pipe', /FIFO/],
      ['setuid file', [...ok, { name: './run.sh', mode: 0o4755, data: '#!/bin/sh\n' }], './run.sh', /setuid/],
      ['setgid directory', [...ok, { name: './shared/', type: '5', mode: 0o2775 }], './shared/', /setgid/],
      ['hard link out of the target', [...ok, { name: './shadow', type: '1', linkname: '/etc/shadow' }], './shadow', /hard link/],
      ['absolute name', [...ok, { name: '/etc/cron.d/llmchat', data: '* * * * * root sh\n' }], '/etc/cron.d/llmchat', /absolute path/],
      ['.. name', [...ok, { name: './../../escaped', data: 'x' }], './../../escaped', /"\.\."/],
      ['symlink out', [...ok, { name: './avatars/etc', type: '2', linkname: '../../../../../etc' }], './avatars/etc', /outside the target/],
      ['member through a planted symlink', [...ok, { name: './out', type: '2', linkname: 'avatars' }, { name: './out/x', data: 'x' }], './out/x', /lies under/],
    ];

    it('restore into a new target: refused by the plan (before any approval), non-retryable, nothing created', async () => {
      for (const [what, entries, member, reason] of classes) {
        const id = await plantArchive(entries);
        const target = `crafted-${seq}`;
        const f = await failureOf(run('restore', { environment: 'production', backupId: id, kind: 'uploads', target, requestedBy: 'test' }));
        assert.equal(f.type, 'UnsafeArchive', `${what}: ${f.message}`);
        assert.equal(f.nonRetryable, true, what);
        assert.ok(f.message.includes(JSON.stringify(member)), `${what}: names ${member}: ${f.message}`);
        assert.match(f.message, reason, what);
        assert.equal(existsSync(path.join(temp(), 'restores', target)), false, `${what}: no target`);
      }
      const left = existsSync(path.join(temp(), 'restores')) ? await readdir(path.join(temp(), 'restores')) : [];
      assert.deepEqual(left.filter((n) => n.includes('crafted')), [], 'no staging directory left');
    });

    it('restore over the live uploads: refused before approval is even asked; live files unchanged', async () => {
      const before = await treeDigest(fx.dirs.uploads);
      const id = await plantArchive(classes[0]![1]);
      const f = await failureOf(run('restore', { environment: 'production', backupId: id, kind: 'uploads', requestedBy: 'test' }));
      assert.equal(f.type, 'UnsafeArchive');
      assert.deepEqual(await treeDigest(fx.dirs.uploads), before);
    });

    it('the restore activity itself (a checked plan, then a swapped archive): refuses every class and removes its staging', async () => {
      const acts = createActivities(cfg);
      const before = await treeDigest(fx.dirs.uploads);
      for (const [what, entries, member, reason] of classes) {
        const id = await plantArchive(entries);
        for (const target of [`direct-${seq}`, undefined]) {
          const f = await activityFailure(acts.restoreFiles({ environment: 'production', backupId: id, kind: 'uploads', runToken: `run-${seq}`, ...(target ? { target } : {}) }));
          assert.equal(f.type, 'UnsafeArchive', `${what}: ${f.message}`);
          assert.equal(f.nonRetryable, true);
          assert.ok(f.message.includes(JSON.stringify(member)), `${what}: ${f.message}`);
          assert.match(f.message, reason);
        }
        const restores = existsSync(path.join(temp(), 'restores')) ? await readdir(path.join(temp(), 'restores')) : [];
        assert.deepEqual(restores.filter((n) => n.startsWith('direct-')), [], `${what}: staging removed`);
        const siblings = await readdir(path.dirname(fx.dirs.uploads));
        assert.deepEqual(siblings.filter((n) => n.startsWith('uploads.')), [], `${what}: no live staging left`);
      }
      assert.deepEqual(await treeDigest(fx.dirs.uploads), before, 'live uploads unchanged');
      assert.equal(existsSync('/escaped') || existsSync('/etc/cron.d/llmchat'), false);
    });

    it('GNU tar as root: a real device node, FIFO and setuid file are refused by restore and by verification', { skip: process.getuid?.() !== 0 && 'needs root' }, async () => {
      const src = path.join(fx.root, `armed-${seq}`);
      await mkdir(src);
      await writeFile(path.join(src, 'fine.txt'), 'fine');
      await execa('mknod', [path.join(src, 'zero'), 'c', '1', '5']);
      await execa('mkfifo', [path.join(src, 'pipe')]);
      await writeFile(path.join(src, 'suid'), '#!/bin/sh\n', { mode: 0o4755 });
      await execa('chmod', ['4755', path.join(src, 'suid')]);
      const { stdout } = await execa('tar', ['--create', '--file=-', '--numeric-owner', `--directory=${src}`, '.'], { encoding: 'buffer' });
      const id = await plantArchive(Buffer.from(stdout));
      const f = await failureOf(run('restore', { environment: 'production', backupId: id, kind: 'uploads', target: `armed-${seq}`, requestedBy: 'test' }));
      assert.equal(f.type, 'UnsafeArchive');
      assert.match(f.message, /character device|FIFO|setuid/);
      const v = await failureOf(run('verifyBackup', { environment: 'production', backupId: id, restoreTest: false }));
      assert.equal(v.type, 'VerificationFailed');
      assert.match(v.message, /uploads\.tar\.zst cannot be restored safely: archive member .*(character device|FIFO|setuid)/);
      assert.deepEqual((await readJson(id)).verification?.fileArchives?.uploads, { members: 0, status: 'refused' }, 'recorded in the manifest');
    });
  });

  it('key rotation: a previous key still verifies, new signatures use the current key, an unknown key is named', async () => {
    const oldKey = `old-key-${randomUUID()}`;
    const newKey = `new-key-${randomUUID()}`;
    process.env.LLMCHAT_TEST_OLD_SIGNING_KEY = oldKey;
    process.env.LLMCHAT_TEST_NEW_SIGNING_KEY = newKey;
    const withKeys = (extra: Record<string, unknown>) =>
      testConfig({
        address: env.address,
        taskQueue: 'unused',
        environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } },
        extra: { backup: { signingKeyEnv: 'LLMCHAT_TEST_NEW_SIGNING_KEY', ...extra } },
      });
    const id = await plant();
    const { signature: _s, ...body } = await readJson(id);
    await writeJson(id, signManifest(body, { current: { variable: 'X', id: keyId(Buffer.from(oldKey)), key: Buffer.from(oldKey) }, previous: [] }));

    const rotated = createActivities(withKeys({ previousSigningKeyEnvs: ['LLMCHAT_TEST_OLD_SIGNING_KEY'] }));
    const entry = (await rotated.listBackups({ environment: 'production' })).find((e) => e.id === id);
    assert.equal(entry?.status, 'complete', 'signed with the previous key: trusted');
    const v = await rotated.verifyBackup({ environment: 'production', backupId: id, restoreTest: false });
    assert.equal(v.status, 'verified');
    assert.equal((await readJson(id)).signature?.keyId, keyId(Buffer.from(newKey)), 're-signed with the current key when written');

    const { signature: _s2, ...body2 } = await readJson(id);
    await writeJson(id, signManifest(body2, { current: { variable: 'X', id: keyId(Buffer.from(oldKey)), key: Buffer.from(oldKey) }, previous: [] }));
    const retired = createActivities(withKeys({}));
    const f = await activityFailure(retired.planRestore({ environment: 'production', backupId: id, kind: 'config' }));
    assert.equal(f.type, 'ManifestSignatureInvalid');
    assert.match(f.message, new RegExp(`signed with key ${keyId(Buffer.from(oldKey))}, which this worker does not hold`));
  });

  it('import: shows what a foreign backup holds and changes nothing; re-signs exactly the inspected manifest on --confirm', async () => {
    const id = await plant((m) => void (m.requestedBy = 'other-installation'), false);
    const before = await readFile(manifestPath(id), 'utf8');
    const shown = await run<ImportSummary>('importBackup', { environment: 'production', backupId: id, requestedBy: 'carol' });
    assert.equal(shown.imported, undefined);
    assert.match(shown.trust, /not signed/);
    assert.deepEqual(shown.artifacts.map((a) => a.kind).sort(), ['application', 'config', 'database', 'uploads']);
    assert.ok(shown.artifacts.filter((a) => a.kind !== 'database').every((a) => (a.members ?? 0) > 0), 'file archives listed member by member');
    assert.equal(await readFile(manifestPath(id), 'utf8'), before, 'inspection changes nothing');

    const wrong = await failureOf(run('importBackup', { environment: 'production', backupId: id, requestedBy: 'carol', confirm: '0'.repeat(64) }));
    assert.equal(wrong.type, 'ImportChanged');
    const done = await run<ImportSummary>('importBackup', { environment: 'production', backupId: id, requestedBy: 'carol', confirm: shown.manifestSha256 });
    assert.equal(done.imported, true);
    const m = await readJson(id);
    assert.equal(m.imported?.by, 'carol');
    assert.equal(m.imported?.from, 'unsigned');
    assert.equal(m.verification, undefined, 'foreign verification claims dropped');
    const entry = (await run<CatalogueEntry[]>('listBackups', { environment: 'production' })).find((e) => e.id === id);
    assert.equal(entry?.status, 'complete');
    assert.equal(entry?.verification, 'unverified');

    // The same through the CLI, as an operator does it: list (marked), inspect, confirm.
    const cliId = await plant(undefined, false);
    const configFile = path.join(fx.root, 'ops.config.yaml');
    await writeFile(configFile, testConfigYaml({ address: env.address, taskQueue, environments: { production: { url: 'http://127.0.0.1:1', logs: fx.dirs.logs, database: fx.database.name, app: fx.dirs.app } } }));
    const cli = (...args: string[]) => execa('node', ['bin/llmchat-ops.js', '--config', configFile, ...args], { cwd: ROOT, reject: false, env: { LLMCHAT_OPS_OPERATOR: 'erin' } });
    const listed = await cli('backups', 'list', '--env', 'production');
    assert.equal(listed.exitCode, 0, listed.stderr);
    assert.match(listed.stdout, new RegExp(`^${cliId}\\s+UNTRUSTED\\s+.*not signed`, 'm'));
    assert.match(listed.stdout, new RegExp(`^${baseline.backupId}\\s+complete`, 'm'));
    const inspected = await cli('backups', 'import', cliId);
    assert.equal(inspected.exitCode, 0, inspected.stderr);
    assert.match(inspected.stdout, /trust: .*not signed/);
    assert.match(inspected.stdout, /uploads +uploads\.tar\.zst .* ok, \d+ members checked/);
    const confirmLine = /llmchat-ops backups import (\S+) --confirm ([0-9a-f]{64})/.exec(inspected.stdout);
    assert.ok(confirmLine, inspected.stdout);
    const imported = await cli('backups', 'import', cliId, '--confirm', confirmLine[2]!);
    assert.equal(imported.exitCode, 0, imported.stderr);
    assert.match(imported.stdout, /imported: re-signed with the current key/);
    assert.equal((await readJson(cliId)).imported?.by, 'erin');
    const badConfirm = await cli('backups', 'import', cliId, '--confirm', 'abc');
    assert.equal(badConfirm.exitCode, 1);
    assert.match(badConfirm.stderr, /confirm/);

    const crafted = await plantArchive([{ name: './', type: '5' }, { name: './dev-null', type: '3' }]);
    const unsafe = await failureOf(run('importBackup', { environment: 'production', backupId: crafted, requestedBy: 'carol' }));
    assert.equal(unsafe.type, 'UnsafeArchive');
  });
});
