/**
 * Importing a backup llmchat-ops did not sign (copied from another installation, or signed with a retired key):
 * without `confirm`, shows what it holds after every check but the signature; with `confirm` — the manifest's
 * sha256 the operator saw — re-signs exactly that manifest with the current key. Nothing else is changed.
 */
import { upsertSearchAttributes } from '@temporalio/workflow';
import { dataHostAware } from '../common/data-host-aware.js';
import type { BackupActivities } from '../../activities/backup/index.js';
import type { ImportSummary } from '../../activities/backup/backup-import.js';
import { BackupIdKey, EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../../common/search-attributes.js';
import { importBackupInputSchema, type ImportBackupInput } from './shared.js';
import { parseInput } from '../common/inputs.js';
import { IMPORT_CHECKS } from '../common/activity-options.js';

export type { ImportBackupInput } from './shared.js';

const checks = dataHostAware<BackupActivities>(IMPORT_CHECKS);

export async function importBackup(input: ImportBackupInput): Promise<ImportSummary> {
  const { environment, backupId, requestedBy, confirm } = parseInput('importBackup', importBackupInputSchema, input);
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'importBackup' },
    { key: RequestedByKey, value: requestedBy },
    { key: BackupIdKey, value: backupId },
  ]);
  const summary =
    confirm === undefined
      ? await checks.inspectForeignBackup({ environment, backupId })
      : await checks.importForeignBackup({ environment, backupId, requestedBy, manifestSha256: confirm });
  upsertSearchAttributes([{ key: OutcomeKey, value: confirm === undefined ? 'inspected' : 'imported' }]);
  return summary;
}
