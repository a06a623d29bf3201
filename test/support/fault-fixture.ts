/**
 * A fault-detection fixture: dev server, scratch database, private Redis, the stand-in app in a real container,
 * webhook + Slack receivers and a real SMTP server, and a worker whose config has the fault detector's settings.
 */
import { randomUUID } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import type { Worker } from '@temporalio/worker';
import { SMTPServer } from 'smtp-server';
import { parse, stringify } from 'yaml';
import { parseConfig, type OpsConfig } from '../../src/common/config/index.js';
import { createWorker } from '../../src/worker.js';
import { startAppContainer, type AppContainer } from './app-container.js';
import { privateRedis, ROOT, scratchDatabase, tempDir } from './services.js';
import { alertReceiver, startDevServer, testConfigYaml, workflowBundle } from './temporal.js';

export interface Mail {
  subject: string;
  text: string;
}

export async function smtpReceiver(): Promise<{ host: string; port: number; mails: Mail[]; close: () => Promise<void> }> {
  const mails: Mail[] = [];
  const smtp = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    onData(stream, _session, cb) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString('utf8')));
      stream.on('end', () => {
        const headers = (data.split(/\r?\n\r?\n/)[0] ?? '').replace(/\r?\n[ \t]+/g, ' ');
        const subject = /^Subject: (.*)$/im.exec(headers)?.[1] ?? '';
        mails.push({ subject: decodeMime(subject), text: data });
        cb();
      });
    },
  });
  await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', r));
  const port = (smtp.server.address() as { port: number }).port;
  return { host: '127.0.0.1', port, mails, close: () => new Promise((r) => smtp.close(() => r())) };
}

/** Decodes RFC 2047 encoded-words (nodemailer encodes the Chinese subject), joining adjacent ones byte-wise. */
export function decodeMime(s: string): string {
  const parts: (string | Buffer)[] = [];
  let last = 0;
  for (const m of s.matchAll(/=\?utf-8\?([BQ])\?([^?]*)\?=/gi)) {
    const between = s.slice(last, m.index);
    if (!(parts.length && Buffer.isBuffer(parts.at(-1)) && /^\s*$/.test(between))) parts.push(between);
    const [, enc, text] = m as unknown as [string, string, string];
    const bytes = enc.toUpperCase() === 'B' ? Buffer.from(text, 'base64') : Buffer.from(text.replace(/_/g, ' ').replace(/=([0-9A-F]{2})/gi, (_x, h: string) => String.fromCharCode(parseInt(h, 16))), 'latin1');
    const prev = parts.at(-1);
    if (Buffer.isBuffer(prev)) parts[parts.length - 1] = Buffer.concat([prev, bytes]);
    else parts.push(bytes);
    last = (m.index ?? 0) + m[0].length;
  }
  parts.push(s.slice(last));
  return parts.map((p) => (Buffer.isBuffer(p) ? p.toString('utf8') : p)).join('');
}

export interface FaultFixture {
  env: TestWorkflowEnvironment;
  app: AppContainer;
  /** Every app container (`apps[0]` is `app`). */
  apps: AppContainer[];
  cfg: OpsConfig;
  /** The same config as a file, for the CLI. */
  configFile: string;
  taskQueue: string;
  webhook: Awaited<ReturnType<typeof alertReceiver>>;
  slack: Awaited<ReturnType<typeof alertReceiver>>;
  smtp: Awaited<ReturnType<typeof smtpReceiver>>;
  redisUrl: string;
  stateRoot: string;
  signingSecret: string;
  startWorker: () => Promise<void>;
  stopWorker: () => Promise<void>;
  teardown: () => Promise<void>;
}

/**
 * `environments`: extra settings per environment name; every environment watches the same app container unless
 * `app` picks another of `apps` containers. `sharedPaths`: every environment gets the same `paths` (the first app's
 * logs, one `temp`, no `paths.state`), as the shipped config gives production and staging.
 */
export async function faultFixture(opts: {
  environments: Record<string, { faultDetection?: unknown; url?: string; app?: number }>;
  alerts?: { escalateAfter?: string; grace?: string };
  alertmanagerReceiver?: unknown;
  apps?: number;
  sharedPaths?: boolean;
  /** Deliver webhook alerts here instead of the fixture's receiver (e.g. the demo alert inbox). */
  webhookUrl?: string;
  /** The Temporal server (default: a dev server of its own). */
  server?: () => Promise<TestWorkflowEnvironment>;
}): Promise<FaultFixture> {
  const [env, db, redis, webhook, slack, smtp] = await Promise.all([(opts.server ?? startDevServer)(), scratchDatabase(), privateRedis(), alertReceiver(), alertReceiver(), smtpReceiver()]);
  const apps: AppContainer[] = [];
  for (let i = 0; i < (opts.apps ?? 1); i++) apps.push(await startAppContainer({ databaseUrl: db.url, redisUrl: redis.url }));
  const app = apps[0] as AppContainer;
  const taskQueue = `test-fault-${randomUUID()}`;
  const stateRoot = tempDir('fault-state');
  const slackEnv = `LLMCHAT_TEST_SLACK_${process.pid}`;
  const secretEnv = `LLMCHAT_TEST_SIGNING_${process.pid}`;
  const signingSecret = randomUUID();
  process.env[slackEnv] = slack.url;
  process.env[secretEnv] = signingSecret;
  const doc = parse(
    testConfigYaml({
      address: env.address,
      taskQueue,
      environments: Object.fromEntries(
        Object.keys(opts.environments).map((name) => {
          const a = apps[opts.environments[name]?.app ?? 0] as AppContainer;
          return [name, { url: opts.environments[name]?.url ?? a.url, logs: opts.sharedPaths ? app.logDir : a.logDir, redisUrl: redis.url, composeProject: a.project, composeFile: a.composeFile }];
        }),
      ),
      webhookUrl: opts.webhookUrl ?? webhook.url,
      slackEnv,
      email: { host: smtp.host, port: smtp.port, to: ['oncall@llmchat.test'] },
    }),
  );
  for (const [name, extra] of Object.entries(opts.environments)) {
    if (!opts.sharedPaths) doc.environments[name].paths.state = path.join(stateRoot, name);
    if (extra.faultDetection) doc.environments[name].faultDetection = extra.faultDetection;
  }
  doc.notifications.webhook.signingSecretEnv = secretEnv;
  doc.alerts = opts.alerts ?? {};
  doc.alertmanagerReceiver = opts.alertmanagerReceiver ?? { enabled: false };
  const configFile = path.join(stateRoot, 'config.yaml');
  await writeFile(configFile, stringify(doc));
  const cfg = parseConfig(stringify(doc), configFile, ROOT);

  let worker: Worker | undefined;
  let running: Promise<void> | undefined;
  const fixture: FaultFixture = {
    env,
    app,
    apps,
    cfg,
    configFile,
    taskQueue,
    webhook,
    slack,
    smtp,
    redisUrl: redis.url,
    stateRoot,
    signingSecret,
    async startWorker() {
      worker = await createWorker(cfg, env.nativeConnection, { workflowBundle: await workflowBundle() });
      running = worker.run();
    },
    async stopWorker() {
      worker?.shutdown();
      await running;
      worker = undefined;
    },
    async teardown() {
      await fixture.stopWorker().catch(() => {});
      await Promise.allSettled(apps.map((a) => a.down()));
      await Promise.allSettled([redis.stop(), webhook.close(), slack.close(), smtp.close(), db.drop()]);
      await env.teardown();
    },
  };
  return fixture;
}
