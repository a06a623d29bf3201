/** Section `approvals`: who may approve the operations that wait for a human (restore over live data, database rollback). */
import { z } from 'zod';

export const approvalsSchema = z.strictObject({
  /**
   * May the person who requested an operation (a restore over live data, a deploy's database rollback) also approve
   * it? Off by default (four eyes); turn on for single-operator installations.
   */
  allowSelfApproval: z.boolean().default(false),
});
export type ApprovalSettings = z.infer<typeof approvalsSchema>;
