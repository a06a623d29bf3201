/**
 * The backup manifest: one JSON file, `manifest.json`, in each backup's directory. It is the catalogue entry,
 * the checksum list that restores trust, and the audit record of who made the backup and whether it verified.
 * Every manifest read back from disk is untrusted until {@link manifestSchema} has parsed it and its signature
 * matched (src/activities/backup/signature.ts). No I/O here, so workflows can use the types.
 */
import { z } from 'zod';
import { ENVIRONMENT_NAME } from '../../common/names.js';
import { BACKUP_ID, BACKUP_KINDS, FILE_KINDS, type BackupKind } from './ids.js';

export const MANIFEST_FILE = 'manifest.json';
export const MANIFEST_FORMAT = 'llmchat-ops-backup/1';
/** Suffix of files being written; never a complete artifact. Anything with it is ours and may be removed. */
export const PARTIAL_SUFFIX = '.partial';

/**
 * An artifact's file: a plain name inside its backup directory, exactly the one llmchat-ops writes for its kind
 * and compression (`database.dump.zst`, `uploads.tar.gz`…) — never a path, never `..`.
 */
export function artifactFileName(kind: BackupKind, program: CompressionProgram): string {
  const suffix = program === 'zstd' ? '.zst' : program === 'gzip' ? '.gz' : '';
  return kind === 'database' ? `database.dump${suffix}` : `${kind}.tar${suffix}`;
}

const COMPRESSION_PROGRAMS = ['zstd', 'gzip', 'none'] as const;
export type CompressionProgram = (typeof COMPRESSION_PROGRAMS)[number];

const kindSchema = z.enum(BACKUP_KINDS);
const fileKindSchema = z.enum(FILE_KINDS);
const timestamp = z.iso.datetime();
/** Free text from the audit trail (reasons, names, errors): bounded, no control characters but newlines. */
const text = (max: number) => z.string().max(max).regex(/^[^\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]*$/, 'must not hold control characters');
const count = z.int().min(0).max(Number.MAX_SAFE_INTEGER);

const compressionSchema = z.strictObject({ program: z.enum(COMPRESSION_PROGRAMS), level: z.int().min(0).max(22) });
export type Compression = z.infer<typeof compressionSchema>;

export const artifactSchema = z
  .strictObject({
    kind: kindSchema,
    /** File name inside the backup directory. */
    file: z.string().max(64),
    bytes: count,
    sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 lowercase hex digits'),
    durationMs: count,
    compression: compressionSchema,
    /** database: pg_dump archive format (custom: pg_restore can restore it in parallel). */
    format: z.enum(['custom', 'tar']).optional(),
    /** database: name of the dumped database and server version. */
    database: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,62}$/).optional(),
    serverVersion: text(100).optional(),
    /** database: exact row count of every table ("schema.table"), taken in the dump's own snapshot. */
    tables: z
      .record(z.string().min(3).max(300), count)
      .refine((t) => Object.keys(t).length <= 100_000, 'at most 100000 tables')
      .optional(),
    /** files: the directory archived and what was left out. */
    source: text(4096).optional(),
    excluded: z.array(z.string().regex(/^[^/\0]{1,255}$/)).max(100).optional(),
  })
  .superRefine((a, ctx) => {
    const want = artifactFileName(a.kind, a.compression.program);
    if (a.file !== want) ctx.addIssue({ code: 'custom', path: ['file'], message: `must be ${JSON.stringify(want)} for a ${a.kind} artifact compressed with ${a.compression.program}, got ${JSON.stringify(a.file.slice(0, 64))}` });
  });
export type Artifact = z.infer<typeof artifactSchema>;

export type VerificationStatus = 'verified' | 'failed' | 'unverified';

const verificationSchema = z.strictObject({
  status: z.enum(['verified', 'failed', 'unverified']),
  at: z.union([timestamp, z.literal('')]),
  /** Every artifact's sha256 re-read from disk. */
  checksums: z.enum(['ok', 'mismatch']),
  /** `pg_restore --list` read the database archive. */
  archiveList: z.enum(['ok', 'failed']).optional(),
  /** Every member of each file archive listed and checked (only files, directories, symlinks inside the target). */
  fileArchives: z.partialRecord(fileKindSchema, z.strictObject({ members: count, status: z.enum(['ok', 'refused']) })).optional(),
  /** The database archive restored into a scratch database and row counts compared with `tables`. */
  restoreTest: z
    .union([
      z.strictObject({ database: z.string().max(63), tables: count, mismatches: z.array(text(1000)).max(1000), durationMs: count, role: z.string().max(63).optional() }),
      z.literal('skipped'),
    ])
    .optional(),
  problems: z.array(text(2000)).max(1000),
});
export type Verification = z.infer<typeof verificationSchema>;

