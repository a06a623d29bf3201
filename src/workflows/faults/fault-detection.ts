/**
 * 故障检测 — the guide's fault-detection service, every 5 minutes per environment (and at once when Alertmanager
 * calls): measure (/health, error rate and latency over the window since the previous run, memory, disk, the
 * container, new log lines), judge against the thresholds, feed each fault to its one alert, try auto-recovery
 * within the service's budget — standing back while a deploy, rollback or restore of the environment runs —
 * and tell alerts whose check passes again that they are resolved. One run per environment at a time: the work
 * runs under `llmchat-faults-<env>` only; every other trigger joins it by signal-with-start (`detectionRequested`),
 * and a run started under another id (the schedule's) joins it through an activity and returns its report.
 */
import { metricMeter, patched, proxyActivities, proxyLocalActivities, setHandler, sleep, upsertSearchAttributes, workflowInfo } from '@temporalio/workflow';
import type { FaultActivities } from '../../activities/faults/index.js';
import type { HealthActivities } from '../../activities/health/index.js';
import type { CommonActivities } from '../../activities/common/index.js';
import type { RestartResult } from '../../activities/faults/containers.js';
import type { FlushResult } from '../../activities/faults/redis-cache.js';
import { evaluateFaults, faultDetectionRunId, type FaultCheck } from '../../activities/faults/faults.js';
import { EnvironmentKey, OperationKey, OutcomeKey, RequestedByKey } from '../../common/search-attributes.js';
import { detectionRequestedSignal, type DetectionRequest, type FaultDetectionInput, type FaultDetectionReport, type FaultOutcome, type FaultReport, type RecoveryOutcome } from './shared.js';
import { requireEnvironmentName, requireObject, requireRequestedBy } from '../common/inputs.js';
import { AWAIT_RUN, LOCAL_MEASURE, LOG_SCAN, RECOVERY, TEMPORAL_CALLS } from '../common/activity-options.js';

const MAX_REQUESTS = 100;

// Measurements are short reads: local activities, recorded in the history without a task-queue round trip.
const measure = proxyLocalActivities<FaultActivities & HealthActivities & CommonActivities>(LOCAL_MEASURE);
// The log scan reads only new bytes but may meet a burst of them: a regular activity that heartbeats.
const logs = proxyActivities<FaultActivities & HealthActivities & CommonActivities>(LOG_SCAN);
const temporalOps = proxyActivities<FaultActivities & HealthActivities & CommonActivities>(TEMPORAL_CALLS);
// A restart waits for /health; the heartbeat notices a dead worker within 10 s and the retry resumes the wait
// (the recovery ledger makes sure the container is restarted once).
const recovery = proxyActivities<FaultActivities & HealthActivities & CommonActivities>(RECOVERY);

// A trigger run waits for the run it joined: a long wait that heartbeats (a dead worker is noticed in 15 s).
const awaitRun = proxyActivities<FaultActivities & HealthActivities & CommonActivities>(AWAIT_RUN);

/** A failed probe is re-checked once after this pause: a blip that a retry fixes does not page. */
const CONFIRM_AFTER = '3 seconds';

