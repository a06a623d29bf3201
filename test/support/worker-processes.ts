/**
 * Worker processes as on separate hosts: `node dist/src/worker.js <config>` with its own config file — its own
 * `worker.host`, metrics port and state dirs (`paths.state`, `deploy.stateDir`) — beside a base config.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { parse, stringify } from 'yaml';
import { parseConfig, type OpsConfig } from '../../src/common/config/index.js';
import { freePort, PG, ROOT, tempDir, waitFor } from './services.js';

export interface WorkerProcess {
  host: string;
  configFile: string;
  cfg: OpsConfig;
  child: ChildProcess;
  output: () => string;
  exited: Promise<number | null>;
  /** `<pid>@<hostname>`-style identity prefix the SDK reports for this process. */
  pid: number;
  kill: (signal?: NodeJS.Signals) => Promise<void>;
}

export interface HostOptions {
  /** `worker.host` of this process. */
  host: string;
  /** `worker.dataHost` (default: `host`). */
  dataHost?: string;
  /** Extra top-level config keys merged in (e.g. `{ worker: {...} }` is merged into worker). */
  worker?: Record<string, unknown>;
}

/** Writes `<base>`'s config as one host's: own host name, metrics port and state dirs for every environment. */
export async function hostConfig(baseFile: string, opts: HostOptions): Promise<{ file: string; cfg: OpsConfig }> {
  const doc = parse(await readFile(baseFile, 'utf8')) as Record<string, any>;
  const dir = tempDir(`host-${opts.host}`);
  doc.worker = { ...(doc.worker ?? {}), metricsPort: await freePort(), host: opts.host, ...(opts.dataHost ? { dataHost: opts.dataHost } : {}), ...(opts.worker ?? {}) };
  for (const [name, env] of Object.entries(doc.environments as Record<string, any>)) {
    env.paths = { ...env.paths, state: path.join(dir, 'fault-state', name) };
    // Own release mirror; the one front both hosts deploy through stays where it runs.
    const front = env.deploy?.front ? { ...env.deploy.front, dir: env.deploy.front.dir ?? path.join(env.deploy.stateDir, 'front') } : undefined;
    env.deploy = { ...(env.deploy ?? {}), stateDir: path.join(dir, 'releases', name), ...(front ? { front } : {}) };
  }
  const file = path.join(dir, 'ops.config.yaml');
  await writeFile(file, stringify(doc));
  return { file, cfg: parseConfig(stringify(doc), file, ROOT) };
}

/** Starts a worker process on `configFile` and waits until it has started (or rejects with its output). */
export async function startWorkerProcess(configFile: string, host: string, cfg: OpsConfig): Promise<WorkerProcess> {
  const child = spawn('node', ['dist/src/worker.js', configFile], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, LLMCHAT_DB_PASSWORD: PG.password } });
  let output = '';
  child.stdout?.on('data', (c) => (output += c));
  child.stderr?.on('data', (c) => (output += c));
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  const w: WorkerProcess = {
    host,
    configFile,
    cfg,
    child,
    output: () => output,
    exited,
    pid: child.pid as number,
    kill: async (signal = 'SIGKILL') => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill(signal);
      await exited;
    },
  };
  await Promise.race([
    waitFor(`worker on ${host} started`, async () => output.includes('llmchat-ops worker started'), 90_000),
    exited.then((code) => {
      throw new Error(`worker on ${host} exited (${code}) before it started:\n${output.slice(-3000)}`);
    }),
  ]);
  return w;
}

/** A host's config and a worker process on it. */
export async function startHost(baseFile: string, opts: HostOptions): Promise<WorkerProcess> {
  const { file, cfg } = await hostConfig(baseFile, opts);
  return startWorkerProcess(file, opts.host, cfg);
}

/** The pid part of the SDK's worker identity (`<pid>@<hostname>`). */
export const pidOf = (identity: string | null | undefined) => Number(String(identity ?? '').split('@')[0]);
