/**
 * Alert delivery: email (SMTP via nodemailer), Slack (incoming webhook) and a generic webhook — one channel per
 * activity call, so a retry of a failed channel never re-sends to the ones that already succeeded.
 */
import { ApplicationFailure } from '@temporalio/common';
import { nodemailer } from '../../common/lazy-modules.js';
import { resolveSecret, type Channel, type OpsConfig } from '../../common/config/index.js';
import type { Alert } from '../../common/health.js';
import { signWebhookBody } from '../../common/webhook-signature.js';
import { permanentOnKnownErrors } from './failures.js';

export interface DeliveryInput {
  channel: Channel;
  alert: Alert;
  /** Stable across retries (workflow id + alert index): receivers can de-duplicate on it. */
  alertId: string;
}

export interface DeliveryResult {
  channel: Channel;
  delivered: boolean;
  detail: string;
}

const HTTP_TIMEOUT_MS = 10_000;

/** POSTs JSON; 4xx other than 408/429 is permanent (the receiver rejects this payload), the rest is retried. */
async function postJson(url: string, body: unknown, headers: Record<string, string> = {}, sign?: (payload: string) => Record<string, string>): Promise<number> {
  const payload = JSON.stringify(body);
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers, ...(sign ? sign(payload) : {}) },
    body: payload,
    signal: AbortSignal.timeout(HTTP_TIMEOUT_MS),
  });
  await res.arrayBuffer();
  if (res.status >= 400 && res.status < 500 && res.status !== 408 && res.status !== 429) {
    throw ApplicationFailure.nonRetryable(`receiver answered HTTP ${res.status}`, 'AlertRejected');
  }
  if (res.status >= 300) throw new Error(`receiver answered HTTP ${res.status}`);
  return res.status;
}

const ICONS: Record<Alert['severity'], string> = { critical: ':rotating_light:', warning: ':warning:', info: ':information_source:' };

export function formatAlertText(alert: Alert): string {
  const measured = alert.value !== undefined ? ` (value ${alert.value}${alert.threshold !== undefined ? `, threshold ${alert.threshold}` : ''})` : '';
  return `[${alert.severity.toUpperCase()}] ${alert.title} — ${alert.message}${measured}`;
}

export function createNotifyActivities(cfg: OpsConfig) {
  const { notifications } = cfg;
  return {
    async deliverAlert({ channel, alert, alertId }: DeliveryInput): Promise<DeliveryResult> {
      return permanentOnKnownErrors(async () => {
        switch (channel) {
          case 'webhook': {
            const hook = notifications.webhook;
            if (!hook) return { channel, delivered: false, detail: 'webhook channel not configured' };
            const token = resolveSecret(hook.tokenEnv);
            const signingSecret = resolveSecret(hook.signingSecretEnv);
            const status = await postJson(
              hook.url,
              { id: alertId, source: 'llmchat-ops', ...alert },
              { 'idempotency-key': alertId, ...(token ? { authorization: `Bearer ${token}` } : {}) },
              signingSecret ? (payload) => signWebhookBody(signingSecret, payload) : undefined,
            );
            return { channel, delivered: true, detail: `HTTP ${status}` };
          }
          case 'slack': {
            const slack = notifications.slack;
            if (!slack) return { channel, delivered: false, detail: 'slack channel not configured' };
            const url = resolveSecret(slack.webhookUrlEnv) as string; // the webhook URL itself is the secret
            const status = await postJson(url, { text: `${ICONS[alert.severity]} LLMChat 系统告警 ${formatAlertText(alert)}` });
            return { channel, delivered: true, detail: `HTTP ${status}` };
          }
          case 'email': {
            const email = notifications.email;
            if (!email) return { channel, delivered: false, detail: 'email channel not configured' };
            const user = resolveSecret(email.userEnv);
            const pass = resolveSecret(email.passwordEnv);
            const transport = nodemailer().createTransport({
              host: email.host,
              port: email.port,
              secure: email.secure,
              auth: user ? { user, pass } : undefined,
              connectionTimeout: HTTP_TIMEOUT_MS,
            });
            try {
              const info = await transport.sendMail({
                from: email.from,
                to: email.to,
                subject: `LLMChat 告警: [${alert.severity}] ${alert.title} (${alert.environment})`,
                text: `${formatAlertText(alert)}\n\nenvironment: ${alert.environment}\ntype: ${alert.type}\nalert id: ${alertId}\n`,
                messageId: `<${alertId.replace(/[^A-Za-z0-9.-]/g, '-')}@llmchat-ops>`,
              });
              return { channel, delivered: true, detail: `accepted by ${email.host}: ${info.accepted.length} recipient(s)` };
            } finally {
              transport.close();
            }
          }
          default:
            throw ApplicationFailure.nonRetryable(`Unknown alert channel ${JSON.stringify(channel)}`, 'BadInput');
        }
      });
    },
  };
}
