/** Recorded histories of real runs must replay against today's workflow code (determinism guard). */
import assert from 'node:assert/strict';
import { readFile, readdir } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { historyFromJSON } from '@temporalio/common/lib/proto-utils.js';
import { Worker } from '@temporalio/worker';
import { DeterminismViolationError } from '@temporalio/workflow';
import { randomBytes } from 'node:crypto';
import { AesGcmCodec } from '../src/common/codec.js';
import { ROOT } from './support/services.js';
import { workflowBundle } from './support/temporal.js';

const dir = path.join(ROOT, 'test/histories');

async function load(file: string) {
  return historyFromJSON(JSON.parse(await readFile(path.join(dir, file), 'utf8')));
}

describe('replay of recorded histories', async () => {
  const files = (await readdir(dir)).filter((f) => f.endsWith('.json'));

  it('has recorded histories to replay', () => {
    assert.ok(files.length >= 2, `found ${files.join(', ')}`);
  });

  for (const file of files) {
    it(`replays ${file}`, async () => {
      // Recorded with the file's name as workflow id (the id matters where the code derives child ids from it), or
      // named `<name>--<workflow id>.json` where the code requires a particular id (the release and data workflows).
      const name = file.replace(/\.json$/, '');
      await Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, await load(file), name.includes('--') ? name.slice(name.indexOf('--') + 2) : name);
    });
  }

  it('replays every recorded (unencrypted) history with payload encryption on: plaintext payloads pass the codec', async () => {
    const dataConverter = { payloadCodecs: [new AesGcmCodec(new Map([['k1', randomBytes(32)]]), 'k1')] };
    const histories = await Promise.all(files.map(async (file) => {
      const name = file.replace(/\.json$/, '');
      return { history: await load(file), workflowId: name.includes('--') ? name.slice(name.indexOf('--') + 2) : name };
    }));
    let replayed = 0;
    for await (const r of Worker.runReplayHistories({ workflowBundle: await workflowBundle(), dataConverter }, histories)) {
      assert.equal(r.error, undefined, `${r.workflowId}: ${r.error?.message}`);
      replayed++;
    }
    assert.equal(replayed, files.length);
  });

  it('fails with a determinism error when the history no longer matches the code', async () => {
    // The degraded run delivered an alert through the regular deliverAlert activity; pretend the code that wrote
    // this history scheduled something else there.
    const history = await load('daily-health-check-degraded.json');
    const scheduled = history.events?.find((e) => e.activityTaskScheduledEventAttributes?.activityType?.name === 'deliverAlert');
    assert.ok(scheduled?.activityTaskScheduledEventAttributes?.activityType, 'the degraded history delivered an alert');
    scheduled.activityTaskScheduledEventAttributes.activityType.name = 'deliverAlertV0';
    await assert.rejects(Worker.runReplayHistory({ workflowBundle: await workflowBundle() }, history, 'tampered'), DeterminismViolationError);
  });
});
