/**
 * A workflow that ends in the same workflow task as the update that ends it, like a restore rejected at its gate
 * (test/update-retry.test.ts). The update's handler spends a fixed amount of CPU (deterministic: a counted loop) so
 * that a signal sent meanwhile reaches the server while the task runs; the server then refuses the task's
 * completion (UNHANDLED_COMMAND) and aborts the update. Never part of the worker's bundle.
 */
import { condition, defineSignal, defineUpdate, setHandler } from '@temporalio/workflow';

export const finishUpdate = defineUpdate<string, [number]>('finish');
export const pingSignal = defineSignal('ping');

export async function endsOnUpdate(): Promise<number> {
  let done = false;
  let pings = 0;
  setHandler(pingSignal, () => {
    pings++;
  });
  setHandler(finishUpdate, (spin: number) => {
    let x = 0;
    for (let i = 0; i < spin; i++) x = (x * 31 + i) | 0;
    done = true;
    return `finished (${x & 1})`;
  });
  await condition(() => done);
  return pings;
}
