/**
 * The llmchat-ops worker: every workflow and activity on task queue `llmchat-ops` (and, on the data host, its data
 * activities on `llmchat-ops-data`), JSON logs on stdout,
 * the SDK's Prometheus metrics on `worker.metricsPort`, graceful shutdown on SIGINT/SIGTERM.
 */
import { fileURLToPath } from 'node:url';
import {
  DefaultLogger,
  makeTelemetryFilterString,
  type NativeConnection,
  Runtime,
  Worker,
  type LogEntry,
  type WorkerOptions,
} from '@temporalio/worker';
import { Client, type Connection } from '@temporalio/client';
import { createActivities } from './activities/index.js';
import { startAlertmanagerReceiver, type AlertmanagerReceiver } from './activities/faults/alertmanager-receiver.js';
import { configPath, loadConfig, type OpsConfig } from './common/config/index.js';
import { ownWorkflowsOnly } from './activities/common/caller-guard.js';
import { claimDataHost } from './common/data-host.js';
import { dataConverterFromConfig } from './common/codec.js';
import { resolveTemporalSettings } from './common/temporal-config.js';
import { connectConnection, connectNative } from './common/temporal-connection.js';
import { loadWorkflowBundle } from './workflow-bundle.js';
import { logMemory } from './common/worker-memory.js';
import { dataTaskQueue } from './common/names.js';

export { WORKFLOWS_PATH } from './workflow-bundle.js';

/** One JSON object per line, so logs can be shipped and queried as they are. */
function jsonLine(entry: LogEntry): void {
  const { message, level, meta, timestampNanos } = entry;
  const time = new Date(Number(timestampNanos / 1_000_000n)).toISOString();
  process.stdout.write(`${JSON.stringify({ time, level, msg: message, ...meta }, jsonSafe)}\n`);
}

function jsonSafe(_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString();
  if (value instanceof Error) return { name: value.name, message: value.message };
  return value;
}

/** Installs the process-wide runtime: JSON logger (core logs forwarded) and the Prometheus exporter. */
export function installRuntime(cfg: OpsConfig): void {
  Runtime.install({
    logger: new DefaultLogger(cfg.worker.logLevel, jsonLine),
    // The SDK's default also shuts down on SIGUSR2; here SIGUSR2 asks for the memory report (src/common/worker-memory.ts).
    shutdownSignals: ['SIGINT', 'SIGTERM', 'SIGQUIT'],
    telemetryOptions: {
      logging: { forward: {}, filter: makeTelemetryFilterString({ core: 'WARN' }) },
      metrics: { prometheus: { bindAddress: `127.0.0.1:${cfg.worker.metricsPort}` } },
    },
  });
}

export async function createWorker(
  cfg: OpsConfig,
  connection: NativeConnection,
  overrides: Partial<WorkerOptions> = {},
): Promise<Worker> {
  // The bundle `npm run build` wrote (src/workflow-bundle.ts), or one made now when it is missing or stale.
  let workflowBundle = overrides.workflowBundle;
  if (!workflowBundle) {
    const loaded = await loadWorkflowBundle(new DefaultLogger('WARN', jsonLine));
    if (loaded.source.kind === 'rebuilt') Runtime.instance().logger.warn('workflow bundle built at start', { reason: loaded.source.reason });
    workflowBundle = loaded.bundle;
  }
  const options: WorkerOptions = {
    connection,
    namespace: cfg.temporal.namespace ?? resolveTemporalSettings(cfg.temporal).namespace,
    // Payload encryption (src/common/codec.ts) when temporal.encryption is configured; activities' clients share it.
    dataConverter: dataConverterFromConfig(cfg.temporal.encryption),
    taskQueue: cfg.temporal.taskQueue,
    activities: createActivities(cfg),
    // Running activities finish on SIGTERM (up to the grace time) instead of being cancelled at once.
    shutdownGraceTime: cfg.worker.shutdownGraceTime,
    // Heartbeats reach the server at most this far apart (the SDK's default is 80% of the heartbeat timeout, 12 s
    // for our data activities), so a cancellation reaches a running pg_dump or pg_restore within about a second.
    maxHeartbeatThrottleInterval: cfg.worker.heartbeatThrottle,
    defaultHeartbeatThrottleInterval: cfg.worker.heartbeatThrottle,
    ...(cfg.worker.maxConcurrentActivities ? { maxConcurrentActivityTaskExecutions: cfg.worker.maxConcurrentActivities } : {}),
    ...overrides,
    // Activities refuse workflows of other task queues (a foreign worker's workflow scheduling restoreDatabase).
    interceptors: { ...overrides.interceptors, activity: [ownWorkflowsOnly(), ...(overrides.interceptors?.activity ?? [])] },
    workflowBundle,
  };
  const main = await Worker.create(options);
  if (!isDataHost(cfg)) return main;
  // The data host also polls its own queue `<task queue>-data` (src/workflows/common/data-host-aware.ts): activities only.
  const { workflowBundle: _bundle, workflowsPath: _path, ...activityOptions } = options;
  void _bundle;
  void _path;
  const data = await Worker.create({ ...activityOptions, taskQueue: dataTaskQueue(options.taskQueue) });
  return runsWith(main, data);
}

