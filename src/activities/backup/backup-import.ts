/**
 * Importing a backup llmchat-ops did not sign: inspect it (every check but the signature), then re-sign exactly the
 * inspected manifest with the current key. Only the file system under the environment's backups directory.
 */
import { createHash } from 'node:crypto';
import { getEnvironment, type EnvironmentConfig, type OpsConfig } from '../../common/config/index.js';
import type { BackupKind } from './ids.js';
import { MANIFEST_FILE, type BackupManifest } from './manifest.js';
import { SignatureError, verifyManifest } from './signature.js';
import { guarded, permanent } from '../common/activity-support.js';
import { checkArtifact, keysFor, readUntrustedManifest, registerSigning, saveManifest } from './backup-store.js';

/** What an operator sees before importing a backup llmchat-ops did not sign (or signed with a retired key). */
export interface ImportSummary {
  backupId: string;
  environment: string;
  status: BackupManifest['status'];
  kinds: BackupKind[];
  requestedBy: string;
  reason: string;
  startedAt: string;
  completedAt?: string;
  /** Why the backup is not trusted as it stands (unsigned, unknown key, mismatch), or that it already is. */
  trust: string;
  /** sha256 of manifest.json as inspected: the import re-signs only this exact manifest. */
  manifestSha256: string;
  /** Every artifact re-read (checksum matches); file archives listed and every member checked. */
  artifacts: { kind: BackupKind; file: string; bytes: number; sha256: string; members?: number }[];
  imported?: boolean;
}

async function inspectForeign(e: EnvironmentConfig, environment: string, backupId: string): Promise<{ summary: ImportSummary; manifest: BackupManifest }> {
  const { manifest: m, text } = await readUntrustedManifest(e, environment, backupId);
  if (m.status !== 'complete') throw permanent(`Backup ${m.id} is ${m.status}, not complete; only complete backups can be imported`, 'BackupIncomplete');
  let trust: string;
  try {
    verifyManifest(m, keysFor(e), `${backupId}/${MANIFEST_FILE}`);
    trust = 'already signed with a key this worker holds';
  } catch (err) {
    if (!(err instanceof SignatureError)) throw err;
    trust = err.message;
  }
  const artifacts: ImportSummary['artifacts'] = [];
  for (const kind of m.kinds) {
    const { artifact: a, members } = await checkArtifact(e, m, kind);
    artifacts.push({ kind, file: a.file, bytes: a.bytes, sha256: a.sha256, ...(members !== undefined ? { members } : {}) });
  }
  const summary: ImportSummary = {
    backupId: m.id,
    environment: m.environment,
    status: m.status,
    kinds: m.kinds,
    requestedBy: m.requestedBy,
    reason: m.reason,
    startedAt: m.startedAt,
    ...(m.completedAt ? { completedAt: m.completedAt } : {}),
    trust,
    manifestSha256: createHash('sha256').update(text).digest('hex'),
    artifacts,
  };
  return { summary, manifest: m };
}

export function createBackupImportActivities(cfg: OpsConfig) {
  const env = (name: string) => getEnvironment(cfg, name);
  registerSigning(cfg);

  return {
    /**
     * Shows what a foreign backup (copied into the backups directory, listed as `untrusted`) holds, after every
     * check short of the signature: manifest schema, plain artifact files (no symlinks), checksums, and every
     * member of each file archive. Changes nothing.
     */
    async inspectForeignBackup(input: { environment: string; backupId: string }): Promise<ImportSummary> {
      return guarded(async () => (await inspectForeign(env(input.environment), input.environment, input.backupId)).summary);
    },

    /**
     * Re-signs a foreign backup with the current key after the same checks, only if its manifest is still exactly
     * the one the operator inspected (`manifestSha256`). Its recorded verification is dropped (it was not ours):
     * run `backups verify` next. The manifest records who imported it and what had signed it before.
     */
    async importForeignBackup(input: { environment: string; backupId: string; requestedBy: string; manifestSha256: string }): Promise<ImportSummary> {
      return guarded(async () => {
        const e = env(input.environment);
        const { summary, manifest } = await inspectForeign(e, input.environment, input.backupId);
        if (summary.manifestSha256 !== input.manifestSha256) {
          throw permanent(`Backup ${input.backupId}: manifest.json changed since it was inspected (sha256 ${summary.manifestSha256.slice(0, 12)}…, confirmed ${String(input.manifestSha256).slice(0, 12)}…); inspect it again`, 'ImportChanged');
        }
        const { verification: _dropped, ...rest } = manifest;
        const from = manifest.signature ? `signed with key ${manifest.signature.keyId}` : 'unsigned';
        await saveManifest(e, { ...rest, imported: { by: input.requestedBy, at: new Date().toISOString(), from } });
        return { ...summary, imported: true };
      });
    },
  };
}
