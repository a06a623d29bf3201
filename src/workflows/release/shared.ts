/**
 * What the release workflows (deploy, rollback, listReleases) share with their clients (the CLI): input schemas,
 * the database-rollback gate's names, the `progress` query and the `servingVerified` update.
 * Loaded in the workflow sandbox: no Node modules.
 */
import { defineQuery, defineUpdate } from '@temporalio/workflow';
import { z } from 'zod';
import type { ReleaseOutcome } from '../../activities/release/release-store.js';
import type { GateNames } from '../common/approval.js';

/** The release workflow id of an environment (one deploy or rollback at a time). */
export { releaseWorkflowId } from '../../common/names.js';
import { parseVersion } from '../../activities/release/version.js';
import { checked, environmentField, optionalBooleanField, show } from '../common/inputs.js';

/** A whole number of seconds in [0, max], or absent. */
const secondsField = (name: string, max: number) =>
  checked((value) => {
    if (value === undefined) return undefined;
    if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > max) {
      throw new Error(`Expected \`${name}\` to be a whole number of seconds from 0 to ${max}, got ${show(value)}`);
    }
    return value;
  });

/**
 * Who asks for a release: required, because a deploy's database rollback follows the four-eyes rule, which needs
 * to know who must not approve it.
 */
const releaseRequestedByField = checked((value) => {
  if (value === undefined || value === null || value === '') {
    throw new Error('Expected `requestedBy` to name who asks for this release (the four-eyes rule of a database rollback needs it), e.g. "alice"');
  }
  if (typeof value !== 'string' || value.length > 128 || !/^[\p{L}\p{N} ._@:/+-]+$/u.test(value)) {
    throw new Error(`Expected \`requestedBy\` to be a name of at most 128 printable characters, got ${show(value)}`);
  }
  return value;
});

export const deployInputSchema = z.strictObject({
  environment: environmentField,
  /** The release to deploy: an image tag, git tag or commit id (src/activities/release/version.ts). */
  version: checked((v) => parseVersion(v)),
  requestedBy: releaseRequestedByField,
  /** Skip the configured test command (default false). */
  skipTests: optionalBooleanField('skipTests'),
  /** Skip the pre-deploy database backup (default: the environment's deploy.backupBeforeDeploy). */
  skipBackup: optionalBooleanField('skipBackup'),
  /** Bake period in seconds, overriding deploy.bake.duration (0 skips the bake). */
  bakeSeconds: secondsField('bakeSeconds', 86_400),
});
export interface DeployInput {
  environment: string;
  version: string;
  requestedBy: string;
  skipTests?: boolean;
  skipBackup?: boolean;
  bakeSeconds?: number;
}

export const rollbackInputSchema = z.strictObject({
  environment: environmentField,
  /** The version to go back to; default: the previous successful release. */
  version: checked((v) => (v === undefined ? undefined : parseVersion(v))),
  requestedBy: releaseRequestedByField,
  /** Also migrate the database down to the target's recorded level, after approval (default false). */
  database: optionalBooleanField('database'),
});
export interface RollbackInput {
  environment: string;
  version?: string;
  requestedBy: string;
  database?: boolean;
}

/** `listReleases`: the release records of one environment. */
export const listReleasesInputSchema = z.strictObject({ environment: environmentField });

/** approveDatabaseRollback / rejectDatabaseRollback carry {by, comment}; databaseRollbackStatus shows the gate. */
export const DB_ROLLBACK_GATE: GateNames = { approve: 'approveDatabaseRollback', reject: 'rejectDatabaseRollback', query: 'databaseRollbackStatus', idPrefix: 'db-rollback' };

export type StepState = 'pending' | 'running' | 'done' | 'skipped' | 'failed';
export interface StepProgress {
  name: string;
  state: StepState;
  startedAt?: string;
  finishedAt?: string;
  detail?: string;
}

export interface ReleaseProgress {
  operation: 'deploy' | 'rollback';
  environment: string;
  version: string;
  fromVersion: string | null;
  requestedBy: string;
  startedAt: string;
  /** The step running now ('done' at the end). */
  step: string;
  steps: StepProgress[];
  outcome?: ReleaseOutcome;
  /** What the run waits for, in words (an approval). */
  waitingFor?: string;
  backupId?: string;
  migration?: { before: number; after: number };
  finishedAt?: string;
  message?: string;
  /**
   * deploy: when the new version was serving and verified (health gate, verify, bake) — the moment the deploy is
   * done for the person waiting (the `servingVerified` update returns); the old slot's drain and stop and the
   * release records follow in the same run.
   */
  servingAt?: string;
}
export const progressQuery = defineQuery<ReleaseProgress>('progress');

export interface ServingAnswer {
  /** The new version serves and is verified (false: the run ended without getting there; see `outcome`). */
  serving: boolean;
  servingAt?: string;
  /** Set when the run had already ended (a failed deploy, or one that finished before the update arrived). */
  outcome?: ReleaseOutcome;
  progress: ReleaseProgress;
}

/** Returns when the deploy serves the new version, verified — or when it ended without doing so. */
export const servingVerifiedUpdate = defineUpdate<ServingAnswer, []>('servingVerified');
