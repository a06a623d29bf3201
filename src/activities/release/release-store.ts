/**
 * The durable record of what each environment runs: the current and previous release (version, image, slot,
 * port, migration level) and a bounded history of every deploy and rollback. A JSON file per environment under
 * `deploy.stateDir`, written to a temporary name, fsynced and renamed — so it survives worker and server restarts
 * and a lost Temporal history, and a crash never leaves half a file. Read back through a schema: a file that does
 * not parse is an error, never silently replaced.
 *
 * Shared by every worker since issue 17: the records live in PostgreSQL (see {@link updateReleases} below); the
 * file is their mirror and the source of the first row on upgrade.
 *
 * The file also holds the release lease: the run that is deploying or rolling back the environment. Workflow ids
 * already keep two releases apart; the lease does the same for runs started under another id.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { replaceFileDurably } from '../../common/durable-file.js';
import { z } from 'zod';
import type { EnvironmentConfig } from '../../common/config/index.js';
import { readOpsState, updateOpsState, type OpsRowKey, type OpsRowOptions } from '../../common/postgres/ops-state.js';

const slotName = z.enum(['blue', 'green', 'main']);
export type SlotName = z.infer<typeof slotName>;

const releaseSchema = z.strictObject({
  version: z.string(),
  image: z.string(),
  slot: slotName,
  port: z.number().int(),
  /** Highest applied migration when this release went live (null: unknown). */
  migrationLevel: z.number().int().nullable(),
  deployedAt: z.string(),
  requestedBy: z.string(),
  workflowId: z.string(),
  runId: z.string(),
});
export type Release = z.infer<typeof releaseSchema>;

export const OUTCOMES = ['success', 'app-rolled-back', 'database-rolled-back', 'database-left', 'failed-before-change', 'failed'] as const;
export type ReleaseOutcome = (typeof OUTCOMES)[number];

const historySchema = z.strictObject({
  runId: z.string(),
  workflowId: z.string(),
  operation: z.enum(['deploy', 'rollback', 'bootstrap']),
  version: z.string(),
  fromVersion: z.string().nullable(),
  requestedBy: z.string(),
  startedAt: z.string(),
  finishedAt: z.string(),
  durationMs: z.number(),
  outcome: z.enum(OUTCOMES),
  migrationBefore: z.number().int().nullable(),
  migrationAfter: z.number().int().nullable(),
  backupId: z.string().nullable(),
  detail: z.string(),
});
export type ReleaseHistoryEntry = z.infer<typeof historySchema>;

const leaseSchema = z.strictObject({
  workflowId: z.string(),
  runId: z.string(),
  operation: z.enum(['deploy', 'rollback']),
  version: z.string(),
  requestedBy: z.string(),
  startedAt: z.string(),
});
export type ReleaseLease = z.infer<typeof leaseSchema>;

const storeSchema = z.strictObject({
  schema: z.literal(1),
  environment: z.string(),
  current: releaseSchema.nullable(),
  previous: releaseSchema.nullable(),
  lease: leaseSchema.nullable(),
  history: z.array(historySchema),
});
export type ReleaseState = z.infer<typeof storeSchema>;

/** Newest entries kept in the file (older ones are dropped; the Temporal history keeps every run). */
export const HISTORY_LIMIT = 500;

export class ReleaseStoreError extends Error {
  override readonly name = 'ReleaseStoreError';
  constructor(
    readonly file: string,
    problem: string,
  ) {
    super(`Release records ${file} are unreadable: ${problem}`);
  }
}

export function releaseFile(stateDir: string): string {
  return path.join(stateDir, 'releases.json');
}

export async function readReleases(stateDir: string, environment: string): Promise<ReleaseState> {
  const file = releaseFile(stateDir);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { schema: 1, environment, current: null, previous: null, lease: null, history: [] };
    throw err;
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new ReleaseStoreError(file, `not JSON (${(err as Error).message})`);
  }
  const parsed = storeSchema.safeParse(raw);
  if (!parsed.success) throw new ReleaseStoreError(file, parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  if (parsed.data.environment !== environment) throw new ReleaseStoreError(file, `it belongs to environment ${parsed.data.environment}, not ${environment}`);
  return parsed.data;
}

/** Atomic replace: temporary file, fsync, rename, fsync of the directory. */
export async function writeReleases(stateDir: string, state: ReleaseState): Promise<void> {
  await replaceFileDurably(releaseFile(stateDir), `${JSON.stringify(storeSchema.parse(state), null, 2)}\n`, { syncDir: true });
}

/** Appends (or replaces, on a retry of the same run) one history entry, newest last, bounded. */
export function addHistory(state: ReleaseState, entry: ReleaseHistoryEntry): void {
  state.history = state.history.filter((h) => h.runId !== entry.runId);
  state.history.push(entry);
  if (state.history.length > HISTORY_LIMIT) state.history.splice(0, state.history.length - HISTORY_LIMIT);
}

/**
 * The shared records (src/common/postgres/ops-state.ts): row `releases` of the environment, so every worker on every
 * host sees one lease and one history. The file under `deploy.stateDir` is read once when the row does not
 * exist yet (upgrade) and kept written as a mirror. No fallback to the file: a release needs the database anyway.
 */
function releaseRow(env: EnvironmentConfig, environment: string): [OpsRowKey, OpsRowOptions<ReleaseState>] {
  const stateDir = env.deploy.stateDir as string;
  return [
    { environment, key: 'releases' },
    {
      schema: storeSchema.refine((s) => s.environment === environment, { message: `the records belong to another environment, not ${environment}` }),
      initial: () => ({ schema: 1, environment, current: null, previous: null, lease: null, history: [] }),
      legacy: async () => {
        const s = await readReleases(stateDir, environment);
        return s.current || s.previous || s.lease || s.history.length ? s : undefined;
      },
      mirror: (s) => writeReleases(stateDir, s),
    },
  ];
}

export async function loadReleases(env: EnvironmentConfig, environment: string): Promise<ReleaseState> {
  const [key, opts] = releaseRow(env, environment);
  return readOpsState(env, key, opts);
}

/** Read-modify-write of the shared records under their row lock (one at a time across every worker). */
export async function updateReleases<T>(env: EnvironmentConfig, environment: string, fn: (state: ReleaseState) => T | Promise<T>): Promise<T> {
  const [key, opts] = releaseRow(env, environment);
  return updateOpsState(env, key, opts, fn);
}