/** Whether this worker runs on `worker.dataHost` (and so polls the data queue). */
export function isDataHost(cfg: OpsConfig): boolean {
  return cfg.worker.host === cfg.worker.dataHost;
}

/**
 * `main`, whose run() (and so runUntil()) also runs `companion` and stops it when it ends; a companion that
 * fails shuts `main` down. Callers keep one Worker to run and shut down, as before.
 */
function runsWith(main: Worker, companion: Worker): Worker {
  const runMain = main.run.bind(main);
  main.run = async () => {
    let failed: unknown;
    const other = companion.run().catch((err: unknown) => {
      failed = err;
      if (main.getState() === 'RUNNING') main.shutdown();
    });
    try {
      await runMain();
    } finally {
      if (companion.getState() === 'RUNNING') companion.shutdown();
      await other;
    }
    if (failed) throw failed;
  };
  return main;
}

/**
 * Our own SIGINT/SIGTERM listeners, beside the SDK's (which start the graceful shutdown and then remove themselves).
 * They are needed: execa's clean-up hook (signal-exit) re-raises a signal that no other listener handles, which
 * killed the worker at once instead of letting running activities finish within the grace time. A second signal
 * exits at once, for an operator who does not want to wait.
 */
function handleShutdownSignals(cfg: OpsConfig): void {
  let received = 0;
  const onSignal = (signal: NodeJS.Signals) => {
    received++;
    const logger = Runtime.instance().logger;
    if (received === 1) {
      logger.info('shutting down: no new tasks; running activities may finish', { signal, graceMs: cfg.worker.shutdownGraceTime });
    } else {
      logger.warn('second signal: exiting now; running activities will be retried elsewhere', { signal });
      process.exit(130);
    }
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) process.on(signal, onSignal);
}

async function run(): Promise<void> {
  const file = configPath(process.argv[2]);
  const cfg = loadConfig(file);
  installRuntime(cfg);
  handleShutdownSignals(cfg);
  const logger = Runtime.instance().logger;
  // The data host's queue is polled on one host only: its disk holds the backups (src/common/data-host.ts). A second
  // host claiming it refuses to start; a worker on any other host polls the main queue only.
  const claim = isDataHost(cfg) ? await claimDataHost(cfg, (msg, meta) => logger.warn(msg, meta)) : undefined;
  for (const u of claim?.unchecked ?? []) logger.warn('could not check the data host of this task queue (server unreachable)', u);
  const settings = resolveTemporalSettings(cfg.temporal);
  const dataConverter = dataConverterFromConfig(cfg.temporal.encryption); // fails early on missing keys
  const connection = await connectNative(settings);
  try {
    const worker = await createWorker(cfg, connection);
    claim?.conflict.addEventListener('abort', () => {
      logger.error('stopping: another host took over this task queue', { error: (claim.conflict.reason as Error).message });
      process.exitCode = 1;
      worker.shutdown();
    });
    Runtime.instance().logger.info('llmchat-ops worker started', {
      config: file,
      temporal: settings.describe,
      namespace: settings.namespace,
      encryption: dataConverter ? `AES-256-GCM, key ${cfg.temporal.encryption?.encryptWith ?? 'first'}` : 'off',
      taskQueue: cfg.temporal.taskQueue,
      host: cfg.worker.host,
      dataQueue: isDataHost(cfg) ? dataTaskQueue(cfg.temporal.taskQueue) : `not polled (data host is ${cfg.worker.dataHost})`,
      metrics: `http://127.0.0.1:${cfg.worker.metricsPort}/metrics`,
    });
    // Alertmanager's webhook receiver in the same process: it starts faultDetection through a client connection.
    let receiver: AlertmanagerReceiver | undefined;
    let clientConnection: Connection | undefined;
    if (cfg.alertmanagerReceiver.enabled) {
      clientConnection = await connectConnection(settings);
      const client = new Client({ connection: clientConnection, namespace: settings.namespace, dataConverter });
      // A port in use must not stop the worker: the schedule still runs every check, only the fast path is missing.
      receiver = await startAlertmanagerReceiver({ cfg, client, meter: Runtime.instance().metricMeter }).catch((err: Error) => {
        Runtime.instance().logger.error('Alertmanager receiver not started', { error: err.message, host: cfg.alertmanagerReceiver.host, port: cfg.alertmanagerReceiver.port });
        return undefined;
      });
      if (receiver) Runtime.instance().logger.info('Alertmanager receiver listening', { url: receiver.url });
    }
    const stopMemoryLog = logMemory(worker, (msg, meta) => Runtime.instance().logger.info(msg, { ...meta }));
    try {
      await worker.run(); // resolves after a graceful shutdown on SIGINT/SIGTERM
    } finally {
      stopMemoryLog();
      await receiver?.close();
      await clientConnection?.close();
    }
  } finally {
    await connection.close();
    await claim?.release();
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  run().catch((err) => {
    console.error(err instanceof Error ? err.message : err);
    process.exit(1);
  });
}
