/**
 * Reading and writing one backup directory, trusting nothing read back: the manifest (no symlinks, bounded, parsed
 * with the schema, its HMAC verified) and the artifacts (plain names, opened with O_NOFOLLOW, re-hashed, file
 * archives listed member by member). Used by the catalogue, PostgreSQL, archive and import activities.
 */
import { createHash } from 'node:crypto';
import { lstat, type FileHandle } from 'node:fs/promises';
import path from 'node:path';
import type { BackupSettings, EnvironmentConfig, OpsConfig } from '../../common/config/index.js';
import { listArchive, openPlainFile } from './archive-check.js';
import { parseBackupId, type BackupKind, type FileKind } from './ids.js';
import { ManifestInvalidError, parseManifest, MANIFEST_FILE, type Artifact, type BackupManifest } from './manifest.js';
import { writeFileAtomic } from './process.js';
import { signingKeys, SignatureError, SigningKeyError, signManifest, verifyManifest, type SigningKeys } from './signature.js';
import { CorruptArchiveError, UnsafeArchiveError } from './tar-members.js';
import { permanent, progress, signal } from '../common/activity-support.js';

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

export function keysFor(env: EnvironmentConfig): SigningKeys {
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
