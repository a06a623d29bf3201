/**
 * The backup manifest: one JSON file, `manifest.json`, in each backup's directory. It is the catalogue entry,
 * the checksum list that restores trust, and the audit record of who made the backup and whether it verified.
 * Types only (no I/O), so workflows can use them.
 */
import type { BackupKind } from './ids.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'llmchat-ops-backup/1';
/** Suffix of files being written; never a complete artifact. Anything with it is ours and may be removed. */
export const PARTIAL_SUFFIX = '.partial';

export type CompressionProgram = 'zstd' | 'gzip' | 'none';

export interface Compression {
  program: CompressionProgram;
  level: number;
}

export interface Artifact {
  kind: BackupKind;
  /** File name inside the backup directory. */
  file: string;
  bytes: number;
  sha256: string;
  durationMs: number;
  compression: Compression;
  /** database: pg_dump archive format (custom: pg_restore can restore it in parallel). */
  format?: 'custom' | 'tar';
  /** database: name of the dumped database and server version. */
  database?: string;
  serverVersion?: string;
  /** database: exact row count of every table ("schema.table"), taken in the dump's own snapshot. */
  tables?: Record<string, number>;
  /** files: the directory archived and what was left out. */
  source?: string;
  excluded?: string[];
}

export type VerificationStatus = 'verified' | 'failed' | 'unverified';

export interface Verification {
  status: VerificationStatus;
  at: string;
  /** Every artifact's sha256 re-read from disk. */
  checksums: 'ok' | 'mismatch';
  /** `pg_restore --list` read the database archive. */
  archiveList?: 'ok' | 'failed';
  /** The database archive restored into a scratch database and row counts compared with `tables`. */
  restoreTest?: { database: string; tables: number; mismatches: string[]; durationMs: number } | 'skipped';
  problems: string[];
}

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
  createdBy: 'llmchat-ops';
  id: string;
  environment: string;
  status: 'in-progress' | 'complete' | 'failed';
  kinds: BackupKind[];
  requestedBy: string;
  reason: string;
  workflowId: string;
  runId: string;
  startedAt: string;
  completedAt?: string;
  artifacts: Partial<Record<BackupKind, Artifact>>;
  verification?: Verification;
  /** Why the backup failed (status 'failed'). */
  error?: string;
  /** Set on a safety backup: the restore it protects. */
  safetyFor?: string;
}

/** A catalogue row: the manifest plus derived totals. */
export interface CatalogueEntry {
  id: string;
  environment: string;
  status: BackupManifest['status'];
  verification: VerificationStatus;
  kinds: BackupKind[];
  bytes: number;
  startedAt: string;
  completedAt?: string;
  requestedBy: string;
  reason: string;
  artifacts: { kind: BackupKind; file: string; bytes: number; sha256: string; durationMs: number }[];
}

export function catalogueEntry(m: BackupManifest): CatalogueEntry {
  const artifacts = Object.values(m.artifacts).map((a) => ({ kind: a.kind, file: a.file, bytes: a.bytes, sha256: a.sha256, durationMs: a.durationMs }));
  return {
    id: m.id,
    environment: m.environment,
    status: m.status,
    verification: m.verification?.status ?? 'unverified',
    kinds: m.kinds,
    bytes: artifacts.reduce((n, a) => n + a.bytes, 0),
    startedAt: m.startedAt,
    ...(m.completedAt ? { completedAt: m.completedAt } : {}),
    requestedBy: m.requestedBy,
    reason: m.reason,
    artifacts,
  };
}
