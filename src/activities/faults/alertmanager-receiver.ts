/**
 * The fast path from the monitoring stack: Alertmanager's webhook receiver posts here, and every environment with a
 * firing alert gets its faultDetection at once (joining the one run already checking it, `llmchat-faults-<env>`)
 * instead of waiting for the 5-minute schedule. Authenticated by default: a bearer token (from
 * `alertmanagerReceiver.tokenFile` or `tokenEnv`) is required, and the receiver does not start without one unless
 * `allowUnauthenticated: true`. The payload is untrusted: bounded size, schema-checked, environments must exist in
 * the config (a 422 does not say which do). Nothing is started for a bad request.
 */
import { timingSafeEqual } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import type { Client } from '@temporalio/client';
import type { MetricMeter } from '@temporalio/common';
import { z } from 'zod';
import { resolveSecret, type OpsConfig } from '../../common/config/index.js';
import { signalFaultDetection } from './alerts.js';
import { faultDetectionRunId } from './faults.js';
import { requireRequestedBy } from '../../workflows/common/inputs.js';

export const ALERTMANAGER_PATH = '/alertmanager';
const MAX_BYTES = 256 * 1024;

const alertSchema = z.object({
  status: z.enum(['firing', 'resolved']),
  labels: z.record(z.string().max(256), z.string().max(1024)),
  annotations: z.record(z.string().max(256), z.string().max(4096)).optional(),
  startsAt: z.string().max(64).optional(),
  endsAt: z.string().max(64).optional(),
  fingerprint: z.string().max(64).optional(),
});
/** Alertmanager's webhook payload, version 4. */
export const alertmanagerPayloadSchema = z.object({
  version: z.literal('4'),
  status: z.enum(['firing', 'resolved']),
  receiver: z.string().max(256).optional(),
  groupKey: z.string().max(4096).optional(),
  alerts: z.array(alertSchema).min(1).max(1000),
});
export type AlertmanagerPayload = z.infer<typeof alertmanagerPayloadSchema>;

export interface StartedRun {
  environment: string;
  workflowId: string;
  runId: string;
  alertnames: string[];
  requestedBy: string;
}

/** The workflow id of the detection run an Alertmanager post joins or starts: the environment's one run. */
export const alertmanagerRunId = faultDetectionRunId;

/**
 * `alertmanager:<name>+<name>…` for any number of alert names (sorted, deduplicated), within the 128 characters of
 * `requestedBy`: names that do not fit are counted (`+3-more`). Always a valid requestedBy.
 */
export function alertmanagerRequester(alertnames: readonly string[]): string {
  const names = [...new Set(alertnames.map((n) => n.replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64) || 'alert'))].sort();
  let by = 'alertmanager:';
  for (let i = 0; i < names.length; i++) {
    const sep = i ? '+' : '';
    const rest = names.length - i - 1;
    const reserve = rest ? `+${rest}-more`.length : 0;
    if (by.length + sep.length + (names[i] as string).length + reserve > 128) {
      by += `${sep}${names.length - i}-more`;
      break;
    }
    by += sep + (names[i] as string);
  }
  return requireRequestedBy(by.slice(0, 128), 'alertmanager');
}

