/**
 * src/common/update-retry.ts: an update the server aborted with its failed workflow task is sent again under the same
 * update id; any other error, and the last abort, reach the caller. The handle here is a stand-in for
 * WorkflowHandle.executeUpdate that throws the exact error the client raises (ServiceError "Workflow Update failed"
 * caused by the gRPC FAILED_PRECONDITION the server answers): what is tested is the retry decision, not the server
 * (the second part shows the race on the real dev server).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { ServiceError, type WorkflowHandle } from '@temporalio/client';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { bundleWorkflowCode, Worker } from '@temporalio/worker';
import { executeUpdateRetrying, isUpdateAbortedByTaskFailure } from '../src/common/update-retry.js';
import { finishUpdate, pingSignal } from './support/update-race-workflows.js';
import { startDevServer } from './support/temporal.js';

const RACE_WORKFLOWS = fileURLToPath(new URL('./support/update-race-workflows.js', import.meta.url));

const grpcError = (code: number, details: string) => Object.assign(new Error(`${code} ${details}`), { code, details, metadata: {} });
const aborted = () => new ServiceError('Workflow Update failed', { cause: grpcError(9, 'Unable to perform workflow execution update due to unexpected workflow task failure.') });

function handle(failures: Error[]) {
  const calls: { name: string; args: unknown[]; updateId?: string }[] = [];
  return {
    calls,
    async executeUpdate<Ret>(name: string, opts: { args: unknown[]; updateId?: string }): Promise<Ret> {
      calls.push({ name, args: opts.args, updateId: opts.updateId });
      const failure = failures.shift();
      if (failure) throw failure;
      return { accepted: true } as Ret;
    },
  };
}

describe('updates survive a workflow task the server failed', () => {
  it('recognises only the server\'s abort for a failed workflow task', () => {
    assert.equal(isUpdateAbortedByTaskFailure(aborted()), true);
    assert.equal(isUpdateAbortedByTaskFailure(aborted().cause), true);
    assert.equal(isUpdateAbortedByTaskFailure(new ServiceError('Workflow Update failed', { cause: grpcError(9, 'workflow execution already completed') })), false);
    assert.equal(isUpdateAbortedByTaskFailure(new ServiceError('x', { cause: grpcError(14, 'unexpected workflow task failure') })), false);
    assert.equal(isUpdateAbortedByTaskFailure(new Error('unexpected workflow task failure')), false);
  });

  it('sends the update again, under the same update id, until it is taken', async () => {
    const h = handle([aborted(), aborted()]);
    const answer = await executeUpdateRetrying<{ accepted: boolean }, [{ by: string }]>(h, 'rejectRestore', [{ by: 'carol' }], { firstDelayMs: 1 });
    assert.deepEqual(answer, { accepted: true });
    assert.equal(h.calls.length, 3);
    assert.ok(h.calls[0]!.updateId);
    assert.deepEqual(new Set(h.calls.map((c) => c.updateId)).size, 1, 'one update id for every try');
    assert.deepEqual(h.calls.map((c) => [c.name, c.args]), Array(3).fill(['rejectRestore', [{ by: 'carol' }]]));
  });

  it('any other error reaches the caller at once', async () => {
    const other = new ServiceError('Workflow Update failed', { cause: grpcError(5, 'workflow not found') });
    const h = handle([other]);
    await assert.rejects(executeUpdateRetrying(h, 'approveRestore', [], { firstDelayMs: 1 }), (err) => err === other);
    assert.equal(h.calls.length, 1);
  });

  it('a task that keeps failing is reported after the last try, naming the update and keeping the cause', async () => {
    const h = handle([aborted(), aborted(), aborted()]);
    await assert.rejects(executeUpdateRetrying(h, 'approveDatabaseRollback', [], { attempts: 3, firstDelayMs: 1 }), (err: Error) => {
      assert.match(err.message, /task failed on the server each time the update approveDatabaseRollback reached it \(3 tries\)/);
      assert.ok(isUpdateAbortedByTaskFailure(err.cause));
      return true;
    });
    assert.equal(h.calls.length, 3);
    await assert.rejects(executeUpdateRetrying(h, 'x', [], { attempts: 0 }), RangeError);
  });
});

describe('on the real dev server: an update that ends the workflow while a signal arrives', { timeout: 300_000 }, () => {
  let env: TestWorkflowEnvironment;
  let worker: Worker;
  let running: Promise<void>;
  const taskQueue = `test-update-race-${randomUUID()}`;
  // About 0.3-1 s of CPU in the update's handler; the deadlock detector allows 2 s.
  const SPIN = 300_000_000;

  before(async () => {
    env = await startDevServer();
    worker = await Worker.create({
      connection: env.nativeConnection,
      taskQueue,
      workflowBundle: await bundleWorkflowCode({ workflowsPath: RACE_WORKFLOWS, logger: { trace() {}, debug() {}, info() {}, warn() {}, error: console.error } as never }),
    });
    running = worker.run();
  });
  after(async () => {
    worker?.shutdown();
    await running;
    await env?.teardown();
  });

  /**
   * Starts the workflow, sends `finish` with `send`, and pings it every 40 ms meanwhile: for `windowMs`, or (no
   * window) until the update has its outcome, so that pings keep arriving while its task runs.
   */
  async function race<T>(send: (h: WorkflowHandle) => Promise<T>, windowMs?: number): Promise<{ outcome: T | Error; pings: number }> {
    const h = await env.client.workflow.start('endsOnUpdate', { taskQueue, workflowId: `race-${randomUUID()}` });
    await h.query('__stack_trace'); // its first task has run: the update gets a task of its own
    const outcome = send(h).catch((err: Error) => err);
    let sent = 0;
    const pings: Promise<void>[] = [];
    const timer = setInterval(() => {
      sent++;
      pings.push(h.signal(pingSignal).catch(() => undefined));
    }, 40);
    if (windowMs !== undefined) await sleep(windowMs);
    else await Promise.race([outcome, sleep(30_000)]);
    clearInterval(timer);
    await Promise.all(pings);
    return { outcome: await outcome, pings: sent };
  }

  it('a plain update is aborted by the server (the failure CI met), the retrying one is taken', async (t) => {
    let abortedPlain = 0;
    let tries = 0;
    for (let i = 0; i < 3 && abortedPlain === 0; i++, tries++) {
      const { outcome } = await race((h) => h.executeUpdate(finishUpdate, { args: [SPIN] }));
      if (outcome instanceof Error) {
        assert.ok(isUpdateAbortedByTaskFailure(outcome), `only the task-failure abort is expected: ${outcome.message}`);
        abortedPlain++;
      }
    }
    assert.equal(abortedPlain, 1, 'a signal arriving while the ending task runs makes the server abort a plain update');
    t.diagnostic(`a plain update aborted by the server on try ${tries}`);
    for (let i = 0; i < 2; i++) {
      const { outcome, pings } = await race((h) => executeUpdateRetrying<string, [number]>(h, 'finish', [SPIN]), 700);
      assert.ok(!(outcome instanceof Error), `the retrying update is taken: ${outcome instanceof Error ? outcome.message : ''}`);
      assert.match(outcome as string, /^finished/);
      t.diagnostic(`retrying update taken after ${pings} pings`);
    }
  });
});
