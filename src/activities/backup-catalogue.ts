/**
 * The backup catalogue: the directory of each backup and its manifest (begin, seal, mark failed), listing,
 * retention, checking an artifact against its manifest, and planning a restore. Only the file system under the
 * environment's backups directory is touched here.
 */
import { createHash } from 'node:crypto';
import { lstat, mkdir, readdir, rm, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import { getEnvironment, type BackupSettings, type EnvironmentConfig, type OpsConfig } from '../config.js';
import { listArchive, openPlainFile } from '../backup/archive-check.js';
import { signingKeys, SignatureError, SigningKeyError, signManifest, verifyManifest, type SigningKeys } from '../backup/signature.js';
import { CorruptArchiveError, UnsafeArchiveError } from '../backup/tar-members.js';
import { parseBackupId, parseKind, parseTarget, type BackupKind, type FileKind } from '../backup/ids.js';
import {
  catalogueEntry,
  ManifestInvalidError,
  manifestSchema,
  parseManifest,
  untrustedEntry,
  MANIFEST_FILE,
  MANIFEST_FORMAT,
  PARTIAL_SUFFIX,
  type Artifact,
  type BackupManifest,
  type CatalogueEntry,
} from '../backup/manifest.js';
import { exists, writeFileAtomic } from '../backup/process.js';
import { applyRetention, type RetentionResult } from '../backup/retention.js';
import { guarded, permanent, progress, signal } from './activity-support.js';

export function backupDir(env: EnvironmentConfig, id: string): string {
  return path.join(env.paths.backups, id);
}

export function sourceDir(env: EnvironmentConfig, kind: FileKind): string {
  return kind === 'application' ? env.paths.app : env.paths[kind];
}

/**
 * The backup settings of the config each environment object came from, so the catalogue functions (also called
 * from the PostgreSQL and archive modules) find the signing keys without every call site carrying them.
 */
const signingOf = new WeakMap<EnvironmentConfig, BackupSettings>();

export function registerSigning(cfg: OpsConfig): void {
  for (const e of Object.values(cfg.environments)) signingOf.set(e, cfg.backup);
}

function keysFor(env: EnvironmentConfig): SigningKeys {
  const settings = signingOf.get(env);
  if (!settings) throw new Error('internal error: manifest signing used before registerSigning(cfg)');
  try {
    return signingKeys(settings);
  } catch (err) {
    if (err instanceof SigningKeyError) throw permanent(err.message, err.name);
    throw err; // MissingSecretError: made non-retryable by guarded()
  }
}

/** Manifests are small; anything larger is refused before it is read. */
const MAX_MANIFEST_BYTES = 32 << 20;

/**
 * The manifest of a backup, parsed with the schema but NOT yet trusted (no signature check): for listing and for
 * an operator's import. The backup directory must be a real directory and the manifest a regular file, both
 * opened without following symlinks.
 */
export async function readUntrustedManifest(env: EnvironmentConfig, environment: string, backupId: string): Promise<{ manifest: BackupManifest; text: string }> {
  parseBackupId(backupId, environment);
  const dir = backupDir(env, backupId);
  const where = `${backupId}/${MANIFEST_FILE}`;
  const info = await lstat(dir).catch((err: NodeJS.ErrnoException) => (err.code === 'ENOENT' ? undefined : Promise.reject(err)));
  if (!info) throw permanent(`Unknown backup ${backupId} for ${environment} (no ${dir})`, 'BackupNotFound');
  if (!info.isDirectory()) throw permanent(`${dir} is not a directory (a symlink or file where a backup should be); it is never followed`, 'ManifestInvalid');
  let fh;
  try {
    fh = await openPlainFile(dir, MANIFEST_FILE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw permanent(`Unknown backup ${backupId} for ${environment} (no ${path.join(dir, MANIFEST_FILE)})`, 'BackupNotFound');
    if (err instanceof UnsafeArchiveError) throw permanent(`${where} ${err.reason}`, 'ManifestInvalid');
    throw err;
  }
  let text: string;
  try {
    const { size } = await fh.stat();
    if (size > MAX_MANIFEST_BYTES) throw permanent(`${where} is ${size} bytes; a manifest is at most ${MAX_MANIFEST_BYTES}`, 'ManifestInvalid');
    text = await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
  let m: BackupManifest;
  try {
    m = parseManifest(text, where);
  } catch (err) {
    if (err instanceof ManifestInvalidError) throw permanent(err.message, 'ManifestInvalid');
    throw err;
  }
  if (m.id !== backupId || m.environment !== environment) {
    throw permanent(`${where} describes backup ${m.id} of ${m.environment}, not ${backupId} of ${environment}`, 'ManifestInvalid');
  }
  return { manifest: m, text };
}

/** The manifest of a backup, parsed and with its signature verified: the only way a backup becomes usable. */
export async function readManifest(env: EnvironmentConfig, environment: string, backupId: string): Promise<BackupManifest> {
  const { manifest } = await readUntrustedManifest(env, environment, backupId);
  try {
    verifyManifest(manifest, keysFor(env), `${backupId}/${MANIFEST_FILE}`);
  } catch (err) {
    if (err instanceof SignatureError) throw permanent(err.message, err.name);
    throw err;
  }
  return manifest;
}

/** Signs the manifest with the current key and writes it atomically. */
export async function saveManifest(env: EnvironmentConfig, m: BackupManifest): Promise<BackupManifest> {
  const signed = signManifest(m, keysFor(env));
  await writeFileAtomic(path.join(backupDir(env, m.id), MANIFEST_FILE), JSON.stringify(signed, null, 2) + '\n');
  return signed;
}

async function hashHandle(fh: FileHandle, onBytes: (bytes: number) => void, signal?: AbortSignal): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const chunk of fh.createReadStream({ start: 0, autoClose: false, highWaterMark: 1 << 20, signal })) {
    hash.update(chunk as Buffer);
    bytes += (chunk as Buffer).length;
    onBytes(bytes);
  }
  return { bytes, sha256: hash.digest('hex') };
}

/** Opens an artifact by its plain name inside the backup directory, never through a symlink. */
export async function openArtifact(env: EnvironmentConfig, m: BackupManifest, a: Artifact): Promise<FileHandle> {
  try {
    return await openPlainFile(backupDir(env, m.id), a.file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') throw permanent(`Backup ${m.id}: ${a.file} is missing`, 'ChecksumMismatch');
    if (err instanceof UnsafeArchiveError) throw permanent(`Backup ${m.id}: ${a.file} ${err.reason}`, 'ArtifactInvalid');
    throw err;
  }
}

/** Refuses a listing (or re-read) whose bytes differ from the manifest. */
export function requireChecksum(m: BackupManifest, a: Artifact, got: { bytes: number; sha256: string }): void {
  if (got.sha256 !== a.sha256 || got.bytes !== a.bytes) {
    throw permanent(`Backup ${m.id}: ${a.file} does not match its manifest (sha256 ${got.sha256.slice(0, 12)}…, ${got.bytes} bytes; expected ${a.sha256.slice(0, 12)}…, ${a.bytes} bytes)`, 'ChecksumMismatch');
  }
}

/** An archive refused by the member policy or unreadable as tar: permanent, the bytes will not change. */
export function archiveFailure(m: BackupManifest, a: Artifact, err: unknown): unknown {
  if (err instanceof UnsafeArchiveError) return permanent(`Backup ${m.id}: ${a.file} cannot be restored safely: ${err.message}`, 'UnsafeArchive');
  if (err instanceof CorruptArchiveError) return permanent(`Backup ${m.id}: ${a.file} is not a readable tar archive: ${err.message}`, 'CorruptArchive');
  return err;
}

/**
 * Re-reads an artifact and compares it with its manifest. A file archive is also listed member by member (in
 * the same pass) and refused if any member could escape or arm the restore target.
 */
export async function checkArtifact(env: EnvironmentConfig, m: BackupManifest, kind: BackupKind): Promise<{ artifact: Artifact; file: string; members?: number }> {
  const a = m.artifacts[kind];
  if (!a) throw permanent(`Backup ${m.id} has no ${kind} artifact (it holds: ${Object.keys(m.artifacts).join(', ') || 'nothing'})`, 'KindNotInBackup');
  const file = path.join(backupDir(env, m.id), a.file);
  const fh = await openArtifact(env, m, a);
  try {
    const beat = progress(kind === 'database' ? `checksum ${kind}` : `list ${kind}`);
    const onBytes = (b: number) => beat({ bytes: b, of: a.bytes });
    if (kind === 'database') {
      requireChecksum(m, a, await hashHandle(fh, onBytes, signal()));
      return { artifact: a, file };
    }
    let listing;
    try {
      listing = await listArchive(fh, a.compression.program, { signal: signal(), onBytes });
    } catch (err) {
      throw archiveFailure(m, a, err);
    }
    requireChecksum(m, a, listing);
    return { artifact: a, file, members: listing.members };
  } finally {
    await fh.close();
  }
}

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
