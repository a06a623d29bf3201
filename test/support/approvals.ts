/**
 * Decisions as a person makes them since consent follows the information: wait until the gate is open (its
 * query shows the subject and the gate id), then approve or reject naming that gate.
 */
import type { WorkflowHandle } from '@temporalio/client';
import type { ApprovalStatus, Decision, DecisionAnswer } from '../../src/workflows/common/approval.js';
import { waitFor } from './services.js';
import { executeUpdateRetrying } from '../../src/common/update-retry.js';

export type GateKind = 'restore' | 'db-rollback';

const NAMES = {
  restore: { approve: 'approveRestore', reject: 'rejectRestore', query: 'restoreApproval' },
  'db-rollback': { approve: 'approveDatabaseRollback', reject: 'rejectDatabaseRollback', query: 'databaseRollbackStatus' },
} as const;

/** The gate's state as its query shows it. */
export function gateOf(h: WorkflowHandle, kind: GateKind): Promise<ApprovalStatus> {
  return h.query<ApprovalStatus>(NAMES[kind].query);
}

/** Waits until the gate is open, and returns it (subject, details, gate id). */
export async function openGate(h: WorkflowHandle, kind: GateKind, timeoutMs = 180_000): Promise<ApprovalStatus> {
  let gate: ApprovalStatus | undefined;
  await waitFor(`the ${kind} gate opens`, async () => {
    gate = await gateOf(h, kind).catch(() => undefined);
    return gate?.state === 'open';
  }, timeoutMs);
  return gate as ApprovalStatus;
}

/** Waits for the open gate, then approves it (update: the answer; signal: undefined), naming its id. */
export async function approveAtGate(h: WorkflowHandle, kind: GateKind, d: Decision, opts: { via?: 'update' | 'signal'; timeoutMs?: number } = {}): Promise<DecisionAnswer | undefined> {
  const gate = await openGate(h, kind, opts.timeoutMs);
  return decideAt(h, kind, 'approve', { ...d, ...(gate.gateId ? { gate: gate.gateId } : {}) }, opts.via);
}

/** Waits for the open gate, then rejects it naming its id. */
export async function rejectAtGate(h: WorkflowHandle, kind: GateKind, d: Decision, opts: { via?: 'update' | 'signal'; timeoutMs?: number } = {}): Promise<DecisionAnswer | undefined> {
  const gate = await openGate(h, kind, opts.timeoutMs);
  return decideAt(h, kind, 'reject', { ...d, ...(gate.gateId ? { gate: gate.gateId } : {}) }, opts.via);
}

/** Sends a decision as it is (no waiting, no gate added): update with its answer, or signal. */
export async function decideAt(h: WorkflowHandle, kind: GateKind, verdict: 'approve' | 'reject', d: unknown, via: 'update' | 'signal' = 'update'): Promise<DecisionAnswer | undefined> {
  const name = NAMES[kind][verdict];
  if (via === 'signal') {
    await h.signal(name, d);
    return undefined;
  }
  return executeUpdateRetrying<DecisionAnswer, [Decision]>(h, name, [d as Decision]);
}
