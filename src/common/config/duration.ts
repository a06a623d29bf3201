/**
 * The one duration type of the config (every key that holds a duration).
 *
 * Syntax: `<number><unit>`, no space, unit one of `ms`, `s`, `m`, `h`, `d`, `w` (lowercase; `m` is minutes),
 * number a non-negative decimal (`500ms`, `30s`, `1.5h`, `7d`, `2w`). The value is computed by the `ms` package.
 *
 * - Keys without a unit in their name (`per`, `healthTimeout`, `approvalTimeout`, …) take such a string and are
 *   read as milliseconds ({@link durationMs}); a bare number is refused there (5 what?).
 * - Keys whose name carries their unit (`…Ms`, `…Minutes`, `…Days`) keep taking a plain number in that unit (or a
 *   numeric string, as `${VAR}` interpolation yields), and also take a duration string, converted to that unit
 *   ({@link durationIn}). Day keys take only `d` and `w` (so `7m` is refused, not read as 7 minutes).
 */
import ms, { type StringValue } from 'ms';
import { z } from 'zod';

export type DurationUnit = 'ms' | 's' | 'm' | 'h' | 'd' | 'w';
export const DURATION_UNITS: readonly DurationUnit[] = ['ms', 's', 'm', 'h', 'd', 'w'];
const SYNTAX = /^(\d+(?:\.\d+)?)(ms|s|m|h|d|w)$/;
/** Milliseconds of one unit. */
const UNIT_MS: Record<DurationUnit, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Integer milliseconds of a duration string, or the reason it is not one. */
export function parseDuration(text: string, units: readonly DurationUnit[] = DURATION_UNITS): number | string {
  const m = SYNTAX.exec(text);
  const hint = `must be a duration like ${units.includes('m') ? '30m, 24h, 2d or 500ms' : '7d or 2w'} (<number><unit>, unit ${units.join(', ')})`;
  if (!m || !units.includes(m[2] as DurationUnit)) return hint;
  const value = ms(text as StringValue);
  if (!Number.isFinite(value)) return hint;
  const whole = Math.round(value);
  if (Math.abs(value - whole) > 1e-6) return 'must be a whole number of milliseconds';
  return whole;
}

/** A duration string read as milliseconds; `fallback` (a duration string) when the key is absent. */
export function durationMs(fallback: string, range: { min?: string; max?: string } = {}) {
  const min = range.min === undefined ? 0 : (parseDuration(range.min) as number);
  const max = range.max === undefined ? Infinity : (parseDuration(range.max) as number);
  return z
    .string({ error: 'must be a duration string like 30s or 500ms (<number><unit>; a bare number has no unit here)' })
    .transform((text, ctx) => {
      const v = parseDuration(text);
      if (typeof v === 'string') {
        ctx.addIssue({ code: 'custom', message: v });
        return z.NEVER;
      }
      if (v < min || v > max) {
        ctx.addIssue({ code: 'custom', message: `must be between ${range.min ?? '0ms'} and ${range.max ?? 'any'}` });
        return z.NEVER;
      }
      return v;
    })
    .prefault(fallback);
}

const KEY_UNIT = { ms: 1, minutes: 60_000, days: 86_400_000 } as const;
const KEY_UNITS: Record<keyof typeof KEY_UNIT, readonly DurationUnit[]> = { ms: DURATION_UNITS, minutes: DURATION_UNITS, days: ['d', 'w'] };

/**
 * A key whose name carries its unit: a number in that unit as before (`logStaleMinutes: 60`), a numeric string
 * (`"60"`, from `${VAR}`), or a duration string converted to the unit (`"1h"` → 60). `schema` holds the key's own
 * limits (positive, integer, at most …), checked on the converted number.
 */
export function durationIn<S extends z.ZodType<number, number>>(unit: keyof typeof KEY_UNIT, schema: S) {
  return z.preprocess((input, ctx) => {
    if (typeof input !== 'string') return input;
    if (/^\d+(\.\d+)?$/.test(input)) return Number(input);
    const v = parseDuration(input, KEY_UNITS[unit]);
    if (typeof v === 'string') {
      ctx.addIssue({ code: 'custom', message: v.replace(/^must be a duration/, `must be a number of ${unit} or a duration`) });
      return z.NEVER;
    }
    return Math.round((v / KEY_UNIT[unit]) * 1e9) / 1e9;
  }, schema);
}

const DAY_LIMIT = 3650;
/**
 * A retention window in days (a number, or a duration in d/w like "4w"): > 0 and at most ten years (0 or a typo
 * like 30000 would purge everything or nothing).
 */
export const days = (dflt: number) =>
  durationIn('days', z.number().positive('must be more than 0 days').max(DAY_LIMIT, `must be at most ${DAY_LIMIT} days`)).default(dflt);
