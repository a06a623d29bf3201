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
import { ApplicationFailure, CancellationScope, condition, defineQuery, defineSignal, defineUpdate, log, patched, setHandler, workflowInfo } from '@temporalio/workflow';
import { z } from 'zod';
import { show } from './inputs.js';

export const MAX_COMMENT_LENGTH = 500;
/**
 * Decisions kept in the gate's state (the query's answer). Accepted decisions are always kept; refused ones past
 * this number are only counted and logged, so a flood of bad signals cannot grow the state past what a query can
 * return (and make `llmchat-ops approve` fail).
 */
export const MAX_RECORDED_DECISIONS = 100;
/** Longest answer kept or returned; messages quote the sender's input, which must not make them unbounded. */
const MAX_ANSWER_LENGTH = 400;

const BY = /^[\p{L}\p{N}._@:/+-](?:[\p{L}\p{N} ._@:/+-]{0,126}[\p{L}\p{N}._@:/+-])?$/u;
/**
 * Names that stand for no person: an approval "by schedule" would read in the audit trail as if the system had
 * approved itself.
 */
const NOT_A_PERSON = new Set(['schedule', 'unknown', 'system', 'llmchat-ops']);
/**
 * A comment is shown in terminals, logs and the Web UI: control characters (ANSI escapes that rewrite the
 * terminal, newlines that forge output lines), bidirectional overrides and other invisible format characters
 * are refused, so a comment shows what it says.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
/** A gate id: the gate's prefix and 8 hex digits. */
export const GATE_ID = /^[a-z][a-z-]{0,30}-[0-9a-f]{8}$/;

/**
 * The id of a gate of `workflowId` opened at `openedAt` (workflow time) for `subject` (FNV-1a, 32 bits): different
 * for every opening, the same on every replay — also the replay of a reset run, whose run id differs (so the run id
 * is not part of it: an approval recorded before the reset point must be judged as it was).
 */
