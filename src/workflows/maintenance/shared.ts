/**
 * What the maintenance workflows (weekly database maintenance, weekly cleanup, database optimization) share with
 * their clients (the CLI, schedules): input schemas. Loaded in the workflow sandbox: no Node modules.
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
