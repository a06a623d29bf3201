/**
 * The codec endpoint (Temporal's "remote codec" HTTP contract): POST /decode and /encode with
 * `{"payloads":[{"metadata":{k: base64},"data": base64}]}`, also under a namespace segment (`/default/decode`, for
 * the CLI's `--codec-endpoint` templating). The Web UI ("Configure data encoder" → codec server URL, or the UI's
 * TEMPORAL_CODEC_ENDPOINT) and `temporal … --codec-endpoint --codec-auth "Bearer <token>"` show decoded payloads
 * through it.
 *
 * Token-protected: `Authorization: Bearer <token>`, or — for a browser, which cannot add that header — the token as
 * the first path segments `/t/<token>/decode`. CORS answers only the configured origins (the Web UI's); a preflight
 * from another origin gets 403. Loopback by default.
 */
import { timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { Payload } from '@temporalio/common';
import type { AesGcmCodec } from './codec.js';
import type { CodecServerConfig } from './codec-config.js';

const MAX_BODY = 16 * 1024 * 1024;

interface JsonPayload {
  metadata?: Record<string, string> | null;
  data?: string | null;
}

function fromJson(p: JsonPayload): Payload {
  return {
    metadata: p.metadata ? Object.fromEntries(Object.entries(p.metadata).map(([k, v]) => [k, Buffer.from(String(v), 'base64')])) : {},
    data: p.data ? Buffer.from(String(p.data), 'base64') : undefined,
  };
}

function toJson(p: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')])),
    data: p.data ? Buffer.from(p.data).toString('base64') : undefined,
  };
}

function sameSecret(given: string, token: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

export interface CodecServer {
  url: string;
  close(): Promise<void>;
}

/** Starts the endpoint; `token` must be non-empty (read from codecServer.tokenEnv by the caller). */
export async function startCodecServer(opts: { codec: AesGcmCodec; config: CodecServerConfig; token: string; port?: number; log?: (msg: string, meta?: object) => void }): Promise<CodecServer> {
  const { codec, config, token } = opts;
  if (!token) throw new Error(`the codec endpoint needs a token: set ${config.tokenEnv}`);
  const origins = new Set(config.corsOrigins);
  const server = http.createServer((req, res) => {
    const origin = req.headers.origin;
    if (origin && origins.has(origin)) {
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Vary', 'Origin');
      res.setHeader('Access-Control-Allow-Credentials', 'true');
    }
    const send = (status: number, body?: object) => {
      res.writeHead(status, body ? { 'Content-Type': 'application/json' } : {});
      res.end(body ? JSON.stringify(body) : undefined);
    };
    if (req.method === 'OPTIONS') {
      if (!origin || !origins.has(origin)) return send(403, { error: 'origin not allowed' });
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', 'content-type, x-namespace, authorization');
      res.setHeader('Access-Control-Max-Age', '600');
      return send(204);
    }
    let route = (req.url ?? '/').split('?')[0]!;
    let authorized = false;
    const pathToken = /^\/t\/([^/]+)(\/.*)$/.exec(route);
    if (pathToken) {
      authorized = sameSecret(decodeURIComponent(pathToken[1]!), token);
      route = pathToken[2]!;
    }
    const bearer = /^Bearer\s+(.+)$/i.exec(req.headers.authorization ?? '');
    if (bearer) authorized ||= sameSecret(bearer[1]!.trim(), token);
    const op = /^(?:\/[A-Za-z0-9._-]+)?\/(decode|encode)$/.exec(route)?.[1];
    if (!op) return send(404, { error: 'unknown path: POST /decode or /encode' });
    if (req.method !== 'POST') return send(405, { error: 'POST only' });
    if (!authorized) return send(401, { error: 'token required (Authorization: Bearer <token>, or /t/<token>/decode)' });
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        send(413, { error: 'body too large' });
        req.destroy();
      } else chunks.push(c);
    });
    req.on('end', () => {
      if (res.headersSent) return;
      void (async () => {
        let payloads: Payload[];
        try {
          const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { payloads?: unknown };
          if (!Array.isArray(body.payloads)) throw new Error('payloads must be an array');
          payloads = (body.payloads as JsonPayload[]).map(fromJson);
        } catch (err) {
          return send(400, { error: `bad request: ${(err as Error).message}` });
        }
        try {
          const out = op === 'decode' ? await codec.decode(payloads) : await codec.encode(payloads);
          send(200, { payloads: out.map(toJson) });
        } catch (err) {
          opts.log?.('codec endpoint could not decode', { error: (err as Error).message });
          send(422, { error: (err as Error).message });
        }
      })();
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.port ?? config.port, config.host, () => resolve());
  });
  const { port } = server.address() as { port: number };
  return {
    url: `http://${config.host.includes(':') ? `[${config.host}]` : config.host}:${port}`,
    close: () => new Promise((r) => server.close(() => r())),
  };
}
