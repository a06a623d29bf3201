/**
 * The vocabulary of an approval gate, apart from the gate itself (approval.ts): what a person sends (a decision),
 * what is recorded and answered, the gate's names and ids, and the four-eyes comparison of names. Loaded in the
 * workflow sandbox and by the CLI.
 */
import { ApplicationFailure, defineQuery, defineSignal, defineUpdate } from '@temporalio/workflow';
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
export const MAX_ANSWER_LENGTH = 400;

export const BY = /^[\p{L}\p{N}._@:/+-](?:[\p{L}\p{N} ._@:/+-]{0,126}[\p{L}\p{N}._@:/+-])?$/u;
/**
 * Names that stand for no person: an approval "by schedule" would read in the audit trail as if the system had
 * approved itself.
 */
export const NOT_A_PERSON = new Set(['schedule', 'unknown', 'system', 'llmchat-ops']);
/**
 * A comment is shown in terminals, logs and the Web UI: control characters (ANSI escapes that rewrite the
 * terminal, newlines that forge output lines), bidirectional overrides and other invisible format characters
 * are refused, so a comment shows what it says.
 */
export const INVISIBLE = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}]/u;
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
