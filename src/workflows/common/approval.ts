/**
 * Decisions by people, as requests with an answer. A gate is opened by a workflow that needs a human to approve
 * a destructive step (a restore over live data, a database rollback). Each decision can arrive
 *
 * - as an **update** (`temporal workflow update execute --name approveRestore …`, or the llmchat-ops CLI): the
 *   caller gets the answer — accepted, or refused and why — and the decision with its answer is in the history;
 * - as a plain **signal** of the same name (`temporal workflow signal --name approveRestore …`): fire and forget,
 *   but never dropped: the decision and its answer are recorded in the gate's state (query) and the worker log.
 *
 * Rules: a decision names who makes it (`by`) and may carry a comment (bounded). Consent follows the information:
 * a decision that arrives before the gate opens is refused at once (update: answered; signal: recorded as refused
 * in the query and logged) and never kept for later. An open gate says exactly what would be approved
 * ({@link ApprovalStatus.subject} and {@link ApprovalStatus.details}) under an id derived from the workflow id and
 * the moment it opened ({@link ApprovalStatus.gateId}, e.g. `restore-1a2b3c4d`); an approval must name that id
 * (`gate`), one naming another gate or none is refused; a rejection may omit it. (Runs recorded before
 * `consent-follows-information` kept early decisions and judged them when the gate opened; they replay that
 * way.) The person who requested the
 * operation cannot approve it unless the config allows self-approval (four eyes). The first accepted approval or
 * rejection decides; later ones are answered "already decided". After an approval, a rejection is still
 * accepted until the workflow commits (passes its point of no return): the workflow races
 * {@link ApprovalGate.rejection} against its approved work, and the rejection is answered only once it is known
 * whether the work stopped in time. Deterministic: no I/O, workflow time only.
 */
