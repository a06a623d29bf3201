/**
 * Backup and restore activities, split by the system each touches: PostgreSQL (dump, verification, database
 * restore), file archives (tar, file restore) and the catalogue (manifests, listing, retention, restore plans).
 * Everything runs on the worker from validated names only: the workflow passes an environment name, a backup id
 * and a kind; paths, connection details and the password come from the config and the worker's environment.
 */
import type { OpsConfig } from '../config.js';
import { createBackupArchiveActivities } from './backup-archive.js';
import { createBackupCatalogueActivities } from './backup-catalogue.js';
import { createBackupPostgresActivities } from './backup-postgres.js';

export type { BeginBackupInput, RestorePlan, RestoreResult } from './backup-catalogue.js';

export function createBackupActivities(cfg: OpsConfig) {
  return {
    ...createBackupCatalogueActivities(cfg),
    ...createBackupPostgresActivities(cfg),
    ...createBackupArchiveActivities(cfg),
  };
}
