/**
 * The backup catalogue: the directory of each backup and its manifest (begin, seal, mark failed), listing,
 * retention, and planning a restore. Only the file system under the environment's backups directory is touched
 * here; reading and writing manifests and artifacts (untrusted until proven ours) is in backup-store.ts.
 */
import { refuseDuringRelease } from '../common/temporal.js';
import { mkdir, readdir, rm } from 'node:fs/promises';
import path from 'node:path';
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { parseBackupId, parseKind, parseTarget, type BackupKind } from './ids.js';
import {
  catalogueEntry,
  manifestSchema,
  untrustedEntry,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  PARTIAL_SUFFIX,
  type Artifact,
  type BackupManifest,
  type CatalogueEntry,
} from './manifest.js';
import { exists } from './process.js';
import { applyRetention, type RetentionResult } from './retention.js';
import { verifyManifest } from './signature.js';
import { guarded, permanent } from '../common/activity-support.js';
import { backupDir, checkArtifact, keysFor, readManifest, registerSigning, saveManifest, sourceDir } from './backup-store.js';

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
  /** Whether the requester may approve it themselves (config approvals.allowSelfApproval). */
  allowSelfApproval: boolean;
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

export function createBackupCatalogueActivities(cfg: OpsConfig) {
  const settings = cfg.backup;
  const env = (name: string) => getEnvironment(cfg, name);
  registerSigning(cfg);

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
        return saveManifest(e, m);
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
     * The catalogue of an environment, newest first: every directory named like one of its backup ids. A backup
     * whose manifest is malformed, unsigned or signed with an unknown key is listed as `untrusted` with the reason;
     * the others are listed as usual.
     */
    async listBackups(input: { environment: string }): Promise<CatalogueEntry[]> {
      return guarded(async () => {
        const e = env(input.environment);
        keysFor(e); // a missing or short signing key fails the listing instead of marking every backup untrusted
        const names = await readdir(e.paths.backups).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? [] : Promise.reject(err)));
        const entries: CatalogueEntry[] = [];
        for (const name of names.sort().reverse()) {
          try {
            parseBackupId(name, input.environment);
          } catch {
            continue; // not named like one of this environment's backups: not in the catalogue
          }
          try {
            entries.push(catalogueEntry(await readManifest(e, input.environment, name)));
          } catch (err) {
            entries.push(untrustedEntry(name, input.environment, (err as Error).message));
          }
        }
        return entries;
      });
    },

    /** Retention by age and count; never the newest verified backup, never anything we did not create. */
    async pruneBackups(input: { environment: string; activeIds?: string[] }): Promise<RetentionResult> {
      return guarded(async () => {
        const e = env(input.environment);
        const keys = keysFor(e);
        // Only manifests that parse and verify take part in retention; the others are left alone and reported.
        const distrust = (raw: unknown): string | undefined => {
          const parsed = manifestSchema.safeParse(raw);
          if (!parsed.success) return `${MANIFEST_FILE} is not a valid llmchat-ops manifest (untrusted; left alone)`;
          try {
            verifyManifest(parsed.data, keys, MANIFEST_FILE);
            return undefined;
          } catch (err) {
            return `${(err as Error).message} (untrusted; left alone)`;
          }
        };
        return applyRetention(e.paths.backups, input.environment, settings.retention, { activeIds: new Set(input.activeIds ?? []), distrust });
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
        if (live) await refuseDuringRelease(input.environment, `restore of ${kind} from ${m.id}`);
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
          allowSelfApproval: cfg.approvals.allowSelfApproval,
          artifact: { file: artifact.file, bytes: artifact.bytes, sha256: artifact.sha256 },
        };
      });
    },
  };
}
