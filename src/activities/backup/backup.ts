/**
 * Backup and restore activities, split by the system each touches: PostgreSQL (dump, verification, database
 * restore), file archives (tar, file restore) and the catalogue (manifests, listing, retention, restore plans).
 * Everything runs on the worker from validated names only: the workflow passes an environment name, a backup id
 * and a kind; paths, connection details and the password come from the config and the worker's environment.
 *
 * Here, too, is which activity holds the environment data lock (src/common/postgres/data-lock.ts) while it runs: reading
 * live data for a backup takes it shared, replacing live data by a restore takes it exclusive. So a backup and a
 * restore of one environment never overlap, whatever workflow ids they were started under; verification and
 * restores into a new target touch no live data and take no lock. A restore waiting for approval holds no lock
 * (the lock lives only inside these activities), so it never holds up the nightly backup.
 */
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { withDataLock, type DataLockMode } from '../../common/postgres/data-lock.js';
import { abortingOn, guarded, runningAs } from '../common/activity-support.js';
import { createBackupArchiveActivities } from './backup-archive.js';
import { createBackupCatalogueActivities } from './backup-catalogue.js';
import { createBackupImportActivities } from './backup-import.js';
import { createBackupPostgresActivities } from './backup-postgres.js';

export type { BeginBackupInput, RestorePlan, RestoreResult } from './backup-catalogue.js';

export function createBackupActivities(cfg: OpsConfig) {
  const postgres = createBackupPostgresActivities(cfg);
  const archive = createBackupArchiveActivities(cfg);

  /** `fn` run under the environment's data lock in the mode `modeFor` picks for its input (none: no lock). */
  function locked<I extends { environment: string }, O>(modeFor: (input: I) => DataLockMode | undefined, fn: (input: I) => Promise<O>) {
    return (input: I): Promise<O> =>
      guarded(async () => {
        const mode = modeFor(input);
        if (!mode) return fn(input);
        const env = getEnvironment(cfg, input.environment);
        // Losing the lock's session aborts the work like a cancellation (pipelines killed, no commit of a swap).
        return withDataLock(env, { mode, holder: runningAs() }, (lost) => abortingOn(lost, () => fn(input)));
      });
  }
  const liveDatabase = (input: { environment: string; target?: string }) =>
    input.target === undefined || input.target === getEnvironment(cfg, input.environment).database.name;

  return {
    ...createBackupCatalogueActivities(cfg),
    ...createBackupImportActivities(cfg),
    ...postgres,
    ...archive,
    dumpDatabase: locked(() => 'shared', postgres.dumpDatabase),
    archiveFiles: locked(() => 'shared', archive.archiveFiles),
    restoreDatabase: locked((input) => (liveDatabase(input) ? 'exclusive' : undefined), postgres.restoreDatabase),
    restoreFiles: locked((input) => (input.target === undefined ? 'exclusive' : undefined), archive.restoreFiles),
  };
}
