/** Section `cleanup`: the weekly host cleanup (old logs, temp files, uploads, OS upgrades, the weekly backup). */
import { z } from 'zod';

import { days } from './duration.js';

export const cleanupSchema = z.strictObject({
  /** `*.log` and `*.log.*` in paths.logs older than this are deleted (the guide: 7 days). */
  logsDays: days(7),
  /** Temp files matching `tempPattern` in paths.temp older than this (the guide: 1 day). */
  tempDays: days(1),
  /** A glob with only `*` wildcards, matched against file names in paths.temp (the guide: llmchat-*). */
  tempPattern: z.string().regex(/^[A-Za-z0-9._*-]+$/, 'must be a file-name pattern with * wildcards only').default('llmchat-*'),
  /** Files in paths.uploads older than this (the guide: 30 days). */
  uploadsDays: days(30),
  /** Run `apt-get update && apt-get upgrade -y` (the guide's step 6). Off by default: a dry run only lists upgrades. */
  osUpgrades: z.boolean().default(false),
  /** Take the weekly backup (the backup workflow as a child) before retention. */
  backup: z.boolean().default(true),
});
export type CleanupSettings = z.infer<typeof cleanupSchema>;
