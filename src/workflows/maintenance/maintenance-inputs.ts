/**
 * Input schemas of the maintenance workflows (weekly database maintenance, weekly cleanup, database optimization,
 * monthly performance report), shared by the workflows and the CLI like those in inputs.ts.
 */
import { z } from 'zod';
import { environmentField, requestedByField } from '../common/inputs.js';

export const weeklyDatabaseMaintenanceInputSchema = z.strictObject({ environment: environmentField, requestedBy: requestedByField('schedule') });
export const databaseOptimizationInputSchema = weeklyDatabaseMaintenanceInputSchema;

export const weeklyCleanupInputSchema = z.strictObject({
  environment: environmentField,
  requestedBy: requestedByField('schedule'),
  /** List what would go; delete nothing, back up nothing, upgrade nothing (default false). */
  dryRun: z.boolean({ error: 'Expected `dryRun` to be true or false' }).default(false),
});

/** A calendar month `YYYY-MM` from 2000-01 to 2999-12. */
export const MONTH = /^(2\d{3})-(0[1-9]|1[0-2])$/;

export const monthlyPerformanceReportInputSchema = z.strictObject({
  environment: environmentField,
  requestedBy: requestedByField('schedule'),
  /** The month to report on, `YYYY-MM`; default: the month before the run's start. */
  month: z.string({ error: 'Expected `month` to be a month like 2026-10' }).regex(MONTH, 'Expected `month` to be a month like 2026-10 (YYYY-MM)').optional(),
});
