/**
 * What the fault workflows (faultDetection, alertLifecycle) share with their clients — the fault activities that
 * signal-with-start them, the Alertmanager receiver and the CLI: signal and query definitions, report and state
 * types, the check-name rule. Loaded in the workflow sandbox: no Node modules.
 */
import { defineQuery, defineSignal } from '@temporalio/workflow';
import type { Severity } from '../../common/config/index.js';
import type { ContainerState, FaultCheck, MetricsReading } from '../../activities/faults/faults.js';
import type { LogWindowScan } from '../../activities/faults/log-cursor.js';

/** Workflow ids: one alert per fault key, one detection run per environment. */
export { alertWorkflowId, faultDetectionRunId } from '../../activities/faults/faults.js';

/** The alert workflow's type name, for clients that start it by name (signal-with-start from an activity). */
export const ALERT_LIFECYCLE_WORKFLOW = 'alertLifecycle';
/** The detection workflow's type name, for clients that start it by name. */
export const FAULT_DETECTION_WORKFLOW = 'faultDetection';

export interface FaultDetectionInput {
  environment: string;
  /** Who asked: `schedule:…`, `alertmanager:<alertname>`, or an operator. */
  requestedBy?: string;
}

/** A trigger that joined the run (signal-with-start): who, when, and whether it came before the measurements. */
export interface DetectionRequest {
  by: string;
  at: string;
  /** false: it arrived after the measurements were taken; the next run (schedule, Alertmanager) covers it. */
  measured: boolean;
}
export const detectionRequestedSignal = defineSignal<[{ by?: unknown }]>('detectionRequested');

export interface RecoveryOutcome {
  action: 'restart' | 'flush-cache' | 'stand-back';
  outcome: string;
  detail: string;
  checks: string[];
}

export type FaultOutcome = 'healthy' | 'faults' | 'recovered' | 'stood-back' | 'handed-over';

export interface FaultDetectionReport {
  environment: string;
  outcome: FaultOutcome;
  checkedAt: string;
  checks: FaultCheck[];
  /** Checks that failed (after the confirmation re-probe). */
  faults: string[];
  recoveries: RecoveryOutcome[];
  /** Alert workflows fed by this run. */
  alerts: string[];
  /** Open alerts told that their check passed. */
  cleared: string[];
  metrics: MetricsReading;
  container: ContainerState;
  logs: LogWindowScan[];
  /** The run that measured (`llmchat-faults-<env>/<run id>`); a trigger run started elsewhere returns its report. */
  ranIn?: string;
  requestedBy?: string;
  /** Every trigger this run answered (signal-with-start), up to 100; the rest are counted. */
  requests?: DetectionRequest[];
  unrecordedRequests?: number;
}

export interface FaultReport {
  severity: Severity;
  title: string;
  message: string;
  value?: number;
  threshold?: number;
  /** The detection run that saw it. */
  detectedBy: string;
  /** A human must take over (e.g. the recovery budget is used up): pages at once, even after an acknowledgement. */
  handover?: boolean;
}
export interface FaultCleared {
  detectedBy: string;
  message?: string;
}
export interface RecoveryRecord {
  action: 'restart' | 'flush-cache' | 'stand-back' | 'none';
  reason: string;
  outcome: string;
  detail: string;
}
export interface Acknowledgement {
  by: string;
  comment?: string;
}

export type AlertStatus = 'firing' | 'acknowledged' | 'resolved';
/** One page of an incident: what kind, on which severity's routes, why, and what the channels answered. */
export interface PageRecord {
  at: string;
  kind: 'open' | 'handover' | 'worse' | 'escalated' | 'resolved';
  severity: Severity;
  reason: string;
  delivered: string;
}
export interface AlertEvent {
  at: string;
  event: 'opened' | 'reported' | 'paged' | 'escalated' | 'acknowledged' | 'recovery' | 'cleared' | 'resolved' | 'rejected-signal' | 'handover' | 'incident';
  detail: string;
}
export interface AlertState {
  alertId: string;
  environment: string;
  check: string;
  severity: Severity;
  title: string;
  message: string;
  status: AlertStatus;
  openedAt: string;
  lastSeenAt: string;
  reports: number;
  paged: boolean;
  escalated: boolean;
  acknowledged?: { by: string; comment?: string; at: string };
  resolvedAt?: string;
  /** Most recent events (bounded). */
  history: AlertEvent[];
  /** 1 for the first incident of this alert; a report after the resolved notice opens the next. */
  incident?: number;
  /** Auto-recovery gave up in this incident (its hand-over was paged once). */
  handedOver?: boolean;
  /** The pages this incident sent, and why. */
  pages?: PageRecord[];
  /** Reports of this incident that did not page (the fault persisted, a repeated hand-over, after an acknowledgement). */
  quietReports?: number;
}

export interface AlertLifecycleInput {
  environment: string;
  check: string;
  /** Carried over by continue-as-new. */
  carried?: AlertState;
}

export const faultReportedSignal = defineSignal<[FaultReport]>('faultReported');
export const faultClearedSignal = defineSignal<[FaultCleared]>('faultCleared');
export const recoveryRecordedSignal = defineSignal<[RecoveryRecord]>('recoveryRecorded');
export const acknowledgeAlertSignal = defineSignal<[Acknowledgement]>('acknowledgeAlert');
export const alertStateQuery = defineQuery<AlertState>('alertState');

export const CHECK_NAME = /^[a-z0-9][a-z0-9-]{0,79}$/;