class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BYTES) {
        reject(new HttpError(413, `payload larger than ${MAX_BYTES} bytes`));
        req.resume();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

/** Validates a payload and decides which environments to check; throws HttpError for anything not acceptable. */
export function planRuns(cfg: OpsConfig, payload: unknown): { environment: string; alertnames: string[] }[] {
  const parsed = alertmanagerPayloadSchema.safeParse(payload);
  if (!parsed.success) {
    throw new HttpError(400, `not an Alertmanager webhook payload (version 4): ${parsed.error.issues.slice(0, 3).map((i) => `${i.path.join('.') || '(root)'}: ${i.message}`).join('; ')}`);
  }
  const byEnv = new Map<string, Set<string>>();
  for (const a of parsed.data.alerts) {
    const environment = a.labels.environment;
    if (environment === undefined) throw new HttpError(422, `alert ${JSON.stringify(a.labels.alertname ?? '?').slice(0, 80)} has no "environment" label`);
    if (!Object.hasOwn(cfg.environments, environment)) {
      // The known environments are not named: an answer must not map the installation for whoever posts.
      throw new HttpError(422, `alert ${JSON.stringify(a.labels.alertname ?? '?').slice(0, 80)}: its "environment" label is not an environment of this installation`);
    }
    if (a.status !== 'firing') continue;
    const name = (a.labels.alertname ?? 'alert').replace(/[^A-Za-z0-9_.-]/g, '_').slice(0, 64);
    byEnv.set(environment, (byEnv.get(environment) ?? new Set()).add(name));
  }
  return [...byEnv].map(([environment, names]) => ({ environment, alertnames: [...names].sort() }));
}

export interface AlertmanagerReceiver {
  url: string;
  close: () => Promise<void>;
}

/** The receiver's token: from `tokenFile` (one line, as Alertmanager's credentials_file reads it) or `tokenEnv`. */
export async function receiverToken(settings: OpsConfig['alertmanagerReceiver']): Promise<string | undefined> {
  let token: string | undefined;
  if (settings.tokenFile) {
    let text: string;
    try {
      text = await readFile(settings.tokenFile, 'utf8');
    } catch (err) {
      throw new Error(`alertmanagerReceiver.tokenFile ${settings.tokenFile}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message} (scripts/receiver-token.sh generates it)`);
    }
    token = text.trim();
  } else {
    token = resolveSecret(settings.tokenEnv);
  }
  if (token === undefined) {
    if (settings.allowUnauthenticated) return undefined;
    throw new Error('alertmanagerReceiver needs a token (tokenFile or tokenEnv; scripts/receiver-token.sh generates one), or allowUnauthenticated: true');
  }
  if (token.length < 16 || token.length > 4096 || !/^[\x21-\x7e]+$/.test(token)) throw new Error('the alertmanagerReceiver token must be 16..4096 printable characters without spaces');
  return token;
}

export async function startAlertmanagerReceiver(opts: { cfg: OpsConfig; client: Client; host?: string; port?: number; meter?: MetricMeter }): Promise<AlertmanagerReceiver> {
  const { cfg, client } = opts;
  const settings = cfg.alertmanagerReceiver;
  const token = await receiverToken(settings); // a missing token fails the start, not every request
  const requests = opts.meter?.createCounter('llmchat_ops_alertmanager_requests', 'requests', 'Alertmanager webhook requests by outcome');

  const handle = async (req: http.IncomingMessage): Promise<{ status: number; body: unknown }> => {
    const url = new URL(req.url ?? '/', 'http://receiver');
    if (req.method === 'GET' && url.pathname === '/healthz') return { status: 200, body: { ok: true } };
    if (url.pathname !== ALERTMANAGER_PATH) throw new HttpError(404, `POST Alertmanager webhooks to ${ALERTMANAGER_PATH}`);
    if (req.method !== 'POST') throw new HttpError(405, 'method not allowed');
    if (token) {
      const given = Buffer.from(req.headers.authorization ?? '');
      const want = Buffer.from(`Bearer ${token}`);
      if (given.length !== want.length || !timingSafeEqual(given, want)) throw new HttpError(401, 'missing or wrong bearer token');
    }
    if (!/^application\/json\b/i.test(req.headers['content-type'] ?? '')) throw new HttpError(415, 'content-type must be application/json');
    const text = await readBody(req);
    let payload: unknown;
    try {
      payload = JSON.parse(text);
    } catch {
      throw new HttpError(400, 'body is not valid JSON');
    }
    const plan = planRuns(cfg, payload).map((p) => ({ ...p, requestedBy: alertmanagerRequester(p.alertnames) }));
    const started: StartedRun[] = [];
    for (const { environment, alertnames, requestedBy } of plan) {
      // A run already checking this environment records this alert and answers for it too; otherwise one starts.
      const { workflowId, runId } = await signalFaultDetection(client, cfg.temporal.taskQueue, environment, requestedBy);
      started.push({ environment, workflowId, runId, alertnames, requestedBy });
    }
    return { status: 202, body: { started } };
  };

  const server = http.createServer((req, res) => {
    handle(req).then(
      ({ status, body }) => {
        requests?.add(1, { outcome: String(status) });
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify(body));
      },
      (err: unknown) => {
        const status = err instanceof HttpError ? err.status : 503; // Temporal unreachable: Alertmanager retries
        requests?.add(1, { outcome: String(status) });
        res.writeHead(status, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (err as Error).message }));
      },
    );
  });
  server.on('clientError', (_err, socket) => socket.destroy());
  const host = opts.host ?? settings.host;
  const port = opts.port ?? settings.port;
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  const actual = (server.address() as { port: number }).port;
  return {
    url: `http://${host}:${actual}${ALERTMANAGER_PATH}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
