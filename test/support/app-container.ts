/** The stand-in app as a real container, run by compose the way the demo and production stacks run it. */
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { execa } from 'execa';
import { freePort, httpOk, PG, ROOT, tempDir, waitFor } from './services.js';

export interface AppContainer {
  url: string;
  project: string;
  composeFile: string;
  logDir: string;
  stop: () => Promise<void>;
  down: () => Promise<void>;
}

export async function startAppContainer(opts: { databaseUrl: string; redisUrl: string; version?: string }): Promise<AppContainer> {
  const port = await freePort();
  const project = `llmchat-test-${process.pid}-${port}`;
  const composeFile = path.join(ROOT, 'app/compose/docker-compose.production.yml');
  const logDir = tempDir('container-logs');
  const uploads = path.join(logDir, 'uploads');
  await mkdir(uploads, { recursive: true });
  const env = {
    LLMCHAT_VERSION: opts.version ?? 'v1',
    LLMCHAT_APP_PORT: String(port),
    LLMCHAT_DATABASE_URL: opts.databaseUrl,
    LLMCHAT_REDIS_URL: opts.redisUrl,
    LLMCHAT_DB_PASSWORD: PG.password,
    LLMCHAT_LOG_DIR: logDir,
    LLMCHAT_UPLOADS_DIR: uploads,
  };
  const compose = (...args: string[]) => execa(path.join(ROOT, 'scripts/compose.sh'), ['-p', project, '-f', composeFile, ...args], { env });
  await compose('up', '-d');
  const url = `http://127.0.0.1:${port}`;
  await waitFor(`container app on ${url}`, httpOk(`${url}/health/db`));
  return {
    url,
    project,
    composeFile,
    logDir,
    stop: async () => void (await compose('stop', '--timeout', '5')),
    down: async () => void (await compose('down', '--timeout', '5')),
  };
}
