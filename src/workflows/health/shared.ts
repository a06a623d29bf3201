/**
 * What the daily health check shares with its clients (the CLI, schedules): its input schema.
 * Loaded in the workflow sandbox: no Node modules.
 */
import { z } from 'zod';
import { environmentField, requestedByField } from '../common/inputs.js';

export const dailyHealthCheckInputSchema = z.strictObject({
  environment: environmentField,
  /** Who asked for this run (the CLI fills in the operator); default `schedule`. */
  requestedBy: requestedByField('schedule'),
});
export interface DailyHealthCheckInput {
  environment: string;
  /** Who asked for this run (the CLI fills in the operator); default `schedule`. */
  requestedBy?: string;
}
