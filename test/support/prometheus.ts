/**
 * Test support for the monthly report: a month of synthetic app metrics with a known latency distribution and
 * known error counts, backfilled into a private Prometheus (Debian's `prometheus`, `promtool tsdb
 * create-blocks-from openmetrics`) on a free loopback port; and a tiny PNG reader for Chromium's screenshots.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { inflateSync } from 'node:zlib';
import { execa } from 'execa';
import { freePort, tempDir, waitFor } from './services.js';

const STEP_S = 900; // one sample every 15 minutes
const ROUTES = [
  { route: '/api/chat', perSlot: 300, clientErrors: 3, serverErrors: (day: number) => (day % 4) * 4 },
  { route: '/api/sessions', perSlot: 150, clientErrors: 1, serverErrors: () => 0 },
  { route: '/health', perSlot: 60, clientErrors: 0, serverErrors: () => 0 },
  // Prometheus' own scrapes, one in 15 failing: not user traffic, counted nowhere (src/common/http-errors.ts).
  { route: '/metrics', perSlot: 15, clientErrors: 0, serverErrors: () => 1, scrape: true },
];
const USER_ROUTES = ROUTES.filter((r) => !('scrape' in r));

/** The synthetic month's request totals per route and status code (what fault detection would count from /metrics). */
export function monthTotals(days: number): { route: string; status: string; count: number }[] {
  const slotsPerDay = 86_400 / STEP_S;
  return ROUTES.flatMap((r) => {
    let s5 = 0;
    for (let d = 0; d < days; d++) s5 += r.serverErrors(d) * slotsPerDay;
    const c4 = r.clientErrors * slotsPerDay * days;
    return [
      { route: r.route, status: '200', count: r.perSlot * slotsPerDay * days - c4 - s5 },
      { route: r.route, status: '404', count: c4 },
      { route: r.route, status: '500', count: s5 },
    ];
  });
}
/**
 * Latency: piecewise uniform — 60 % in (0, 0.1] s, 30 % in (0.1, 0.5], 8 % in (0.5, 1], 2 % in (1, 2]. Within a
 * bucket the values are uniform, so histogram_quantile's linear interpolation is exact for this distribution.
 */
const SHARES: [number, number][] = [[0.1, 0.6], [0.5, 0.3], [1, 0.08], [2, 0.02]];
const BUCKETS = [0.1, 0.5, 1, 2, 5, 10];
const MEAN_S = 0.6 * 0.05 + 0.3 * 0.3 + 0.08 * 0.75 + 0.02 * 1.5;

/** What the synthetic month must produce. */
export interface Expected {
  requests: number;
  clientErrors: number;
  serverErrors: number;
  /** 5xx over the users' requests. */
  errorPercent: number;
  /** 4xx over the users' requests, apart. */
  clientErrorPercent: number;
  averageMs: number;
  p95Ms: number;
  p99Ms: number;
  memoryPercent: number;
  cpuPercent: number;
  diskPercent: number;
  dailyErrorPercent: number[];
}

export function expectedFigures(days: number): Expected {
  const slotsPerDay = 86_400 / STEP_S;
  const perSlot = USER_ROUTES.reduce((n, r) => n + r.perSlot, 0);
  const requests = perSlot * slotsPerDay * days;
  const clientErrors = USER_ROUTES.reduce((n, r) => n + r.clientErrors, 0) * slotsPerDay * days;
  let serverErrors = 0;
  const dailyErrorPercent: number[] = [];
  for (let d = 0; d < days; d++) {
    const s = USER_ROUTES.reduce((n, r) => n + r.serverErrors(d), 0) * slotsPerDay;
    serverErrors += s;
    dailyErrorPercent.push((s / (perSlot * slotsPerDay)) * 100);
  }
  return {
    requests,
    clientErrors,
    serverErrors,
    errorPercent: (serverErrors / requests) * 100,
    clientErrorPercent: (clientErrors / requests) * 100,
    averageMs: MEAN_S * 1000,
    p95Ms: (0.5 + ((0.95 - 0.9) / 0.08) * 0.5) * 1000, // 812.5
    p99Ms: (1 + ((0.99 - 0.98) / 0.02) * 1) * 1000, // 1500
    memoryPercent: 85,
    cpuPercent: 30,
    diskPercent: 60,
    dailyErrorPercent,
  };
}

