/**
 * The fast path from the monitoring stack: Alertmanager's webhook receiver posts here, and every environment with a
 * firing alert gets a faultDetection run at once (joining one already running) instead of waiting for the 5-minute
 * schedule. The payload is untrusted: bounded size, schema-checked, environments must exist in the config, and a
 * bearer token is required when `alertmanagerReceiver.tokenEnv` is set. Nothing is started for a bad request.
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Client } from '@temporalio/client';
import type { MetricMeter } from '@temporalio/common';
import { z } from 'zod';
import { resolveSecret, type OpsConfig } from './config.js';
import { faultDetection } from './workflows/fault-detection.js';

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
  alertnames: string[];
}

/** The workflow id of a detection run triggered by Alertmanager: one at a time per environment. */
export const alertmanagerRunId = (environment: string) => `faultDetection-${environment}-alertmanager`;

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
      throw new HttpError(422, `unknown environment ${JSON.stringify(environment).slice(0, 80)}; known: ${Object.keys(cfg.environments).join(', ')}`);
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

export async function startAlertmanagerReceiver(opts: { cfg: OpsConfig; client: Client; host?: string; port?: number; meter?: MetricMeter }): Promise<AlertmanagerReceiver> {
  const { cfg, client } = opts;
  const settings = cfg.alertmanagerReceiver;
  const token = resolveSecret(settings.tokenEnv); // a missing secret fails the start, not every request
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
    const plan = planRuns(cfg, payload);
    const started: StartedRun[] = [];
    for (const { environment, alertnames } of plan) {
      const workflowId = alertmanagerRunId(environment);
      await client.workflow.start(faultDetection, {
        taskQueue: cfg.temporal.taskQueue,
        workflowId,
        workflowIdConflictPolicy: 'USE_EXISTING', // a run already checking this environment answers for this alert too
        args: [{ environment, requestedBy: `alertmanager:${alertnames.join(',')}`.slice(0, 128) }],
      });
      started.push({ environment, workflowId, alertnames });
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
