/** Manifest signatures on their own: canonical form, tampering, unknown keys, rotation, short keys. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeBackupId } from '../src/activities/backup/ids.js';
import { MANIFEST_FORMAT, manifestSchema, type BackupManifest } from '../src/activities/backup/manifest.js';
import { canonicalJson, keyId, SignatureError, SigningKeyError, signingKeys, signManifest, verifyManifest, type SigningKeys } from '../src/activities/backup/signature.js';

const key = (k: string) => ({ variable: 'TEST', id: keyId(Buffer.from(k)), key: Buffer.from(k) });
const keys = (current: string, ...previous: string[]): SigningKeys => ({ current: key(current), previous: previous.map(key) });

const id = makeBackupId('production', new Date('2026-11-26T08:00:00Z'), 'abcdef');
const manifest: BackupManifest = manifestSchema.parse({
  format: MANIFEST_FORMAT,
  createdBy: 'llmchat-ops',
  id,
  environment: 'production',
  status: 'complete',
  kinds: ['config'],
  requestedBy: 'alice',
  reason: 'test',
  workflowId: 'wf',
  runId: 'run',
  startedAt: '2026-11-26T08:00:00.000Z',
  artifacts: { config: { kind: 'config', file: 'config.tar.zst', bytes: 10, sha256: 'a'.repeat(64), durationMs: 1, compression: { program: 'zstd', level: 3 } } },
});

describe('manifest signatures', () => {
  it('are independent of key order and cover every field', () => {
    const k = keys('current-key-0123456789');
    const signed = signManifest(manifest, k);
    const reordered = JSON.parse(JSON.stringify(Object.fromEntries(Object.entries(signed).reverse()))) as BackupManifest;
    assert.equal(verifyManifest(reordered, k, 'm').id, k.current.id);
    assert.equal(canonicalJson({ b: 1, a: [2, { d: 3, c: 4 }] }), '{"a":[2,{"c":4,"d":3}],"b":1}');
    for (const change of [
      (m: BackupManifest) => void (m.reason = 'other'),
      (m: BackupManifest) => void (m.artifacts.config!.sha256 = 'b'.repeat(64)),
      (m: BackupManifest) => void (m.safetyFor = 'restore-x'),
      (m: BackupManifest) => void (m.status = 'failed'),
    ]) {
      const copy = structuredClone(signed);
      change(copy);
      assert.throws(() => verifyManifest(copy, k, 'm'), (e: unknown) => e instanceof SignatureError && /does not match its signature/.test(e.message));
    }
  });

  it('rotation: an old key verifies only while listed as previous; new signatures use the current key', () => {
    const old = signManifest(manifest, keys('old-key-0123456789abc'));
    assert.equal(verifyManifest(old, keys('new-key-0123456789abc', 'old-key-0123456789abc'), 'm').id, keyId(Buffer.from('old-key-0123456789abc')));
    assert.throws(() => verifyManifest(old, keys('new-key-0123456789abc'), 'm'), /signed with key [0-9a-f]{16}, which this worker does not hold/);
    assert.equal(signManifest(old, keys('new-key-0123456789abc', 'old-key-0123456789abc')).signature?.keyId, keyId(Buffer.from('new-key-0123456789abc')));
    assert.throws(() => verifyManifest(manifest, keys('new-key-0123456789abc'), 'm'), /is not signed/);
  });

  it('keys come from the named variables and must be long enough', () => {
    process.env.LLMCHAT_TEST_SHORT_KEY = 'short';
    process.env.LLMCHAT_TEST_GOOD_KEY = 'a-long-enough-key-for-hmac';
    assert.throws(() => signingKeys({ signingKeyEnv: 'LLMCHAT_TEST_SHORT_KEY', previousSigningKeyEnvs: [] }), SigningKeyError);
    assert.throws(() => signingKeys({ signingKeyEnv: 'LLMCHAT_TEST_UNSET_KEY', previousSigningKeyEnvs: [] }), /LLMCHAT_TEST_UNSET_KEY is not set/);
    const k = signingKeys({ signingKeyEnv: 'LLMCHAT_TEST_GOOD_KEY', previousSigningKeyEnvs: [] });
    assert.equal(k.current.variable, 'LLMCHAT_TEST_GOOD_KEY');
    assert.equal(JSON.stringify(signManifest(manifest, k)).includes('a-long-enough-key'), false, 'the key never appears in the manifest');
  });
});
