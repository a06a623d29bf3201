/**
 * The fault detector's state (recovery ledger and restart budget, metrics snapshot, log cursors), shared by every
 * worker: one row of src/common/postgres/ops-state.ts per environment, app instance and kind, changed under the row's
 * lock — so two recoveries of one fault raced on two workers see one ledger and restart once.
 *
 * Fault detection must not depend on the database it watches: when the state database cannot be reached, the
 * change is made on this host's mirror file instead (src/activities/faults/state-file.ts, with its in-process lock) and a
 * warning says so. That is the one-worker behaviour of before; the file is also what the row starts from on
 * upgrade. A row that fails its checks is an error naming it (never a fallback: it is corrupt, not unreachable).
 */
import { z } from 'zod';
import { stateDirOf, type EnvironmentConfig } from '../../common/config/index.js';
import { OpsStateError, transactOpsState } from '../../common/postgres/ops-state.js';
import { faultStatePath, owned, ownedBy, readState, withFileLock, writeState, type FaultStateKey } from './state-file.js';

export type FaultStateKind = 'metrics-snapshot' | 'log-cursors' | 'recovery-ledger';

export interface FaultStateChange<R> {
  /** The new value to store, in its stored (JSON) form: it must pass the kind's validator. */
  next: unknown;
  result: R;
}

/** Raised inside `fn`: marks errors that are the caller's own (they never trigger the file fallback). */
class CallerError extends Error {
  constructor(readonly inner: unknown) {
    super('caller error');
  }
}

export async function changeFaultState<T, R>(
  env: EnvironmentConfig,
  key: FaultStateKey,
  kind: FaultStateKind,
  validate: (v: unknown) => T | undefined,
  fn: (current: T | undefined) => Promise<FaultStateChange<R>>,
  warn: (message: string, meta: Record<string, unknown>) => void,
): Promise<R> {
  const file = faultStatePath(stateDirOf(env), key, kind);
  const dataSchema = z.custom<unknown>((v) => v === null || validate(v) !== undefined, { message: `not a valid ${kind}` });
  const schema = z.strictObject({ environment: z.literal(key.environment), instance: z.literal(key.instance), data: dataSchema });
  type Row = z.infer<typeof schema>;
  const fromFile = async (): Promise<T | undefined> => readState(file, (v) => validate(ownedBy(v, key)));
  try {
    return await transactOpsState<Row, R>(
      env,
      { environment: key.environment, key: `fault/${kind}/${key.instance}` },
      {
        schema: schema as z.ZodType<Row>,
        initial: () => ({ environment: key.environment, instance: key.instance, data: null }),
        legacy: async () => {
          // The stored (JSON) form, as the file holds it.
          const old = await readState(file, (v) => {
            const d = ownedBy(v, key);
            return validate(d) === undefined ? undefined : d;
          });
          return old === undefined ? undefined : { environment: key.environment, instance: key.instance, data: old };
        },
        mirror: (row) => (row.data === null ? Promise.resolve() : writeState(file, owned(key, row.data))),
        onMirrorError: (err) => warn('could not write the fault-state mirror file', { file, error: err.message }),
      },
      async (row) => {
        try {
          const { next, result } = await fn(row.data === null ? undefined : validate(row.data));
          return { next: { ...row, data: next }, result };
        } catch (err) {
          throw new CallerError(err);
        }
      },
    );
  } catch (err) {
    if (err instanceof CallerError) throw err.inner;
    if (err instanceof OpsStateError) throw err;
    warn('shared state database unreachable; using this host\'s fault-state file (other workers do not see this change)', {
      environment: key.environment,
      kind,
      file,
      error: (err as Error).message,
    });
    return withFileLock(file, async () => {
      const { next, result } = await fn(await fromFile());
      await writeState(file, owned(key, next));
      return result;
    });
  }
}
