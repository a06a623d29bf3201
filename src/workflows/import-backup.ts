/**
 * Importing a backup llmchat-ops did not sign (copied from another installation, or signed with a retired key):
 * without `confirm`, shows what it holds after every check but the signature; with `confirm` — the manifest's
 * sha256 the operator saw — re-signs exactly that manifest with the current key. Nothing else is changed.
 */
import { upsertSearchAttributes } from '@temporalio/workflow';
import { dataHostAware } from './data-host-aware.js';
import type { ImportSummary } from '../activities/backup-import.js';
import { BackupIdKey, EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../search-attributes.js';
import { importBackupInputSchema, parseInput, type ImportBackupInput } from './inputs.js';

export type { ImportBackupInput } from './inputs.js';

const checks = dataHostAware({
  startToCloseTimeout: '2 hours',
  heartbeatTimeout: '30 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumAttempts: 5 },
});

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