/** Writes the month [start, end) of the job's series as OpenMetrics text. */
async function writeOpenMetrics(file: string, job: string, startMs: number, endMs: number): Promise<void> {
  const out = createWriteStream(file);
  const write = (s: string) => (out.write(s) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', () => r())));
  const slots = Math.round((endMs - startMs) / 1000 / STEP_S);
  const ts = (i: number) => startMs / 1000 + i * STEP_S;
  const day = (i: number) => Math.floor((i * STEP_S) / 86_400);
  const j = `job="${job}",environment="production"`;

  // Counters (cumulative up to and including slot i: the slot's requests happened in the 15 minutes before ts(i)).
  await write('# TYPE llmchat_http_requests counter\n');
  const cum = ROUTES.map(() => ({ ok: 0, c4: 0, c5: 0 }));
  for (let i = 0; i <= slots; i++) {
    for (const [k, r] of ROUTES.entries()) {
      const c = cum[k]!;
      if (i > 0) {
        const s5 = r.serverErrors(day(i - 1));
        c.c4 += r.clientErrors;
        c.c5 += s5;
        c.ok += r.perSlot - r.clientErrors - s5;
      }
      const base = `${j},method="GET",route="${r.route}"`;
      await write(`llmchat_http_requests_total{${base},status_code="200"} ${c.ok} ${ts(i)}\nllmchat_http_requests_total{${base},status_code="404"} ${c.c4} ${ts(i)}\nllmchat_http_requests_total{${base},status_code="500"} ${c.c5} ${ts(i)}\n`);
    }
  }
  await write('# TYPE llmchat_http_request_duration_seconds histogram\n');
  for (let i = 0; i <= slots; i++) {
    for (const r of ROUTES) {
      const n = r.perSlot * i;
      const base = `${j},method="GET",route="${r.route}"`;
      let acc = 0;
      const lines: string[] = [];
      for (const le of BUCKETS) {
        acc = SHARES.filter(([upper]) => upper <= le).reduce((s, [, share]) => s + share, 0);
        lines.push(`llmchat_http_request_duration_seconds_bucket{${base},le="${le}"} ${n * acc} ${ts(i)}`);
      }
      lines.push(`llmchat_http_request_duration_seconds_bucket{${base},le="+Inf"} ${n} ${ts(i)}`);
      lines.push(`llmchat_http_request_duration_seconds_sum{${base}} ${n * MEAN_S} ${ts(i)}`);
      lines.push(`llmchat_http_request_duration_seconds_count{${base}} ${n} ${ts(i)}`);
      await write(lines.join('\n') + '\n');
    }
  }
  await write('# TYPE process_cpu_seconds counter\n');
  for (let i = 0; i <= slots; i++) await write(`process_cpu_seconds_total{${j}} ${i * STEP_S * 0.3} ${ts(i)}\n`);
  await write('# TYPE llmchat_database_connections_active gauge\n');
  for (let i = 0; i <= slots; i++) await write(`llmchat_database_connections_active{${j}} ${5 + (i % 3)} ${ts(i)}\n`);
  await write('# TYPE node_memory_MemTotal_bytes gauge\n');
  for (let i = 0; i <= slots; i++) await write(`node_memory_MemTotal_bytes{job="node"} 8000000000 ${ts(i)}\n`);
  await write('# TYPE node_memory_MemAvailable_bytes gauge\n');
  for (let i = 0; i <= slots; i++) await write(`node_memory_MemAvailable_bytes{job="node"} 1200000000 ${ts(i)}\n`);
  await write('# TYPE node_filesystem_size_bytes gauge\n');
  for (let i = 0; i <= slots; i++) await write(`node_filesystem_size_bytes{job="node",mountpoint="/"} 100000000000 ${ts(i)}\n`);
  await write('# TYPE node_filesystem_avail_bytes gauge\n');
  for (let i = 0; i <= slots; i++) await write(`node_filesystem_avail_bytes{job="node",mountpoint="/"} 40000000000 ${ts(i)}\n`);
  await write('# EOF\n');
  await new Promise<void>((resolve, reject) => out.end((err?: Error | null) => (err ? reject(err) : resolve())));
}

/**
 * Writes the synthetic month [start, end) of the job's series as TSDB blocks into a Prometheus data directory
 * (`promtool tsdb create-blocks-from openmetrics`): what a month of scraping would have left there. A running
 * Prometheus picks the blocks up at its next restart (or its next block reload, within a minute).
 */
export async function backfillMonth(job: string, startMs: number, endMs: number, dataDir: string): Promise<void> {
  const metrics = path.join(tempDir('backfill'), 'month.om');
  await writeOpenMetrics(metrics, job, startMs, endMs);
  // One block per month instead of promtool's default of one per 2 h (~370 of them): seconds instead of minutes.
  await execa('promtool', ['tsdb', 'create-blocks-from', 'openmetrics', '--quiet', '--max-block-duration=744h', metrics, dataDir]);
}

export interface PrivatePrometheus {
  url: string;
  stop: () => Promise<void>;
}

/** Backfills the month into a fresh TSDB and serves it from a private Prometheus on a free loopback port. */
export async function prometheusWithMonth(job: string, startMs: number, endMs: number): Promise<PrivatePrometheus> {
  const dir = tempDir('prometheus');
  const data = path.join(dir, 'data');
  await backfillMonth(job, startMs, endMs, data);
  const config = path.join(dir, 'prometheus.yml');
  await writeFile(config, 'global:\n  scrape_interval: 1h\nscrape_configs: []\n');
  const port = await freePort();
  const child: ChildProcess = spawn(
    'prometheus',
    [`--config.file=${config}`, `--storage.tsdb.path=${data}`, '--storage.tsdb.retention.time=100y', `--web.listen-address=127.0.0.1:${port}`, '--log.level=warn'],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  let stderr = '';
  child.stderr?.on('data', (c) => (stderr += c));
  child.on('error', () => {});
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`prometheus on ${url}`, async () => {
      if (child.exitCode !== null) throw new Error(`prometheus exited: ${stderr}`);
      return (await fetch(`${url}/-/ready`, { signal: AbortSignal.timeout(1000) })).ok;
    }, 60_000);
  } catch (err) {
    child.kill('SIGKILL');
    throw err;
  }
  return {
    url,
    stop: async () => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once('exit', r));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

/** Decodes an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes) into RGBA pixels. */
export async function readPng(file: string): Promise<{ width: number; height: number; pixel: (x: number, y: number) => [number, number, number] }> {
  const buf = await readFile(file);
  if (buf.readUInt32BE(0) !== 0x89504e47) throw new Error(`${file} is not a PNG`);
  let pos = 8;
  let width = 0, height = 0, colorType = 0;
  const idat: Buffer[] = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('latin1', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      if (data[8] !== 8 || data[12] !== 0) throw new Error('only 8-bit non-interlaced PNGs');
      colorType = data[9]!;
    } else if (type === 'IDAT') idat.push(data);
    pos += 12 + len;
  }
  const bpp = colorType === 6 ? 4 : colorType === 2 ? 3 : 0;
  if (!bpp) throw new Error(`unsupported PNG colour type ${colorType}`);
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const px = Buffer.alloc(height * stride);
  for (let y = 0; y < height; y++) {
    const f = raw[y * (stride + 1)]!;
    for (let x = 0; x < stride; x++) {
      const cur = raw[y * (stride + 1) + 1 + x]!;
      const a = x >= bpp ? px[y * stride + x - bpp]! : 0;
      const b = y > 0 ? px[(y - 1) * stride + x]! : 0;
      const c = x >= bpp && y > 0 ? px[(y - 1) * stride + x - bpp]! : 0;
      let v: number;
      if (f === 0) v = cur;
      else if (f === 1) v = cur + a;
      else if (f === 2) v = cur + b;
      else if (f === 3) v = cur + ((a + b) >> 1);
      else {
        const p = a + b - c, pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
        v = cur + (pa <= pb && pa <= pc ? a : pb <= pc ? b : c);
      }
      px[y * stride + x] = v & 255;
    }
  }
  return { width, height, pixel: (x, y) => [px[y * stride + x * bpp]!, px[y * stride + x * bpp + 1]!, px[y * stride + x * bpp + 2]!] };
}
