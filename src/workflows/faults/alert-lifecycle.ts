/**
 * 告警 — one durable alert per fault key (environment + check), started by signal-with-start from each fault
 * report. One page per incident: it pages once, routed by severity; pages the hand-over once when auto-recovery
 * gives up; escalates to the critical routes once after `alerts.escalateAfter` unless acknowledged; pages again only
 * when the fault gets worse (higher severity); records every report and recovery; and sends a "resolved" notice
 * when the check passes again. A report after the resolved notice opens a new incident (new page, acknowledgement
 * and escalation clock). A fault that keeps failing every 5 minutes feeds this one workflow instead of paging again;
 * the `alertState` query lists the incident's pages and why each was sent. Continues as new past 1 000 events.
 */
import {
  condition,
  continueAsNew,
  patched,
  log,
  metricMeter,
  proxyLocalActivities,
  setHandler,
  upsertSearchAttributes,
  workflowInfo,
  allHandlersFinished,
} from '@temporalio/workflow';
import type { Severity } from '../../common/config/index.js';
import type { FaultActivities } from '../../activities/faults/index.js';
import type { Alert } from '../../common/health.js';
import { EnvironmentKey, OperationKey, OutcomeKey } from '../../common/search-attributes.js';
import { badInput, requireEnvironmentName, requireObject, requireRequestedBy } from '../common/inputs.js';
import { notifyAlerts } from '../common/notify-alerts.js';
import {
  acknowledgeAlertSignal,
  alertStateQuery,
  CHECK_NAME,
  faultClearedSignal,
  faultReportedSignal,
  recoveryRecordedSignal,
  type Acknowledgement,
  type AlertEvent,
  type AlertLifecycleInput,
  type AlertState,
  type FaultCleared,
  type FaultReport,
  type PageRecord,
} from './shared.js';
import { LOCAL_ALERT_STEPS } from '../common/activity-options.js';

const SEVERITIES: readonly Severity[] = ['info', 'warning', 'critical'];
const MAX_HISTORY = 200;
/** Continue as new past this many history events (a fault reported every 5 minutes for days stays bounded). */
const CONTINUE_AFTER_EVENTS = 1000;

const quick = proxyLocalActivities<FaultActivities>(LOCAL_ALERT_STEPS);


const text = (v: unknown, max: number) => (typeof v === 'string' ? v.slice(0, max) : '');

/** Signals cross a trust boundary (anyone can send one with the temporal CLI): parse, never trust. */
function parseReport(v: unknown): FaultReport | undefined {
  if (typeof v !== 'object' || v === null) return undefined;
  const r = v as Record<string, unknown>;
  if (!SEVERITIES.includes(r.severity as Severity) || typeof r.title !== 'string' || typeof r.message !== 'string') return undefined;
  return {
    severity: r.severity as Severity,
    title: text(r.title, 200),
    message: text(r.message, 2000),
    ...(typeof r.value === 'number' && Number.isFinite(r.value) ? { value: r.value } : {}),
    ...(typeof r.threshold === 'number' && Number.isFinite(r.threshold) ? { threshold: r.threshold } : {}),
    detectedBy: text(r.detectedBy, 300) || 'unknown',
    ...(r.handover === true ? { handover: true } : {}),
  };
}

