/** Backup, restore and import: PostgreSQL dumps and restores, file archives, the catalogue, and the restore preview. */
import type { OpsConfig } from '../../common/config/index.js';
import { createBackupActivities } from './backup.js';
import { createRestorePreviewActivities } from './restore-preview.js';

export function backupActivities(cfg: OpsConfig) {
  return {
    ...createBackupActivities(cfg),
    ...createRestorePreviewActivities(cfg),
  };
}

/** What the feature's workflows proxy: `proxyActivities<BackupActivities>(…)`. */
export type BackupActivities = ReturnType<typeof backupActivities>;
