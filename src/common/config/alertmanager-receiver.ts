/** Section `alertmanagerReceiver`: the HTTP endpoint in the worker that Alertmanager's webhook receiver posts to. */
import { z } from 'zod';

import { envVarName, port } from './fields.js';

export const alertmanagerReceiverSchema = z.strictObject({
  /** Off unless configured (ops.config.yaml turns it on), so test and ad-hoc workers do not compete for the port. */
  enabled: z.boolean().default(false),
  /** Address the receiver listens on. Default 127.0.0.1. */
  host: z.string().min(1).default('127.0.0.1'),
  /** Port the receiver listens on. Default 9465. */
  port: port.default(9465),
  /**
   * Requests must carry `Authorization: Bearer <token>`: the token is the one line of `tokenFile` (what
   * scripts/receiver-token.sh generates and Alertmanager's `credentials_file` reads; relative to the config file),
   * or the value of the environment variable `tokenEnv`. Set one of the two, not both.
   */
  tokenFile: z.string().min(1).optional(),
  tokenEnv: envVarName.optional(),
  /** Without a token the receiver refuses to start, unless this is true (anyone who reaches the port can then trigger runs). */
  allowUnauthenticated: z.boolean().default(false),
});
export type AlertmanagerReceiverSettings = z.infer<typeof alertmanagerReceiverSchema>;
