/**
 * Section `schedules`: which Temporal Schedules `schedules apply` creates (one per schedule × environment, see
 * src/schedules.ts), with their cron expression in the top-level `timezone`.
 *
 * Cron syntax: five fields `minute hour day-of-month month day-of-week`, separated by single spaces, each made of
 * numbers, `*`, ranges `a-b`, steps `/n` and lists `,`; month and day-of-week also take three-letter names
 * (`jan`, `mon`); day-of-week 0 and 7 are Sunday. The expression is parsed by cron-parser when the config loads
 * (`config check`, the worker's start, `schedules apply`): out-of-range values, reversed ranges, zero steps and
 * dates that never exist (`0 8 31 2 *`) are refused. The extensions `L`, `W`, `#`, `?` and `H`, `@daily`-style
 * macros and second/year fields are refused: Temporal's schedule specs do not read them the way other crons do
 * (Temporal 1.32 refuses L, W, ? and H only when the schedule is created, reads `1#2` as every Monday with the
 * comment "2", and accepts `0 8 31 2 *` as a schedule that never fires).
 * Note that Temporal requires BOTH day-of-month and day-of-week when both are restricted (`0 3 1-7 * mon` = the
 * first Monday), where classic cron runs on either.
 */
import { CronExpressionParser } from 'cron-parser';
import { z } from 'zod';

const FIELDS = ['minute', 'hour', 'day-of-month', 'month', 'day-of-week'] as const;
const MONTHS = /jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec/gi;
const DAYS = /sun|mon|tue|wed|thu|fri|sat/gi;
/** Days of each month (1-based), February counting the 29th of leap years. */
const MONTH_DAYS = [0, 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function neverRuns(fields: string[]): string {
  return `never runs: no month in "${fields[3]}" has a day "${fields[2]}"`;
}

/** Why a cron expression is refused, or undefined when Temporal and cron-parser both read it the same way. */
export function cronProblem(cron: string): string | undefined {
  if (!/^\S+( \S+){4}$/.test(cron)) return 'must be a five-field cron expression (minute hour day-of-month month day-of-week)';
  const fields = cron.split(' ');
  for (const [i, field] of fields.entries()) {
    const bare = i === 3 ? field.replace(MONTHS, '') : i === 4 ? field.replace(DAYS, '') : field;
    const odd = /[^0-9*,/-]/.exec(bare);
    if (odd) {
      return `${FIELDS[i]} field "${field}": "${odd[0]}" is not cron syntax Temporal runs (use numbers, ${i === 3 ? 'month names, ' : i === 4 ? 'day names, ' : ''}*, a-b, /n and lists; not L, W, #, ? or H)`;
    }
  }
  let parsed;
  try {
    parsed = CronExpressionParser.parse(cron, { strict: false });
  } catch (err) {
    const message = (err as Error).message;
    // cron-parser refuses some never-existing dates itself ("Invalid explicit day of month definition").
    if (/day of month definition/i.test(message)) return neverRuns(fields);
    return `not a valid cron expression: ${message}`;
  }
  const dom = parsed.fields.dayOfMonth.values.filter((d) => typeof d === 'number').map(Number);
  const months = parsed.fields.month.values.map(Number);
  if (!months.some((m) => dom.some((d) => d <= (MONTH_DAYS[m] ?? 0)))) {
    return neverRuns(fields);
  }
  return undefined;
}

/** A five-field cron expression, checked by {@link cronProblem}. */
export const cronExpression = z.string().superRefine((cron, ctx) => {
  const problem = cronProblem(cron);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});

export const scheduleSchema = z.strictObject({
  /** Cron expression in `timezone` (five fields, see above). */
  cron: cronExpression,
  /** The environments this schedule runs for (one Temporal Schedule each); names from `environments`. */
  environments: z.array(z.string()).min(1),
  /** Only used when the schedule is first created; afterwards an operator's pause/unpause is kept. */
  paused: z.boolean().default(false),
});
export type ScheduleSettings = z.infer<typeof scheduleSchema>;

export const schedulesSchema = z.record(z.string(), scheduleSchema);
