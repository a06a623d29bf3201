/**
 * What the monthly performance report shares with its clients (the CLI, schedules): its input schema.
 * Loaded in the workflow sandbox: no Node modules.
 */
import { z } from 'zod';
import { environmentField, requestedByField } from '../common/inputs.js';

/** A calendar month `YYYY-MM` from 2000-01 to 2999-12. */
export const MONTH = /^(2\d{3})-(0[1-9]|1[0-2])$/;

export const monthlyPerformanceReportInputSchema = z.strictObject({
  environment: environmentField,
  requestedBy: requestedByField('schedule'),
  /** The month to report on, `YYYY-MM`; default: the month before the run's start. */
  month: z.string({ error: 'Expected `month` to be a month like 2026-10' }).regex(MONTH, 'Expected `month` to be a month like 2026-10 (YYYY-MM)').optional(),
});