export async function faultDetection(input: FaultDetectionInput): Promise<FaultDetectionReport> {
  const args = requireObject(input, 'faultDetection');
  const environment = requireEnvironmentName(args.environment);
  const requestedBy = requireRequestedBy(args.requestedBy, 'schedule');
  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'faultDetection' },
    { key: RequestedByKey, value: requestedBy },
  ]);
  const { workflowId, runId } = workflowInfo();
  const runKey = `${workflowId}/${runId}`;
  // (first: an unknown environment fails here, at once, the same way for every trigger)
  const policy = await measure.describeFaultPolicy(environment);
  // One run per environment at a time: the work happens only under llmchat-faults-<env>; a run started under any
  // other id (a schedule's, a plain `temporal workflow start`) joins that run — or starts it — and returns its report.
  const oneRun = patched('fault-detection-one-run-per-environment');
  const requests: DetectionRequest[] = [];
  let unrecordedRequests = 0;
  let measuring = false;
  if (oneRun) {
    if (workflowId !== faultDetectionRunId(environment)) {
      const joined = await temporalOps.joinFaultDetection({ environment, requestedBy });
      const result = await awaitRun.awaitFaultDetection(joined);
      upsertSearchAttributes([{ key: OutcomeKey, value: result.outcome }]);
      return result;
    }
    setHandler(detectionRequestedSignal, (raw) => {
      let by: string;
      try {
        by = requireRequestedBy(typeof raw === 'object' && raw !== null ? (raw as { by?: unknown }).by : undefined, 'unknown');
      } catch {
        by = 'invalid';
      }
      if (requests.length < MAX_REQUESTS) requests.push({ by, at: new Date().toISOString(), measured: !measuring });
      else unrecordedRequests++;
    });
  }
  const checkedAt = new Date().toISOString();

  measuring = true;
  const [probe, metrics, memory, disks, container, logScans] = await Promise.all([
    measure.probeEndpoint({ environment, endpoint: 'service' }),
    measure.measureMetricsWindow(oneRun ? { environment, runKey } : { environment }),
    measure.checkMemoryUsage(),
    measure.checkDiskUsage({ environment }),
    measure.inspectAppContainer({ environment }),
    logs.scanWatchedLogs({ environment }),
  ]);
  let checks = evaluateFaults(environment, { probe, metrics, memory, disks, container, logs: logScans }, policy.thresholds);

  const appDown = checks.find((c) => c.check === 'app-down');
  if (appDown && !appDown.ok && container.state === 'running') {
    await sleep(CONFIRM_AFTER);
    const again = await measure.probeEndpoint({ environment, endpoint: 'service' });
    if (again.ok) checks = evaluateFaults(environment, { probe: again, metrics, memory, disks, container, logs: logScans }, policy.thresholds);
  }

  const failing = checks.filter((c) => !c.ok);
  const report = (c: FaultCheck, extra: Partial<FaultReport> = {}): { check: string; report: FaultReport } => ({
    check: c.check,
    report: { severity: c.severity, title: c.title, message: c.message, ...(c.value !== undefined ? { value: c.value } : {}), ...(c.threshold !== undefined ? { threshold: c.threshold } : {}), detectedBy: runKey, ...extra },
  });
  const alerts = failing.length ? await temporalOps.reportFaults({ environment, reports: failing.map((c) => report(c)) }) : [];

  const recoveries: RecoveryOutcome[] = [];
  const recovered = new Set<string>();
  let handedOver = false;
  const restartFor = failing.filter((c) => c.recovery === 'restart');
  const flushFor = failing.filter((c) => c.recovery === 'flush-cache');
  const wanted = restartFor.length ? restartFor : flushFor;
  if (policy.recoveryEnabled && wanted.length) {
    const record = async (r: RecoveryOutcome) => {
      recoveries.push(r);
      metricMeter.createCounter('llmchat_ops_recoveries', 'recoveries', 'auto-recovery actions by action and outcome').add(1, { action: r.action, outcome: r.outcome, environment });
      for (const check of r.checks) {
        await temporalOps.recordRecovery({ environment, check, record: { action: r.action, reason: wanted.map((c) => c.message).join('; ').slice(0, 300), outcome: r.outcome, detail: r.detail } });
      }
    };
    // Never fight a deploy, rollback or restore of the same environment: they run under business-key ids.
    const busy = await temporalOps.runningConflicts({ environment });
    if (busy.length) {
      const what = busy.map((b) => `${b.workflowId} (${b.workflowType}, since ${b.startTime})`).join(', ');
      await record({ action: 'stand-back', outcome: 'stood-back', detail: `${what} is running on ${environment}: no auto-recovery while it runs`, checks: wanted.map((c) => c.check) });
    } else if (restartFor.length) {
      const r: RestartResult = await recovery.restartAppService({ environment, key: runKey, reason: restartFor.map((c) => c.check).join(', ') });
      await record({ action: 'restart', outcome: r.outcome, detail: r.detail, checks: restartFor.map((c) => c.check) });
      if (r.outcome === 'recovered') {
        const after = await measure.probeEndpoint({ environment, endpoint: 'service' });
        if (after.ok) for (const c of restartFor) recovered.add(c.check);
      } else {
        handedOver = true;
        const tried = r.recent.length ? ` Restarts in the budget window: ${r.recent.map((e) => `${e.at} (${e.reason})`).join('; ')}.` : '';
        await temporalOps.reportFaults({
          environment,
          reports: restartFor.map((c) => report(c, { severity: 'critical', handover: true, message: `${c.message} — auto-recovery gave up, a human must take over: ${r.detail}.${tried}` })),
        });
      }
    } else {
      const r: FlushResult = await recovery.flushCacheKeys({ environment });
      await record({ action: 'flush-cache', outcome: r.outcome, detail: r.detail, checks: flushFor.map((c) => c.check) });
    }
  }

  const passing = checks.filter((c) => c.ok || recovered.has(c.check)).map((c) => c.check);
  const cleared = await temporalOps.clearFaults({ environment, checks: passing, detectedBy: runKey });

  const outcome: FaultOutcome = failing.length === 0 ? 'healthy' : handedOver ? 'handed-over' : recoveries.some((r) => r.action === 'stand-back') ? 'stood-back' : failing.every((c) => recovered.has(c.check)) ? 'recovered' : 'faults';
  upsertSearchAttributes([{ key: OutcomeKey, value: outcome }]);
  metricMeter.createCounter('llmchat_ops_runs', 'runs', 'runbook runs by workflow and outcome').add(1, { workflow: 'faultDetection', outcome, environment });
  const base = { environment, outcome, checkedAt, checks, faults: failing.map((c) => c.check), recoveries, alerts, cleared, metrics, container, logs: logScans };
  return oneRun ? { ...base, ranIn: runKey, requestedBy, requests, ...(unrecordedRequests ? { unrecordedRequests } : {}) } : base;
}
