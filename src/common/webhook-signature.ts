/**
 * HMAC-SHA256 signatures on webhook deliveries, so a receiver can tell llmchat-ops' alerts from anyone else's
 * POSTs. Over `<timestamp>.<body>` (the exact bytes sent), so a captured delivery cannot be replayed later with
 * a fresh timestamp:
 *   x-llmchat-timestamp: 1764201600
 *   x-llmchat-signature: sha256=<hex HMAC-SHA256(secret, "1764201600." + body)>
 */
import { createHmac, timingSafeEqual } from 'node:crypto';

export const SIGNATURE_HEADER = 'x-llmchat-signature';
export const TIMESTAMP_HEADER = 'x-llmchat-timestamp';

export function signWebhookBody(secret: string, body: string, timestamp = Math.floor(Date.now() / 1000)): Record<string, string> {
  const mac = createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex');
  return { [TIMESTAMP_HEADER]: String(timestamp), [SIGNATURE_HEADER]: `sha256=${mac}` };
}

/** For receivers (and our tests): true if the headers sign `body` with `secret` within `toleranceSeconds`. */
export function verifyWebhookSignature(
  secret: string,
  headers: Record<string, string | string[] | undefined>,
  body: string,
  { toleranceSeconds = 300, now = Date.now() } = {},
): boolean {
  const ts = headers[TIMESTAMP_HEADER];
  const sig = headers[SIGNATURE_HEADER];
  if (typeof ts !== 'string' || typeof sig !== 'string' || !/^\d{1,12}$/.test(ts) || !sig.startsWith('sha256=')) return false;
  if (Math.abs(now / 1000 - Number(ts)) > toleranceSeconds) return false;
  const expected = Buffer.from(createHmac('sha256', secret).update(`${ts}.${body}`).digest('hex'));
  const given = Buffer.from(sig.slice('sha256='.length));
  return given.length === expected.length && timingSafeEqual(given, expected);
}
