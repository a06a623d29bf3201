/**
 * What a restore over live data would take away, for the approval gate to show before anyone approves it: the
 * backup (when it was taken) and, for a database, the exact row count of every live table against the counts
 * the backup's manifest recorded in the dump's own snapshot. Reads only; never throws for an unreadable live
 * database — the loss is then reported as unknown, with why.
 */
import { getEnvironment, type OpsConfig } from '../../common/config/index.js';
import { parseKind, type BackupKind } from './ids.js';
import { countRows, userTables } from './postgres.js';
import { withPg } from '../../common/postgres/connect.js';
import type { WritesLost } from '../../workflows/common/approval.js';
import { guarded, runningAs } from '../common/activity-support.js';
import { readManifest } from './backup-store.js';

export interface RestorePreview {
  backupId: string;
  kind: BackupKind;
  /** When the backup was completed (or started), ISO 8601. */
  takenAt: string;
  /** database: the live row counts against the manifest's. */
  writesLost?: WritesLost;
}

const LOCK_NOT_AVAILABLE = '55P03';
const QUERY_CANCELED = '57014';

/** Tables listed by name in {@link WritesLost.changed}; the rest are counted. */
const LISTED = 20;

/** Compares row counts ("schema.table" → rows) of a backup and of the live database. */
export function compareRowCounts(backup: Record<string, number>, live: Record<string, number>): WritesLost {
  const tables = [...new Set([...Object.keys(backup), ...Object.keys(live)])];
  const changed: WritesLost['changed'] = [];
  let rowsAdded = 0;
  let rowsRemoved = 0;
  for (const table of tables) {
    const b = table in backup ? (backup[table] as number) : null;
    const l = table in live ? (live[table] as number) : null;
    if (b === l) continue;
    changed.push({ table, backup: b, live: l });
    const diff = (l ?? 0) - (b ?? 0);
    if (diff > 0) rowsAdded += diff;
    else rowsRemoved -= diff;
  }
  changed.sort((x, y) => Math.abs((y.live ?? 0) - (y.backup ?? 0)) - Math.abs((x.live ?? 0) - (x.backup ?? 0)) || x.table.localeCompare(y.table));
  return { tablesCompared: tables.length, changed: changed.slice(0, LISTED), moreChanged: Math.max(0, changed.length - LISTED), rowsAdded, rowsRemoved };
}

export function createRestorePreviewActivities(cfg: OpsConfig) {
  return {
    async previewRestore(input: { environment: string; backupId: string; kind: BackupKind }): Promise<RestorePreview> {
      return guarded(async () => {
        const e = getEnvironment(cfg, input.environment);
        const kind = parseKind(input.kind);
        const m = await readManifest(e, input.environment, input.backupId);
        const preview: RestorePreview = { backupId: m.id, kind, takenAt: m.completedAt ?? m.startedAt };
        if (kind !== 'database') return preview;
        const recorded = m.artifacts.database?.tables;
        if (!recorded) return { ...preview, writesLost: { ...compareRowCounts({}, {}), error: 'the backup recorded no row counts' } };
        try {
          const uncounted: string[] = [];
          const live = await withPg(e, e.database.name, async (c) => {
            // Bounded: a table locked by someone else (or one too large to count in time) must not hold the gate
            // closed; it is named as not counted and the others are compared.
            await c.query("SET lock_timeout = '2s'");
            await c.query("SET statement_timeout = '30s'");
            const counts: Record<string, number> = {};
            for (const t of await userTables(c)) {
              const name = `${t.schema}.${t.name}`;
              try {
                Object.assign(counts, await countRows([c], [t]));
              } catch (err) {
                const code = (err as { code?: string }).code;
                if (code !== LOCK_NOT_AVAILABLE && code !== QUERY_CANCELED) throw err;
                uncounted.push(name);
              }
            }
            return counts;
          }, { applicationName: `llmchat-ops ${runningAs()}` });
          // A table not counted is compared as equal (its loss unknown) and named in the error.
          for (const t of uncounted) if (t in recorded) live[t] = recorded[t] as number;
          const w = compareRowCounts(recorded, live);
          if (uncounted.length) w.error = `${uncounted.length} table(s) locked or too large to count within the limits, their loss unknown: ${uncounted.slice(0, 10).join(', ')}`.slice(0, 300);
          return { ...preview, writesLost: w };
        } catch (err) {
          return { ...preview, writesLost: { ...compareRowCounts({}, {}), error: `live row counts of ${e.database.name} could not be read: ${(err as Error).message}`.slice(0, 300) } };
        }
      });
    },
  };
}
