/**
 * The front proxy of a blue/green environment: a private nginx on the environment URL's host and port that
 * forwards to the app slot that currently serves (blue or green, each on its own port). Switching rewrites the
 * config atomically, checks it with `nginx -t` and reloads nginx: new connections go to the new slot while
 * the old worker processes finish the requests they have — no request is refused during a switch.
 *
 * Layout under `<deploy.stateDir>/front/`: nginx.conf, nginx.pid, logs/{access,error}.log (the guide watches
 * nginx's access log), tmp/. nginx runs as its own daemon, so it outlives worker restarts.
 */
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { execa } from 'execa';
import { checkFrontDrift, recordFrontWrite } from './front-drift.js';

export interface FrontSpec {
  /** <stateDir>/front */
  prefix: string;
  /** nginx binary */
  nginx: string;
  listenHost: string;
  listenPort: number;
}

export function frontSpec(stateDir: string, url: string, nginx: string): FrontSpec {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[|\]$/g, '');
  return { prefix: path.join(stateDir, 'front'), nginx, listenHost: host, listenPort: Number(u.port || (u.protocol === 'https:' ? 443 : 80)) };
}

/** nginx config values are quoted; a path that could break out of the quotes is refused. */
function quoted(value: string): string {
  if (/["\\;{}\n\r$]/.test(value)) throw new Error(`path ${JSON.stringify(value)} cannot be written into the nginx config (quotes, ;, {, }, $ or newlines)`);
  return `"${value}"`;
}

const confFile = (spec: FrontSpec) => path.join(spec.prefix, 'nginx.conf');
/** The front's access log (what a switch counts its failed requests in). */
export const accessLog = (spec: FrontSpec) => path.join(spec.prefix, 'logs', 'access.log');
const pidFile = (spec: FrontSpec) => path.join(spec.prefix, 'nginx.pid');

/**
 * The whole nginx config for an upstream port (pure; tested). `fallback`, the slot that served before a switch,
 * is the upstream's backup server: a request the new slot refuses (it died at the switch) is answered by the old
 * one instead of failing. Every answer names the slot of the config that handled it (X-Llmchat-Slot) and the
 * slot that answered it (X-Llmchat-Served-By), so a check through the front knows which config and which app
 * served it.
 */
export function renderFrontConfig(spec: FrontSpec, upstreamPort: number, slot: string, fallback?: { port: number; slot: string }): string {
  if (!Number.isInteger(upstreamPort) || upstreamPort < 1 || upstreamPort > 65535) throw new Error(`bad upstream port ${upstreamPort}`);
  if (!/^[a-z]+$/.test(slot)) throw new Error(`bad slot name ${slot}`);
  if (fallback && (!Number.isInteger(fallback.port) || fallback.port < 1 || fallback.port > 65535 || fallback.port === upstreamPort || !/^[a-z]+$/.test(fallback.slot))) {
    throw new Error(`bad fallback ${JSON.stringify(fallback)}`);
  }
  const p = (f: string) => quoted(path.join(spec.prefix, f));
  const listen = spec.listenHost.includes(':') ? `[${spec.listenHost}]:${spec.listenPort}` : `${spec.listenHost}:${spec.listenPort}`;
  return `# Written by llmchat-ops (front proxy of a blue/green environment); rewritten at every switch.
# serving slot: ${slot} (127.0.0.1:${upstreamPort})
${fallback ? `# fallback slot: ${fallback.slot} (127.0.0.1:${fallback.port})\n` : ''}worker_processes 1;
daemon on;
pid ${p('nginx.pid')};
error_log ${p('logs/error.log')} warn;
events { worker_connections 1024; }
http {
  access_log ${p('logs/access.log')} combined;
  client_body_temp_path ${p('tmp/client_body')};
  proxy_temp_path ${p('tmp/proxy')};
  fastcgi_temp_path ${p('tmp/fastcgi')};
  uwsgi_temp_path ${p('tmp/uwsgi')};
  scgi_temp_path ${p('tmp/scgi')};
  # No keep-alive towards clients: at a switch nginx reloads, and its old worker closes idle kept-alive client
  # connections; a request sent on one at that instant fails ("other side closed") unless the client retries.
  # One connection per request on this local hop costs little and makes the switch invisible to every client.
  keepalive_timeout 0;
  upstream llmchat_app {
    server 127.0.0.1:${upstreamPort} max_fails=0;${fallback ? `
    server 127.0.0.1:${fallback.port} backup;` : ''}
    keepalive 32;
  }
  map $upstream_addr $llmchat_served_by {
    default none;
    "~:${upstreamPort}$" ${slot};${fallback ? `
    "~:${fallback.port}$" ${fallback.slot};` : ''}
  }
  server {
    listen ${listen};
    location / {
      proxy_pass http://llmchat_app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Llmchat-Slot ${slot};
      proxy_connect_timeout 2s;
      proxy_read_timeout 60s;
      # a keep-alive connection the app closed while idle is retried on a fresh one (also for POST)
      proxy_next_upstream error timeout non_idempotent;
      proxy_next_upstream_tries 3;
      add_header X-Llmchat-Slot ${slot} always;
      add_header X-Llmchat-Served-By $llmchat_served_by always;
    }
  }
}
`;
}

/** The pid of the running front master, if any. */
export function frontPid(spec: FrontSpec): number | undefined {
  let pid: number;
  try {
    pid = Number(readFileSync(pidFile(spec), 'utf8').trim());
  } catch {
    return undefined;
  }
  if (!Number.isInteger(pid) || pid <= 1) return undefined;
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return cmdline.includes('nginx') && state !== 'Z' ? pid : undefined;
  } catch {
    return undefined;
  }
}

/** The upstream port in the current config file (what the front serves, or will serve once started). */
export async function configuredUpstream(spec: FrontSpec): Promise<{ port: number; slot: string } | undefined> {
  try {
    const text = await readFile(confFile(spec), 'utf8');
    const m = /# serving slot: ([a-z]+) \(127\.0\.0\.1:(\d+)\)/.exec(text);
    return m ? { slot: m[1] as string, port: Number(m[2]) } : undefined;
  } catch {
    return undefined;
  }
}

/** What llmchat-ops would write for the upstream a config text names (undefined: it names none). */
export function renderedFor(spec: FrontSpec, text: string): string | undefined {
  const m = /# serving slot: ([a-z]+) \(127\.0\.0\.1:(\d+)\)/.exec(text);
  const f = /# fallback slot: ([a-z]+) \(127\.0\.0\.1:(\d+)\)/.exec(text);
  try {
    return m ? renderFrontConfig(spec, Number(m[2]), m[1] as string, f ? { slot: f[1] as string, port: Number(f[2]) } : undefined) : undefined;
  } catch {
    return undefined;
  }
}

async function nginxRun(spec: FrontSpec, args: string[], conf = confFile(spec)): Promise<void> {
  const r = await execa(spec.nginx, ['-p', `${spec.prefix}/`, '-c', conf, ...args], { reject: false, timeout: 30_000, stdin: 'ignore' });
  if (r.exitCode !== 0) {
    throw new Error(`nginx ${args.join(' ') || '(start)'} failed (exit ${r.exitCode ?? r.signal}): ${(r.stderr || r.stdout).split('\n').slice(-5).join(' | ')}`);
  }
}

/**
 * Points the front at `upstreamPort`: writes the config (checked with `nginx -t` before it replaces the old one),
 * then starts nginx if it is not running, or reloads it gracefully. Idempotent.
 */
export async function applyFront(spec: FrontSpec, upstreamPort: number, slot: string, fallback?: { port: number; slot: string }): Promise<'started' | 'reloaded'> {
  await mkdir(path.join(spec.prefix, 'logs'), { recursive: true });
  await mkdir(path.join(spec.prefix, 'tmp'), { recursive: true });
  const conf = confFile(spec);
  const tmp = `${conf}.${process.pid}.partial`;
  const text = renderFrontConfig(spec, upstreamPort, slot, fallback);
  const fh = await open(tmp, 'w', 0o644);
  try {
    await fh.writeFile(text);
    await fh.sync();
  } finally {
    await fh.close();
  }
  await nginxRun(spec, ['-t', '-q'], tmp);
  // A hand edit of the file being replaced is kept (nginx.conf.hand-edit-<time>); then the write is recorded.
  await checkFrontDrift(spec.prefix, (t) => renderedFor(spec, t));
  await recordFrontWrite(spec.prefix, text, slot, upstreamPort);
  await rename(tmp, conf);
  if (frontPid(spec) !== undefined) {
    await nginxRun(spec, ['-s', 'reload']);
    return 'reloaded';
  }
  await nginxRun(spec, []);
  return 'started';
}

/** Stops the front (graceful quit); nothing running is fine. */
export async function stopFront(spec: FrontSpec, timeoutMs = 10_000): Promise<void> {
  const pid = frontPid(spec);
  if (pid === undefined) return;
  await nginxRun(spec, ['-s', 'quit']).catch(() => process.kill(pid, 'SIGQUIT'));
  const deadline = Date.now() + timeoutMs;
  while (frontPid(spec) === pid && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  if (frontPid(spec) === pid) process.kill(pid, 'SIGKILL');
}

/** GET over a fresh connection (not a pooled keep-alive one that an old nginx worker may still hold). */
export function freshGet(url: string, timeoutMs: number): Promise<{ status: number; body: string; headers: http.IncomingHttpHeaders }> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout: timeoutMs, headers: { connection: 'close' } }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        if (body.length < 1_000_000) body += c;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timed out after ${timeoutMs} ms`)));
    req.on('error', reject);
  });
}
