/** The schedules of the loops that can wait for hours (src/workflows/common/waits.ts): bounded however long the wait. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { bakeIntervalMs, busyRetryDelay, exclusionPollMs, MAX_BAKE_SAMPLES, MAX_EXCLUSION_CHECKS } from '../src/workflows/common/waits.js';

const H = 3600_000;

/** How many times a loop wakes in `totalMs` with the delays `delay(i)`. */
function wakes(totalMs: number, delay: (i: number) => number): number {
  let n = 0;
  for (let t = 0; t < totalMs; n++) t += delay(n);
  return n;
}

describe('bounded waits', () => {
  it('the approved restore waiting for the data id: 5 s, doubling, at most 15 min — ~100 tries a day instead of 17,280', () => {
    assert.deepEqual([0, 1, 2, 3, 7, 8, 50].map((i) => busyRetryDelay(i, true)), [5_000, 10_000, 20_000, 40_000, 640_000, 900_000, 900_000]);
    assert.equal(busyRetryDelay(9, false), 5_000, 'runs recorded before restore-wait-backoff keep their 5 s');
    assert.equal(wakes(24 * H, (i) => busyRetryDelay(i, false)), 17_280);
    const tries = wakes(24 * H, (i) => busyRetryDelay(i, true));
    assert.ok(tries <= 105, `${tries} tries in a day`);
  });

  it(`a bake takes at most ${MAX_BAKE_SAMPLES} samples, however long; short bakes keep their interval`, () => {
    assert.equal(bakeIntervalMs(60_000, 10_000, true), 10_000);
    assert.equal(bakeIntervalMs(24 * H, 10_000, false), 10_000);
    for (const bake of [60_000, H, 24 * H]) {
      const samples = Math.ceil(bake / bakeIntervalMs(bake, 10_000, true));
      assert.ok(samples <= MAX_BAKE_SAMPLES, `${samples} samples for a ${bake / H} h bake`);
    }
    assert.equal(Math.ceil((24 * H) / bakeIntervalMs(24 * H, 10_000, false)), 8_640, 'unbounded: 8,640 samples a day');
  });

  it(`a wait for an exclusive window checks at most ~${MAX_EXCLUSION_CHECKS} times`, () => {
    assert.equal(exclusionPollMs(30_000, true), 3_000, 'a short limit is polled as before');
    assert.equal(exclusionPollMs(2 * H, false), 60_000);
    assert.equal(exclusionPollMs(2 * H, true), 120_000);
    for (const limit of [10 * 60_000, 2 * H, 24 * H]) assert.ok(limit / exclusionPollMs(limit, true) <= MAX_EXCLUSION_CHECKS, `${limit / H} h`);
  });
});
