/**
 * Updates sent by the CLI (approvals, rejections, "serving verified?") survive a workflow task the server failed.
 *
 * When the workflow task that carries an update fails on the server, the server aborts every update in it and the
 * caller gets FAILED_PRECONDITION "Unable to perform workflow execution update due to unexpected workflow task
 * failure" — the update was never accepted. The common cause is harmless: the update ends the workflow (a rejected
 * restore fails it) in the same task while another event arrives (an alert activity completes), so the server
 * refuses the completion (UNHANDLED_COMMAND) and runs a new task. Sending the same update again, under the same
 * update id (a second delivery of an update the server did accept returns its first outcome), is what the operator
 * would do by hand; a task that keeps failing is reported after a few tries, naming the cause.
 */
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { isGrpcServiceError, ServiceError, type WorkflowHandle } from '@temporalio/client';

const FAILED_PRECONDITION = 9;

/** True for the server's abort of an update whose workflow task failed (nothing was accepted). */
export function isUpdateAbortedByTaskFailure(err: unknown): boolean {
  const cause = err instanceof ServiceError ? err.cause : err;
  return isGrpcServiceError(cause) && cause.code === FAILED_PRECONDITION && /unexpected workflow task failure/i.test(cause.details || cause.message);
}

export interface UpdateRetryOptions {
  /** Tries in all (default 5: about 4 s of waiting). */
  attempts?: number;
  /** Wait before the second try, doubled each time up to 4 s (default 250 ms). */
  firstDelayMs?: number;
  /** The update id every try uses (default: a new random id for this call). */
  updateId?: string;
}

/** `handle.executeUpdate(name, args)`, sent again (same update id) when the server aborted it with its failed task. */
export async function executeUpdateRetrying<Ret, Args extends [unknown, ...unknown[]] | []>(handle: Pick<WorkflowHandle, 'executeUpdate'>, name: string, args: Args, opts: UpdateRetryOptions = {}): Promise<Ret> {
  const attempts = opts.attempts ?? 5;
  if (!Number.isInteger(attempts) || attempts < 1) throw new RangeError(`attempts must be a positive integer, got ${attempts}`);
  const updateId = opts.updateId ?? randomUUID();
  let delay = opts.firstDelayMs ?? 250;
  const send = handle.executeUpdate.bind(handle) as (name: string, options: { args: Args; updateId: string }) => Promise<Ret>;
  for (let attempt = 1; ; attempt++) {
    try {
      return await send(name, { args, updateId });
    } catch (err) {
      if (!isUpdateAbortedByTaskFailure(err)) throw err;
      if (attempt >= attempts) {
        throw new Error(`the workflow's task failed on the server each time the update ${name} reached it (${attempts} tries): is its worker healthy? look at the workflow's history for the task failure`, { cause: err });
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 4000);
    }
  }
}
