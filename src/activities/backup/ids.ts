/**
 * Names in the backup domain — backup ids, kinds, restore targets — validated before anything touches a file
 * or runs a command. Import-free apart from names.ts, so workflows can use it.
 */
import { ENVIRONMENT_NAME } from '../../common/names.js';

export const BACKUP_KINDS = ['database', 'application', 'config', 'uploads'] as const;
export type BackupKind = (typeof BACKUP_KINDS)[number];
export const FILE_KINDS = ['application', 'config', 'uploads'] as const satisfies readonly BackupKind[];
export type FileKind = (typeof FILE_KINDS)[number];

/** `<environment>-<YYYYMMDD>T<HHMMSS>Z-<6 hex>`, e.g. `production-20261126T080000Z-3fa4c1`: sortable, path-safe. */
export const BACKUP_ID = /^([a-z][a-z0-9-]{0,31})-(\d{8}T\d{6}Z)-([0-9a-f]{6})$/;

/** A restore target database: a plain PostgreSQL identifier, short enough for our suffixes. */
export const DATABASE_TARGET = /^[a-z_][a-z0-9_]{0,47}$/;
/** A restore target for files: one directory name under the environment's temp dir (no paths). */
export const DIRECTORY_TARGET = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

export class BackupNameError extends Error {
  override readonly name = 'BadInput';
}

export function isBackupKind(value: unknown): value is BackupKind {
  return typeof value === 'string' && (BACKUP_KINDS as readonly string[]).includes(value);
}

export function isFileKind(kind: BackupKind): kind is FileKind {
  return kind !== 'database';
}

function show(value: unknown): string {
  return (JSON.stringify(value) ?? String(value)).slice(0, 80);
}

/** Builds the id from its parts (the workflow supplies its own time and a random suffix from its seeded RNG). */
export function makeBackupId(environment: string, at: Date, suffix: string): string {
  const stamp = at.toISOString().replace(/[-:]/g, '').replace(/\.\d{3}Z$/, 'Z');
  const id = `${environment}-${stamp}-${suffix}`;
  if (!BACKUP_ID.test(id) || !ENVIRONMENT_NAME.test(environment)) throw new BackupNameError(`cannot build a backup id from ${show(environment)} / ${show(suffix)}`);
  return id;
}

/** The backup id, checked in shape and against the environment it must belong to. */
export function parseBackupId(value: unknown, environment?: string): { id: string; environment: string; createdAt: string } {
  const m = typeof value === 'string' ? BACKUP_ID.exec(value) : null;
  if (!m) {
    throw new BackupNameError(`Expected a backup id like production-20261126T080000Z-3fa4c1, got ${show(value)}`);
  }
  const [, env, stamp] = m as unknown as [string, string, string];
  if (environment !== undefined && env !== environment) {
    throw new BackupNameError(`Backup ${value} belongs to environment "${env}", not "${environment}"`);
  }
  const createdAt = `${stamp.slice(0, 4)}-${stamp.slice(4, 6)}-${stamp.slice(6, 8)}T${stamp.slice(9, 11)}:${stamp.slice(11, 13)}:${stamp.slice(13, 15)}Z`;
  return { id: value as string, environment: env, createdAt };
}

/** Kinds to back up: default all; duplicates removed; unknown names rejected with the known ones listed. */
export function parseKinds(value: unknown): BackupKind[] {
  if (value === undefined || value === null) return [...BACKUP_KINDS];
  if (!Array.isArray(value) || value.length === 0) {
    throw new BackupNameError(`Expected \`kinds\` to be a non-empty list of ${BACKUP_KINDS.join(', ')}, got ${show(value)}`);
  }
  const bad = value.filter((k) => !isBackupKind(k));
  if (bad.length > 0) throw new BackupNameError(`Unknown backup kind(s) ${bad.map(show).join(', ')}; known kinds: ${BACKUP_KINDS.join(', ')}`);
  return BACKUP_KINDS.filter((k) => value.includes(k));
}

export function parseKind(value: unknown): BackupKind {
  if (!isBackupKind(value)) throw new BackupNameError(`Unknown backup kind ${show(value)}; known kinds: ${BACKUP_KINDS.join(', ')}`);
  return value;
}

/** Optional restore target: a database name for `database`, a directory name (under temp) for file kinds. */
export function parseTarget(kind: BackupKind, value: unknown): string | undefined {
  if (value === undefined || value === null || value === '') return undefined;
  const rule = kind === 'database' ? DATABASE_TARGET : DIRECTORY_TARGET;
  if (typeof value !== 'string' || !rule.test(value) || value === '.' || value === '..' || value.includes('..')) {
    const want = kind === 'database' ? 'a plain lowercase database name ([a-z_][a-z0-9_]*, at most 48 characters)' : 'a directory name (letters, digits, . _ -; no paths)';
    throw new BackupNameError(`Expected \`target\` for a ${kind} restore to be ${want}, got ${show(value)}`);
  }
  return value;
}

/** Free-text reason for the audit trail: bounded and printable. */
export function parseReason(value: unknown, fallback: string): string {
  if (value === undefined || value === null || value === '') return fallback;
  if (typeof value !== 'string' || value.length > 200 || !/^[\p{L}\p{N}\p{P}\p{Zs}]+$/u.test(value)) {
    throw new BackupNameError(`Expected \`reason\` to be at most 200 printable characters on one line, got ${show(value)}`);
  }
  return value;
}
