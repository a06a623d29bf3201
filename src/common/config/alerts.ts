/** Section `alerts`: the alert lifecycle (one page per fault key, escalation, resolved notice). */
import { z } from 'zod';

import { durationMs } from './duration.js';

export const alertsSchema = z.strictObject({
  /** An alert not acknowledged and not resolved after this long is escalated (to critical routes). Default 30m. */
  escalateAfter: durationMs('30m'),
  /** A fault that clears within this time after it opened never pages (0s = page at once). Default 0s. */
  grace: durationMs('0s'),
});
export type AlertSettings = z.infer<typeof alertsSchema>;
