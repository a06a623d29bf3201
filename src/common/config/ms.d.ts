/**
 * Types of the `ms` package (3.0.0-canary.1, the SDK's copy): its package.json "exports" point at dist/index.mjs
 * without a "types" condition, so TypeScript's NodeNext resolution does not find the bundled dist/index.d.ts.
 * `StringValue` stays a plain string: the SDK's `Duration` type is built on it, and the config validates the
 * syntax itself (src/common/config/duration.ts).
 */
declare module 'ms' {
  export type StringValue = string;
  /** Parses a duration like "500ms", "30s", "1.5h" or "7d" into milliseconds (NaN when it does not parse). */
  function ms(value: StringValue): number;
  /** Formats milliseconds ("1h", or "1 hour" with long). */
  function ms(value: number, options?: { long?: boolean }): string;
  export default ms;
}
