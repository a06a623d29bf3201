/** Section `backup`: compression, archive contents, retention, manifest signing, the restore test and restore approvals. */
import { z } from 'zod';

import { durationIn, durationMs } from './duration.js';
import { envVarName } from './fields.js';

const compressionSchema = z.strictObject({
  /** Compressor for every artifact: zstd (multi-threaded; the default), gzip, or none. */
  program: z.enum(['zstd', 'gzip', 'none']).default('zstd'),
  /** zstd 1..19, gzip 1..9; ignored for none. Default 3. */
  level: z.int().min(1).max(19).default(3),
  /** zstd worker threads; 0 = one per core. Default 0. */
  threads: z.int().min(0).max(64).default(0),
});

const retentionSchema = z.strictObject({
  /** Backups older than this are removed, in days or as a duration in d/w like "4w" (the guide: 30 days)… */
  maxAgeDays: durationIn('days', z.number().positive()).default(30),
  /** …and only this many of the newest are kept. The newest verified backup is always kept. */
  keepCount: z.int().min(1).default(30),
});

export const backupSchema = z.strictObject({
  compression: compressionSchema.default({ program: 'zstd', level: 3, threads: 0 }),
  /** pg_restore parallel jobs (verification restore and restores). Default 2. */
  jobs: z.int().min(1).max(32).default(2),
  /** Left out of the application archive (names matched at any depth, like tar --exclude). */
  exclude: z.array(z.string().regex(/^[^/\0]+$/, 'must be a file or directory name, not a path')).default(['node_modules', 'dist', '.git']),
  retention: retentionSchema.default({ maxAgeDays: 30, keepCount: 30 }),
  /**
   * Environment variable (on the worker) holding the key that signs every manifest (HMAC-SHA256, at least 16
   * bytes). A backup whose manifest does not verify is never restored. Default LLMCHAT_BACKUP_SIGNING_KEY.
   */
  signingKeyEnv: envVarName.default('LLMCHAT_BACKUP_SIGNING_KEY'),
  /** Variables holding earlier signing keys, accepted for verification only (key rotation). Default none. */
  previousSigningKeyEnvs: z.array(envVarName).max(10).default([]),
  /**
   * The PostgreSQL role the verification restore test runs the dump as: it must own nothing but the scratch
   * database and hold no power (checked at every run; see src/activities/backup/restore-test-role.ts). The app role must be a
   * member of it. Default role llmchat_restore_test, password in LLMCHAT_RESTORE_TEST_DB_PASSWORD.
   */
  restoreTest: z
    .strictObject({
      role: z.string().regex(/^[a-z_][a-z0-9_]{0,62}$/, 'must be a plain lowercase PostgreSQL role name'),
      passwordEnv: envVarName,
    })
    .default({ role: 'llmchat_restore_test', passwordEnv: 'LLMCHAT_RESTORE_TEST_DB_PASSWORD' }),
  /** How long a restore over live data waits for approveRestore before it gives up (e.g. "24h", "30m"); read as milliseconds. Default 24h. */
  approvalTimeout: durationMs('24h'),
});
export type BackupSettings = z.infer<typeof backupSchema>;