export function gateIdOf(prefix: string, workflowId: string, openedAt: string, subject: string): string {
  let h = 0x811c9dc5;
  for (const ch of `${workflowId}\n${prefix}\n${openedAt}\n${subject}`) {
    h ^= ch.codePointAt(0) as number;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return `${prefix}-${h.toString(16).padStart(8, '0')}`;
}

/** How a name compares for the four-eyes rule: case, width and compatibility forms ("Ｂｏｂ", "BOB") do not count. */
export function samePerson(a: string, b: string): boolean {
  const norm = (v: string) => v.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
  return norm(a) === norm(b);
}

/** What a person sends: who decides, and optionally why. */
export const decisionSchema = z.strictObject({
  by: z
    .string()
    .regex(BY, 'must name who decides: 1-128 letters, digits, spaces or ._@:/+-, not starting or ending with a space')
    .refine((v) => !NOT_A_PERSON.has(v.normalize('NFKC').toLowerCase()), 'must name a person, not schedule/unknown/system/llmchat-ops'),
  comment: z
    .string()
    .max(MAX_COMMENT_LENGTH, `must be at most ${MAX_COMMENT_LENGTH} characters`)
    .refine((v) => !INVISIBLE.test(v), 'must be printable text on one line: no control, formatting or bidirectional-override characters')
    .optional(),
  /** The id of the gate decided on, as its query, alert and `llmchat-ops approve` show it (required to approve). */
  gate: z.string().regex(GATE_ID, 'must be a gate id like restore-1a2b3c4d or db-rollback-1a2b3c4d, as the gate\'s query shows it').optional(),
});
export type Decision = z.infer<typeof decisionSchema>;

export type Verdict = 'approve' | 'reject';

export interface DecisionRecord {
  verdict: Verdict;
  by: string;
  comment?: string;
  via: 'update' | 'signal';
  /** Workflow time the decision arrived (ISO 8601). */
  at: string;
  accepted: boolean;
  /** The answer given (or recorded, for a signal). */
  answer: string;
}

export type GateState = 'not-open' | 'open' | 'approved' | 'rejected' | 'timed-out' | 'committed' | 'closed';

/** Row counts of the live tables against a backup's manifest: the writes a restore of that backup would undo. */
export interface WritesLost {
  /** Tables compared (in the backup, in the live database, or both). */
  tablesCompared: number;
  /** Tables whose row count differs (largest difference first, at most 20), with the counts. */
  changed: { table: string; backup: number | null; live: number | null }[];
  /** Tables that differ beyond the 20 listed. */
  moreChanged: number;
  /** Rows the live tables hold beyond the backup's counts (summed over tables with more rows now). */
  rowsAdded: number;
  /** Rows the backup holds that the live tables no longer do (summed over tables with fewer rows now). */
  rowsRemoved: number;
  /** Set when live counts could not be read: the loss is unknown (for the tables it names, or for all). */
  error?: string;
}

/** What exactly an open gate would approve, besides the words of its subject. */
export interface GateDetails {
  /** The failure that made the gate open (a failed deploy's step and message). */
  failure?: string;
  /** A migrate-down: the levels from and to. */
  migration?: { from: number; to: number };
  /** A restore: the backup, where it goes, and the writes made since it that would be lost. */
  backup?: { id: string; kind: string; takenAt?: string; target: string; writesLost?: WritesLost };
}

/** Words for {@link WritesLost}, for subjects, alerts and the CLI. */
export function describeWritesLost(w: WritesLost | undefined): string {
  const lost = 'every write made since the backup is LOST';
  if (!w) return lost;
  if (w.error && w.tablesCompared === 0) return `${lost} (how many rows could not be counted: ${w.error})`;
  const unknown = w.error ? `; ${w.error}` : '';
  if (w.changed.length === 0) return `${lost}: the row counts of ${w.error ? 'the counted' : `all ${w.tablesCompared}`} tables match the backup, so only updates in place (not counted) would be lost${unknown}`;
  const count = (n: number | null) => (n === null ? 'no table' : `${n}`);
  const tables = w.changed.map((c) => `${c.table} ${count(c.backup)} → ${count(c.live)}`).join(', ');
  return `${lost}: ${w.rowsAdded} row(s) written since the backup go and ${w.rowsRemoved} row(s) deleted since come back (rows in the backup → now: ${tables}${w.moreChanged ? `, and ${w.moreChanged} more table(s)` : ''}; updates in place are not counted${unknown})`;
}

export interface ApprovalStatus {
  /** The id an approval must name (`gate`), derived when the gate opens (runs before consent-follows-information: none). */
  gateId?: string;
  /** What is to be approved, in words, once known. */
  subject?: string;
  /** What is to be approved, as data: the failure, the migration levels, the backup and the writes it would lose. */
  details?: GateDetails;
  state: GateState;
  requestedBy: string;
  allowSelfApproval?: boolean;
  openedAt?: string;
  /** When the gate stops waiting (ISO 8601), while open. */
  deadline?: string;
  approvedBy?: string;
  rejectedBy?: string;
  /** The accepted rejection's comment. */
  rejectionComment?: string;
  decisions: DecisionRecord[];
  /** Refused decisions that arrived after {@link MAX_RECORDED_DECISIONS} were kept (logged, not kept). */
  unrecordedDecisions?: number;
}

export interface DecisionAnswer {
  accepted: boolean;
  state: GateState;
  message: string;
}

export interface GateNames {
  /** Wire name of the approval signal and update, e.g. `approveRestore`. */
  approve: string;
  /** Wire name of the rejection signal and update, e.g. `rejectRestore`. */
  reject: string;
  /** Wire name of the query returning {@link ApprovalStatus}. */
  query: string;
  /** Prefix of the gate's ids, e.g. `restore` → `restore-1a2b3c4d`. */
  idPrefix: string;
}

/** Definitions for a pair of decision names; the CLI and tests import them for typed calls. */
export function decisionDefinitions(names: GateNames) {
  return {
    approveSignal: defineSignal<[Decision]>(names.approve),
    rejectSignal: defineSignal<[Decision]>(names.reject),
    approveUpdate: defineUpdate<DecisionAnswer, [Decision]>(names.approve),
    rejectUpdate: defineUpdate<DecisionAnswer, [Decision]>(names.reject),
    query: defineQuery<ApprovalStatus>(names.query),
  };
}


/** Parses a decision payload; throws a non-retryable BadInput failure saying exactly what is wrong. */
export function parseDecision(value: unknown): Decision {
  const r = decisionSchema.safeParse(value);
  if (r.success) return r.data;
  // Issue messages quote unknown keys, which can be as long as the payload: bounded here.
  const why = r.error.issues.map((i) => `${i.path.join('.').slice(0, 40) || 'decision'}: ${i.message.slice(0, 160)}`).join('; ').slice(0, 400);
  throw ApplicationFailure.nonRetryable(`Expected a decision like {"by":"alice","comment":"why"}: ${why}; got ${show(value, 120)}`, 'BadInput');
}

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