/** HMAC-SHA256 over the canonical JSON of the rest of the manifest; see src/activities/backup/signature.ts. */
export const signatureSchema = z.strictObject({
  algorithm: z.literal('hmac-sha256'),
  /** Identifies the key without revealing it (an HMAC of a fixed label), so rotation can say which key signed. */
  keyId: z.string().regex(/^[0-9a-f]{16}$/),
  value: z.string().regex(/^[0-9a-f]{64}$/),
});
export type ManifestSignature = z.infer<typeof signatureSchema>;

export const manifestSchema = z
  .strictObject({
    format: z.literal(MANIFEST_FORMAT),
    createdBy: z.literal('llmchat-ops'),
    id: z.string().regex(BACKUP_ID),
    environment: z.string().regex(ENVIRONMENT_NAME),
    status: z.enum(['in-progress', 'complete', 'failed']),
    kinds: z.array(kindSchema).min(1).max(BACKUP_KINDS.length),
    requestedBy: text(128),
    reason: text(200),
    workflowId: text(1000),
    runId: text(100),
    startedAt: timestamp,
    completedAt: timestamp.optional(),
    artifacts: z.partialRecord(kindSchema, artifactSchema),
    verification: verificationSchema.optional(),
    /** Why the backup failed (status 'failed'). */
    error: text(1000).optional(),
    /** Set on a safety backup: the restore it protects (from the workflow's parent, never from a caller). */
    safetyFor: text(1000).optional(),
    /** Imported by an operator (`llmchat-ops backups import`): who, when, and from where. */
    imported: z.strictObject({ by: text(128), at: timestamp, from: text(4096) }).optional(),
    signature: signatureSchema.optional(),
  })
  .superRefine((m, ctx) => {
    if (new Set(m.kinds).size !== m.kinds.length) ctx.addIssue({ code: 'custom', path: ['kinds'], message: 'lists a kind twice' });
    if (!m.id.startsWith(`${m.environment}-`)) ctx.addIssue({ code: 'custom', path: ['id'], message: `does not belong to environment ${m.environment}` });
    for (const [key, a] of Object.entries(m.artifacts)) {
      if (a && a.kind !== key) ctx.addIssue({ code: 'custom', path: ['artifacts', key, 'kind'], message: `is ${a.kind} under the key ${key}` });
      if (!m.kinds.includes(key as BackupKind)) ctx.addIssue({ code: 'custom', path: ['artifacts', key], message: 'is not one of the backup\'s kinds' });
    }
  });
export type BackupManifest = z.infer<typeof manifestSchema>;

export class ManifestInvalidError extends Error {
  override readonly name = 'ManifestInvalid';
}

/** Parses manifest text: JSON, then the schema. Throws {@link ManifestInvalidError} naming the first problems. */
export function parseManifest(text: string, where: string): BackupManifest {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ManifestInvalidError(`${where} is not valid JSON: ${(err as Error).message}`);
  }
  const r = manifestSchema.safeParse(raw);
  if (!r.success) {
    const problems = r.error.issues.slice(0, 5).map((i) => `${i.path.length ? i.path.join('.') : '(root)'}: ${i.message}`);
    throw new ManifestInvalidError(`${where} is not a valid llmchat-ops manifest: ${problems.join('; ')}${r.error.issues.length > 5 ? ` (and ${r.error.issues.length - 5} more)` : ''}`);
  }
  return r.data;
}

/**
 * A catalogue row: the manifest plus derived totals. A backup whose manifest is malformed, unsigned or signed
 * with an unknown key is still listed, with status `untrusted` and the reason in `problem`.
 */
export interface CatalogueEntry {
  id: string;
  environment: string;
  status: BackupManifest['status'] | 'untrusted';
  problem?: string;
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

/** The catalogue row of a backup directory whose manifest cannot be trusted: listed, marked, never restorable. */
export function untrustedEntry(id: string, environment: string, problem: string): CatalogueEntry {
  return { id, environment, status: 'untrusted', problem: problem.slice(0, 500), verification: 'unverified', kinds: [], bytes: 0, startedAt: '', requestedBy: '', reason: '', artifacts: [] };
}
