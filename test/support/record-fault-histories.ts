/**
 * Records the histories the replay test replays for fault detection: a run that found an error burst, restarted
 * the app and cleared the fault (`fault-detection-recovered`), and that fault's alert from report to resolved
 * notice (`alert-lifecycle-resolved`). Run after a deliberate workflow change: `node dist/test/support/record-fault-histories.js`.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { alertWorkflowId } from '../../src/activities/faults/faults.js';
import { alertStateQuery } from '../../src/workflows/faults/shared.js';
import { faultDetection } from '../../src/workflows/faults/fault-detection.js';
import { faultFixture } from './fault-fixture.js';
import { ROOT, waitFor } from './services.js';

async function main(): Promise<void> {
  const f = await faultFixture({ environments: { prod: {} } });
  try {
    await f.startWorker();
    const run = (workflowId: string) => f.env.client.workflow.execute(faultDetection, { taskQueue: f.taskQueue, workflowId, args: [{ environment: 'prod', requestedBy: 'recorder' }] });
    await run('fault-detection-baseline');
    for (let i = 0; i < 30; i++) await fetch(`${f.app.url}/api/debug/error`, { method: 'POST' }).then((r) => r.arrayBuffer());
    const report = await run('fault-detection-recovered');
    if (!report.recoveries.some((r) => r.outcome === 'recovered')) throw new Error(`expected a recovery: ${JSON.stringify(report.recoveries)}`);
    const alert = f.env.client.workflow.getHandle(alertWorkflowId('prod', 'error-rate'));
    await waitFor('alert resolved', async () => (await alert.query(alertStateQuery)).status === 'resolved', 60_000);
    await alert.result();
    const save = async (id: string, name: string) => {
      const history = await f.env.client.workflow.getHandle(id).fetchHistory();
      await writeFile(path.join(ROOT, 'test/histories', `${name}.json`), historyToJSON(history));
      console.log(`recorded test/histories/${name}.json (${history.events?.length} events)`);
    };
    await save('fault-detection-recovered', 'fault-detection-recovered');
    await save(alertWorkflowId('prod', 'error-rate'), 'alert-lifecycle-resolved');
  } finally {
    await f.teardown();
  }
}

main().then(
  () => process.exit(0),
  (err) => {
    console.error(err);
    process.exit(1);
  },
);