import { CancellationScope, condition, log, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { MAX_RECORDED_DECISIONS, MAX_ANSWER_LENGTH, decisionDefinitions, parseDecision, samePerson, gateIdOf, type ApprovalStatus, type Decision, type DecisionAnswer, type DecisionRecord, type GateDetails, type GateNames, type GateState, type Verdict } from './approval-decisions.js';

export * from './approval-decisions.js';

export interface ApprovalGate {
  readonly status: ApprovalStatus;
  /**
   * Opens the gate and waits for the decision: resolves 'approved', 'rejected' or 'timed-out'. Decisions that
   * arrived earlier are judged now, in order.
   */
  decide(opts: { subject: string; details?: GateDetails; allowSelfApproval: boolean; timeoutMs: number }): Promise<'approved' | 'rejected' | 'timed-out'>;
  /**
   * Whether consent follows the information in this run (runs recorded before `consent-follows-information`:
   * early decisions waited for the gate, approvals named no gate).
   */
  readonly consent: boolean;
  /**
   * The gate starts approved: the approval was given elsewhere (a failed deploy's approveDatabaseRollback gate, for
   * the restore it starts). Nothing is awaited; a rejection is still accepted until {@link commit}, as after an
   * approval given here.
   */
  preApproved(opts: { subject: string; details?: GateDetails; by: string }): void;
  /**
   * Resolves with the rejection that arrives after the approval (race it against the approved work). Never
   * rejects, not even when the workflow is cancelled, so it can be left pending.
   */
  rejection(): Promise<Decision>;
  /**
   * The approved work stopped on a cancellation: if a late rejection caused it, the rejection is accepted and
   * this returns true; otherwise (the workflow itself was cancelled) it returns false and changes nothing.
   */
  stopped(): boolean;
  /** The point of no return is passed: a pending or later rejection is answered "too late". */
  commit(): void;
  /** The workflow ends without (further) use of the gate: pending requests are answered. */
  close(why: string): void;
}

/**
 * Installs the decision handlers (signals, updates, query) for one gate. Call once, at the start of the
 * workflow, before anything that awaits, so no early decision finds no handler (and every one is answered).
 * `holdEarlyRejections`: the gate will open already approved (a restore started by a deploy whose own gate was
 * approved); a rejection forwarded before that waits for it instead of being refused, so it still stops the work.
 */
export function installApprovalGate(names: GateNames, requestedBy: string, opts: { holdEarlyRejections?: boolean } = {}): ApprovalGate {
  const defs = decisionDefinitions(names);
  // Decided once, at the start of the run (before anything awaits), so every handler of this run agrees.
  const consent = patched('consent-follows-information');
  const status: ApprovalStatus = { state: 'not-open', requestedBy, decisions: [] };
  let closedWhy = '';
  let allowSelf = false;
  let lateRejection: Decision | undefined;

  const judge = (verdict: Verdict, d: Decision): DecisionAnswer | undefined => {
    const answer = (accepted: boolean, message: string): DecisionAnswer => ({ accepted, state: status.state, message });
    // Consent follows the information: an approval names the gate whose subject it saw; a rejection may omit it,
    // but one naming another gate was meant for something else.
    const named = consent && (status.state === 'open' || (status.state === 'approved' && verdict === 'reject')) ? wrongGate(verdict, d) : undefined;
    if (named) return answer(false, named);
    switch (status.state) {
      case 'open':
        if (verdict === 'approve' && samePerson(d.by, requestedBy) && !allowSelf) {
          return answer(false, `refused: ${d.by} requested this operation and cannot approve it; another person must (four-eyes rule, config approvals.allowSelfApproval)`);
        }
        if (verdict === 'approve') {
          status.state = 'approved';
          status.approvedBy = d.by;
          return answer(true, `approved by ${d.by}`);
        }
        status.state = 'rejected';
        status.rejectedBy = d.by;
        if (d.comment) status.rejectionComment = d.comment;
        return answer(true, `rejected by ${d.by}; nothing will be changed`);
      case 'approved':
        if (verdict === 'approve') return answer(false, `already approved by ${status.approvedBy}`);
        if (lateRejection) return answer(false, `a rejection by ${lateRejection.by} is already being acted on`);
        lateRejection = d; // answered once the workflow has either stopped or passed its point of no return
        return undefined;
      case 'rejected':
        return answer(false, `already rejected by ${status.rejectedBy}`);
      case 'timed-out':
        return answer(false, 'too late: nobody decided in time and the operation gave up');
      case 'committed':
        return answer(false, `too late: approved by ${status.approvedBy} and already past its point of no return`);
      case 'closed':
        return answer(false, `no decision is awaited any more: ${closedWhy}`);
      case 'not-open':
        if (!consent) throw new Error('unreachable: decisions are judged once the gate opens');
        return answer(false, `refused: no ${verdict === 'approve' ? 'approval' : 'rejection'} is awaited yet — the workflow has not yet found what would be ${verdict === 'approve' ? 'approved' : 'rejected'}, and nothing is decided in advance; decide once the gate opens and shows its subject and id (query ${names.query})`);
    }
  };
  const wrongGate = (verdict: Verdict, d: Decision): string | undefined => {
    const open = `the open gate is ${status.gateId}: ${status.subject ?? '(no subject)'}`;
    if (d.gate === undefined) return verdict === 'approve' ? `refused: an approval must name the gate it approves ("gate"); ${open}` : undefined;
    if (d.gate !== status.gateId) return `refused: this ${verdict === 'approve' ? 'approval' : 'rejection'} names gate ${d.gate}, which is not open here; ${open}`;
    return undefined;
  };

  // A decision waits for the gate in a non-cancellable scope: handlers run in the workflow's root scope, so a
  // cancel of the workflow would otherwise fail a waiting update with a bare "cancelled", leave it unrecorded,
  // and make a waiting signal's promise an unhandled rejection that fails every workflow task from then on.
  // The workflow closes the gate on every way out, which ends these waits with an answer.
  const receive = (verdict: Verdict, d: Decision, via: DecisionRecord['via']): Promise<DecisionAnswer> =>
    CancellationScope.nonCancellable(() => receiveNow(verdict, d, via));
  const receiveNow = async (verdict: Verdict, d: Decision, via: DecisionRecord['via']): Promise<DecisionAnswer> => {
    const at = new Date().toISOString();
    // Early decisions are refused (consent follows the information), except a rejection of a gate that will open
    // approved (the approval was given elsewhere, with what it approves shown there): it waits, as all early
    // decisions did in runs recorded before consent-follows-information.
    if (!consent || (verdict === 'reject' && opts.holdEarlyRejections)) await condition(() => status.state !== 'not-open');
    let result = judge(verdict, d);
    if (!result) {
      // A rejection after the approval: the workflow stops its work unless it is already past the point of no
      // return; the answer says which happened.
      await condition(() => status.state !== 'approved');
      result =
        status.state === 'rejected'
          ? { accepted: true, state: status.state, message: `rejected by ${d.by} after approval by ${status.approvedBy}; stopped before the point of no return, nothing was changed` }
          : status.state === 'committed'
            ? { accepted: false, state: status.state, message: `too late: approved by ${status.approvedBy} and already past its point of no return` }
            : { accepted: false, state: status.state, message: `no decision is awaited any more: ${closedWhy}` };
    }
    result.state = status.state;
    result.message = result.message.slice(0, MAX_ANSWER_LENGTH);
    record({ verdict, by: d.by, ...(d.comment ? { comment: d.comment } : {}), via, at, accepted: result.accepted, answer: result.message });
    if (!result.accepted) log.warn(`${verdict === 'approve' ? names.approve : names.reject} from ${d.by} refused: ${result.message}`, { via });
    else log.info(`${verdict === 'approve' ? names.approve : names.reject} from ${d.by}: ${result.message}`, { via });
    return result;
  };

  /** Keeps a decision in the state: every accepted one, refused ones up to the bound (the rest are counted). */
  const record = (r: DecisionRecord) => {
    r.answer = r.answer.slice(0, MAX_ANSWER_LENGTH);
    if (r.accepted || status.decisions.length < MAX_RECORDED_DECISIONS) status.decisions.push(r);
    else status.unrecordedDecisions = (status.unrecordedDecisions ?? 0) + 1;
  };

  const onSignal = (verdict: Verdict) => (raw: unknown) => {
    let d: Decision;
    try {
      d = parseDecision(raw);
    } catch (err) {
      // Not a decision (no `by`): recorded so the sender can see in the query why nothing happened.
      record({ verdict, by: '(unknown)', via: 'signal', at: new Date().toISOString(), accepted: false, answer: `refused: ${(err as Error).message}` });
      log.warn(`${verdict === 'approve' ? names.approve : names.reject} signal ignored: ${(err as Error).message}`);
      return;
    }
    void receive(verdict, d, 'signal');
  };
  setHandler(defs.approveSignal, onSignal('approve'));
  setHandler(defs.rejectSignal, onSignal('reject'));
  // The validator refuses malformed payloads before they reach the history; every well-formed decision is
  // accepted into the history and answered by the handler (including refusals such as self-approval).
  setHandler(defs.approveUpdate, (d) => receive('approve', parseDecision(d), 'update'), { validator: (d) => void parseDecision(d) });
  setHandler(defs.rejectUpdate, (d) => receive('reject', parseDecision(d), 'update'), { validator: (d) => void parseDecision(d) });
  setHandler(defs.query, () => status);

  /** Sets what the gate is for, and (consent) its id from this run and the moment it opens. */
  const describe = (subject: string, details: GateDetails | undefined) => {
    status.subject = subject;
    status.openedAt = new Date().toISOString();
    if (!consent) return;
    if (details) status.details = details;
    status.gateId = gateIdOf(names.idPrefix, workflowInfo().workflowId, status.openedAt, subject);
  };

  return {
    status,
    consent,
    async decide({ subject, details, allowSelfApproval, timeoutMs }) {
      if (status.state !== 'not-open') throw new Error(`approval gate opened twice (state ${status.state})`);
      allowSelf = allowSelfApproval;
      describe(subject, details);
      status.allowSelfApproval = allowSelfApproval;
      status.deadline = new Date(Date.now() + timeoutMs).toISOString();
      status.state = 'open';
      const decided = await condition(() => status.state !== 'open', timeoutMs);
      delete status.deadline;
      if (!decided) {
        status.state = 'timed-out';
        return 'timed-out';
      }
      return (status.state as GateState) === 'approved' ? 'approved' : 'rejected';
    },
    preApproved({ subject, details, by }) {
      if (status.state !== 'not-open') throw new Error(`approval gate opened twice (state ${status.state})`);
      describe(subject, details);
      status.state = 'approved';
      status.approvedBy = by;
    },
    rejection: () => CancellationScope.nonCancellable(async () => {
      await condition(() => lateRejection !== undefined);
      return lateRejection as Decision;
    }),
    stopped() {
      if (status.state !== 'approved' || !lateRejection) return false;
      status.state = 'rejected';
      status.rejectedBy = lateRejection.by;
      if (lateRejection.comment) status.rejectionComment = lateRejection.comment;
      return true;
    },
    commit() {
      if (status.state === 'approved') status.state = 'committed';
    },
    close(why: string) {
      closedWhy = why;
      if (status.state === 'not-open' || status.state === 'open' || status.state === 'approved') status.state = 'closed';
    },
  };
}