export async function alertLifecycle(input: AlertLifecycleInput): Promise<AlertState> {
  const args = requireObject(input, 'alertLifecycle');
  const environment = requireEnvironmentName(args.environment);
  if (typeof args.check !== 'string' || !CHECK_NAME.test(args.check)) {
    throw badInput(`Expected \`check\` to be a check name (lowercase letters, digits, -), got ${JSON.stringify(args.check)?.slice(0, 80)}`);
  }
  const check = args.check;
  const { workflowId } = workflowInfo();
  // Created here, not at module level: this module is also imported outside workflows (for its signal definitions).
  const alertEvents = metricMeter.createCounter('llmchat_ops_alerts', 'alerts', 'alert lifecycle events by event and severity');
  const deliveryCounter = metricMeter.createCounter('llmchat_ops_alert_deliveries', 'deliveries', 'alert deliveries by channel and outcome');
  const nowIso = () => new Date().toISOString();
  const state: AlertState = (args.carried as AlertState | undefined) ?? {
    alertId: workflowId,
    environment,
    check,
    severity: 'warning',
    title: check,
    message: '',
    status: 'firing',
    openedAt: nowIso(),
    lastSeenAt: nowIso(),
    reports: 0,
    paged: false,
    escalated: false,
    history: [],
  };
  // One page per incident (a hand-over pages once, repeated reports never); histories written before it replay as they ran.
  const onePage = patched('alert-one-page-per-incident');
  if (onePage) {
    state.incident ??= 1;
    state.pages ??= [];
    state.quietReports ??= 0;
  }
  let cleared = false;
  let raised = false; // severity went up (or a hand-over) since the last page
  let worse = false; // onePage: severity went up since the last page
  let handoverDue = false; // onePage: the incident's first hand-over, not paged yet
  let resolving = false; // onePage: the check passed and the resolved notice is on its way: a report now is a new incident
  const record = (event: AlertEvent['event'], detail: string) => {
    state.history.push({ at: nowIso(), event, detail: detail.slice(0, 1000) });
    if (state.history.length > MAX_HISTORY) state.history.splice(0, state.history.length - MAX_HISTORY);
  };

  const newIncident = () => {
    state.incident = (state.incident ?? 1) + 1;
    state.openedAt = nowIso();
    state.reports = 0;
    state.paged = false;
    state.escalated = false;
    delete state.acknowledged;
    state.handedOver = false;
    state.pages = [];
    state.quietReports = 0;
    worse = false;
    handoverDue = false;
    resolving = false;
    state.status = 'firing';
    delete state.resolvedAt;
    record('incident', `incident ${state.incident}: the fault is back after the resolved notice`);
  };
  setHandler(faultReportedSignal, (raw) => {
    const r = parseReport(raw);
    if (!r) return record('rejected-signal', `malformed faultReported: ${JSON.stringify(raw)?.slice(0, 200)}`);
    if (onePage && (resolving || state.status === 'resolved')) newIncident();
    if (state.reports === 0) record('opened', r.message);
    else record(r.handover ? 'handover' : 'reported', r.message);
    const higher = SEVERITIES.indexOf(r.severity) > SEVERITIES.indexOf(state.severity);
    if (onePage) {
      const firstHandover = r.handover === true && !state.handedOver;
      if (firstHandover) {
        state.handedOver = true;
        if (state.paged) handoverDue = true; // not paged yet: the first page says it
      }
      if (state.reports > 0 && higher) worse = true;
      if (state.paged && !firstHandover && !higher) state.quietReports = (state.quietReports ?? 0) + 1;
    } else if (state.reports > 0 && (higher || r.handover)) raised = true;
    if (state.reports === 0 || higher) state.severity = r.severity;
    state.reports++;
    state.title = r.title;
    state.message = r.message;
    state.lastSeenAt = nowIso();
    if (state.status === 'resolved') {
      state.status = 'firing';
      delete state.resolvedAt;
    }
    cleared = false;
  });
  setHandler(faultClearedSignal, (raw) => {
    if (state.reports === 0) return;
    record('cleared', text((raw as FaultCleared | undefined)?.message, 500) || `check passed (${text((raw as FaultCleared | undefined)?.detectedBy, 200)})`);
    cleared = true;
  });
  setHandler(recoveryRecordedSignal, (raw) => {
    const r = (typeof raw === 'object' && raw !== null ? raw : {}) as Record<string, unknown>;
    record('recovery', `${text(r.action, 20)} (${text(r.reason, 200)}): ${text(r.outcome, 40)} — ${text(r.detail, 600)}`);
  });
  setHandler(acknowledgeAlertSignal, (raw) => {
    let by: string;
    try {
      by = requireRequestedBy(requireObject(raw, 'acknowledgeAlert').by, '');
    } catch (err) {
      return record('rejected-signal', `acknowledgeAlert refused: ${(err as Error).message}`);
    }
    if (!by) return record('rejected-signal', 'acknowledgeAlert refused: `by` is required');
    if (state.acknowledged) return record('rejected-signal', `already acknowledged by ${state.acknowledged.by}; ${by} ignored`);
    const comment = text((raw as Acknowledgement).comment, 500);
    state.acknowledged = { by, ...(comment ? { comment } : {}), at: nowIso() };
    if (state.status === 'firing') state.status = 'acknowledged';
    record('acknowledged', `${by}${comment ? `: ${comment}` : ''}`);
    alertEvents.add(1, { event: 'acknowledged', severity: state.severity });
  });
  setHandler(alertStateQuery, () => state);

  upsertSearchAttributes([
    { key: EnvironmentKey, value: environment },
    { key: OperationKey, value: 'alert' },
  ]);
  const setOutcome = () => upsertSearchAttributes([{ key: OutcomeKey, value: state.status === 'firing' && state.escalated ? 'escalated' : state.status }]);

  const policy = await quick.describeAlertPolicy(environment);
  const env = policy.environment;
  await condition(() => state.reports > 0 || cleared);
  if (!args.carried) alertEvents.add(1, { event: 'opened', severity: state.severity });

  let pageNo = 0;
  const PREFIX: Record<PageRecord['kind'], string> = { open: '', handover: 'HANDED OVER: ', worse: 'ESCALATED: ', escalated: 'ESCALATED: ', resolved: 'RESOLVED: ' };
  const page = async (kind: PageRecord['kind'], severity: Severity, reason = '') => {
    const prefix = PREFIX[kind];
    const incidentPages = state.pages; // a report during the delivery may open the next incident: this page is this one's
    const alert: Alert = {
      severity,
      type: check,
      title: `${prefix}${state.title}`,
      message: kind === 'resolved' ? `${state.message} — resolved after ${state.reports} report(s)` : state.message,
      environment,
    };
    const deliveries = await notifyAlerts(`${workflowId}/${workflowInfo().runId}/${kind}-${++pageNo}`, env, [alert]);
    for (const d of deliveries) deliveryCounter.add(1, { channel: d.channel, outcome: d.delivered ? 'delivered' : 'failed' });
    const summary = deliveries.map((d) => `${d.channel}:${d.delivered ? 'sent' : d.detail}`).join(', ') || 'no channel routed';
    record(kind === 'escalated' || kind === 'worse' ? 'escalated' : kind === 'resolved' ? 'resolved' : kind === 'handover' ? 'handover' : 'paged', `[${severity}] ${summary}`);
    if (onePage) incidentPages?.push({ at: nowIso(), kind, severity, reason: reason.slice(0, 500), delivered: summary.slice(0, 500) });
  };

  if (onePage) return await pageOncePerIncident();

  /** The loop with one page per incident (new runs); the loop below is what older histories ran. */
  async function pageOncePerIncident(): Promise<AlertState> {
    for (;;) {
      if (!cleared && !state.paged) {
        if (policy.graceMs > 0) await condition(() => cleared, policy.graceMs);
        if (!cleared) {
          const handover = state.handedOver ? ' — auto-recovery had already given up (hand-over)' : '';
          state.paged = true; // before the page: a report that arrives while it is sent does not page again
          worse = false;
          handoverDue = false;
          await page('open', state.severity, `fault reported (${state.reports} report(s))${handover}`);
        } else {
          record('resolved', `cleared within the ${policy.graceMs / 1000} s grace period: not paged`);
        }
        setOutcome();
      }
      if (!cleared) {
        const openedMs = Date.parse(state.openedAt);
        const escalationDue = !state.escalated && !state.acknowledged ? Math.max(1, openedMs + policy.escalateAfterMs - Date.now()) : undefined;
        const long = () => workflowInfo().continueAsNewSuggested || workflowInfo().historyLength > CONTINUE_AFTER_EVENTS;
        const woke = await condition(() => cleared || worse || handoverDue || (escalationDue !== undefined && state.acknowledged !== undefined) || long(), escalationDue ?? 7 * 86_400_000);
        if (!cleared && handoverDue) {
          handoverDue = false;
          worse = false;
          await page('handover', 'critical', `auto-recovery gave up: a human must take over (paged once per incident${state.acknowledged ? `, although ${state.acknowledged.by} acknowledged` : ''})`);
          alertEvents.add(1, { event: 'handover', severity: state.severity });
        } else if (!cleared && worse) {
          worse = false;
          state.escalated = true;
          await page('worse', 'critical', `the fault got worse: severity now ${state.severity}`);
          alertEvents.add(1, { event: 'escalated', severity: state.severity });
        } else if (!woke && escalationDue !== undefined && !cleared && !state.acknowledged) {
          state.escalated = true;
          state.severity = 'critical';
          await page('escalated', 'critical', `not acknowledged within ${Math.round(policy.escalateAfterMs / 1000)} s of the first page`);
          alertEvents.add(1, { event: 'escalated', severity: 'critical' });
        }
        setOutcome();
        if (!cleared && !worse && !handoverDue && long()) {
          await condition(allHandlersFinished);
          log.info('alert continues as new', { alertId: workflowId, reports: state.reports, events: workflowInfo().historyLength });
          return continueAsNew<typeof alertLifecycle>({ environment, check, carried: state });
        }
        continue;
      }
      // Cleared: resolved from here on (a report now opens a new incident), then tell whoever was paged and end.
      resolving = true;
      if (state.paged) await page('resolved', state.severity, `the check passed again after ${state.reports} report(s)`);
      if (!cleared) continue; // the fault came back while the notice went out: a new incident
      state.status = 'resolved';
      state.resolvedAt = nowIso();
      alertEvents.add(1, { event: 'resolved', severity: state.severity });
      setOutcome();
      await condition(allHandlersFinished);
      if (!cleared) continue; // a report arrived while the handlers drained: a new incident
      return state;
    }
  }

  for (;;) {
    if (!cleared && !state.paged) {
      if (policy.graceMs > 0) await condition(() => cleared, policy.graceMs);
      if (!cleared) {
        await page('open', state.severity);
        state.paged = true;
        raised = false;
      } else {
        record('resolved', `cleared within the ${policy.graceMs / 1000} s grace period: not paged`);
      }
      setOutcome();
    }
    if (!cleared) {
      const openedMs = Date.parse(state.openedAt);
      const escalationDue = !state.escalated && !state.acknowledged ? Math.max(1, openedMs + policy.escalateAfterMs - Date.now()) : undefined;
      const woke = await condition(() => cleared || raised || (escalationDue !== undefined && state.acknowledged !== undefined) || workflowInfo().continueAsNewSuggested, escalationDue ?? 7 * 86_400_000);
      if (raised && !cleared && (!state.acknowledged || state.severity === 'critical')) {
        raised = false;
        state.escalated = true;
        await page('escalated', 'critical');
        alertEvents.add(1, { event: 'escalated', severity: state.severity });
      } else if (!woke && escalationDue !== undefined && !cleared && !state.acknowledged) {
        state.escalated = true;
        state.severity = 'critical';
        await page('escalated', 'critical');
        alertEvents.add(1, { event: 'escalated', severity: 'critical' });
      }
      raised = false;
      setOutcome();
      if (!cleared && workflowInfo().continueAsNewSuggested) {
        await condition(allHandlersFinished);
        log.info('alert continues as new', { alertId: workflowId, reports: state.reports });
        return continueAsNew<typeof alertLifecycle>({ environment, check, carried: state });
      }
      continue;
    }
    // Cleared: tell whoever was paged, then end — unless the fault came back meanwhile.
    if (state.paged) await page('resolved', state.severity);
    if (!cleared) {
      state.paged = false;
      continue;
    }
    state.status = 'resolved';
    state.resolvedAt = nowIso();
    alertEvents.add(1, { event: 'resolved', severity: state.severity });
    setOutcome();
    await condition(allHandlersFinished);
    if (!cleared) {
      // A report arrived while the handlers drained: the same fault is back.
      state.paged = false;
      continue;
    }
    return state;
  }
}
