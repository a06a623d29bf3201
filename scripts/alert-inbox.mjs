#!/usr/bin/env node
// The demo's alert receiver: accepts the webhook POSTs of llmchat-ops (notifications.webhook in
// ops.config.yaml) and appends each one, with the time it arrived, as a line of JSON to an inbox file.
//
//   node scripts/alert-inbox.mjs [--port 9099] [--file .state/alerts.jsonl]
//
// POST /alerts (JSON body, at most 1 MiB) → 204; a repeated Idempotency-Key (a retried delivery) is
// acknowledged without a second line; GET /alerts → the last 100 alerts as a JSON array;
// anything else → 404. Listens on 127.0.0.1 only. Stands in for a real alerting endpoint; it is not one.
import { appendFile, mkdir, readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '9099' },
    file: { type: 'string', default: path.join(process.env.LLMCHAT_OPS_STATE ?? '.state', 'alerts.jsonl') },
  },
});
const port = Number(values.port);
if (!Number.isInteger(port) || port < 1 || port > 65535) {
  console.error(`alert-inbox: invalid --port: ${values.port}`);
  process.exit(2);
}
const file = path.resolve(values.file);
await mkdir(path.dirname(file), { recursive: true });

const LIMIT = 1024 * 1024;
const seen = new Set((await recentLines(Infinity)).map((entry) => entry.idempotencyKey).filter(Boolean));

function reply(res, status, body) {
  res.writeHead(status, body === undefined ? {} : { 'content-type': 'application/json' });
  res.end(body === undefined ? undefined : JSON.stringify(body));
}

async function recentLines(count) {
  const text = await readFile(file, 'utf8').catch((err) => (err.code === 'ENOENT' ? '' : Promise.reject(err)));
  return text.split('\n').filter(Boolean).slice(-count).map((line) => JSON.parse(line));
}

const server = http.createServer((req, res) => {
  const url = new URL(req.url ?? '/', 'http://inbox');
  if (url.pathname !== '/alerts') return reply(res, 404, { error: 'not found' });
  if (req.method === 'GET') {
    recentLines(100).then((alerts) => reply(res, 200, alerts), (err) => reply(res, 500, { error: err.message }));
    return;
  }
  if (req.method !== 'POST') return reply(res, 405, { error: 'use POST' });
  const chunks = [];
  let size = 0;
  req.on('data', (chunk) => {
    size += chunk.length;
    if (size > LIMIT) {
      reply(res, 413, { error: 'body larger than 1 MiB' });
      req.destroy();
    } else chunks.push(chunk);
  });
  req.on('end', () => {
    let alert;
    try {
      alert = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch {
      return reply(res, 400, { error: 'body is not JSON' });
    }
    const key = typeof req.headers['idempotency-key'] === 'string' ? req.headers['idempotency-key'] : null;
    if (key && seen.has(key)) return reply(res, 204);
    if (key) seen.add(key);
    const line = JSON.stringify({ receivedAt: new Date().toISOString(), idempotencyKey: key, alert });
    appendFile(file, line + '\n').then(
      () => {
        console.log(`alert-inbox: [${alert?.severity ?? '?'}] ${alert?.environment ?? '?'}: ${alert?.title ?? ''} ${alert?.message ?? ''}`);
        reply(res, 204);
      },
      (err) => {
        if (key) seen.delete(key);
        reply(res, 500, { error: err.message });
      },
    );
  });
});

server.on('error', (err) => {
  console.error(`alert-inbox: cannot listen on 127.0.0.1:${port}: ${err.message}`);
  process.exit(1);
});
server.listen(port, '127.0.0.1', () => console.log(`alert-inbox: listening on http://127.0.0.1:${port}/alerts, writing ${file}`));
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.close(() => process.exit(0)));
