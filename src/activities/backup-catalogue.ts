/**
 * The backup catalogue: the directory of each backup and its manifest (begin, seal, mark failed), listing,
 * retention, checking an artifact against its manifest, and planning a restore. Only the file system under the
 * environment's backups directory is touched here.
 */
import { mkdir, readdir, readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import { getEnvironment, type EnvironmentConfig, type OpsConfig } from '../config.js';
import { parseBackupId, parseKind, parseTarget, type BackupKind, type FileKind } from '../backup/ids.js';
import {
  catalogueEntry,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  PARTIAL_SUFFIX,
  type Artifact,
  type BackupManifest,
  type CatalogueEntry,
} from '../backup/manifest.js';
import { exists, hashFile, writeFileAtomic } from '../backup/process.js';
import { applyRetention, type RetentionPlan } from '../backup/retention.js';
import { guarded, permanent, progress, signal } from './activity-support.js';

export function backupDir(env: EnvironmentConfig, id: string): string {
  return path.join(env.paths.backups, id);
}

export function sourceDir(env: EnvironmentConfig, kind: FileKind): string {
  return kind === 'application' ? env.paths.app : env.paths[kind];
}

export async function readManifest(env: EnvironmentConfig, environment: string, backupId: string): Promise<BackupManifest> {
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

export async function saveManifest(env: EnvironmentConfig, m: BackupManifest): Promise<void> {
  await writeFileAtomic(path.join(backupDir(env, m.id), MANIFEST_FILE), JSON.stringify(m, null, 2) + '\n');
}

export async function checkArtifact(env: EnvironmentConfig, m: BackupManifest, kind: BackupKind): Promise<{ artifact: Artifact; file: string }> {
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
          allowSelfApproval: cfg.approvals.allowSelfApproval,
          artifact: { file: artifact.file, bytes: artifact.bytes, sha256: artifact.sha256 },
        };
      });
    },
  };
}
