/** Section `notifications`: the channels (webhook, Slack, email) and which severities reach which. */
import { z } from 'zod';

import { envVarName, httpUrl, port } from './fields.js';

export const severity = z.enum(['critical', 'warning', 'info']);
export const channel = z.enum(['email', 'slack', 'webhook']);
export type Severity = z.infer<typeof severity>;
export type Channel = z.infer<typeof channel>;

export const notificationsSchema = z.strictObject({
  /** A JSON webhook every notification is POSTed to. */
  webhook: z
    .strictObject({
      /** Where the webhook is posted. */
      url: httpUrl,
      /** Variable holding a bearer token for the `Authorization` header. */
      tokenEnv: envVarName.optional(),
      /** HMAC-SHA256 key for the `x-llmchat-signature` header over `<timestamp>.<body>` (see README). */
      signingSecretEnv: envVarName.optional(),
    })
    .optional(),
  /** Slack: the variable holding the incoming-webhook URL (it is a secret). */
  slack: z.strictObject({ webhookUrlEnv: envVarName }).optional(),
  /** Email over SMTP. */
  email: z
    .strictObject({
      /** SMTP server. */
      host: z.string().min(1),
      /** SMTP port. Default 587. */
      port: port.default(587),
      /** TLS from the first byte (port 465); false = STARTTLS when offered. Default false. */
      secure: z.boolean().default(false),
      /** Sender address. */
      from: z.email(),
      /** Recipients (at least one). */
      to: z.array(z.email()).min(1),
      /** Variables holding the SMTP user and password. */
      userEnv: envVarName.optional(),
      passwordEnv: envVarName.optional(),
    })
    .optional(),
  /** Which channels each severity reaches (the guide: critical → all three, warning → slack+webhook, info → webhook). */
  routes: z
    .strictObject({ critical: z.array(channel), warning: z.array(channel), info: z.array(channel) })
    .default({ critical: ['email', 'slack', 'webhook'], warning: ['slack', 'webhook'], info: ['webhook'] }),
});
export type NotificationSettings = z.infer<typeof notificationsSchema>;
