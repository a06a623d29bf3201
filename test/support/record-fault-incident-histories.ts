/**
 * Records the replay histories of the one-run-per-environment and one-page-per-incident code (patches
 * `fault-detection-one-run-per-environment`, `alert-one-page-per-incident`): a trigger run that joined the
 * environment's run (`fault-detection-trigger`), that run itself (`fault-detection-one-run--llmchat-faults-hand`),
 * and an app-down alert whose restart budget (0) is spent: page, one hand-over page, quiet reports, acknowledgement,
 * resolved (`alert-lifecycle-handover`). Run after a deliberate workflow change:
 * `node dist/test/support/record-fault-incident-histories.js`.
 */
import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import Docker from 'dockerode';
import { historyToJSON } from '@temporalio/common/lib/proto-utils.js';
import { alertWorkflowId } from '../../src/activities/faults/faults.js';
import { acknowledgeAlertSignal, alertStateQuery } from '../../src/workflows/faults/shared.js';
import { faultDetection } from '../../src/workflows/faults/fault-detection.js';
import { faultFixture } from './fault-fixture.js';
import { httpOk, ROOT, waitFor } from './services.js';

async function main(): Promise<void> {
  const f = await faultFixture({ environments: { hand: { faultDetection: { recovery: { restarts: 0, per: '1h', healthyTimeout: '30s' } } } } });
  try {
    await f.startWorker();
    const run = (workflowId: string) => f.env.client.workflow.execute(faultDetection, { taskQueue: f.taskQueue, workflowId, args: [{ environment: 'hand', requestedBy: 'recorder' }] });
    const save = async (id: string, name: string, runId?: string) => {
      const history = await f.env.client.workflow.getHandle(id, runId).fetchHistory();
      await writeFile(path.join(ROOT, 'test/histories', `${name}.json`), historyToJSON(history));
      console.log(`recorded test/histories/${name}.json (${history.events?.length} events)`);
    };
    await run('fault-detection-baseline');
    const docker = new Docker();
    const [info] = await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${f.app.project}`] } });
    if (!info) throw new Error('no app container');
    const container = docker.getContainer(info.Id);
    await container.kill();
    const report = await run('fault-detection-trigger');
    if (report.outcome !== 'handed-over' || !report.ranIn) throw new Error(`expected a hand-over in a joined run: ${JSON.stringify(report)}`);
    const [ranId, ranRun] = report.ranIn.split('/') as [string, string];
    await run('fault-detection-again');
    const alert = f.env.client.workflow.getHandle(alertWorkflowId('hand', 'app-down'));
    await waitFor('hand-over paged', async () => ((await alert.query(alertStateQuery)).pages ?? []).some((p) => p.kind === 'handover'));
    await alert.signal(acknowledgeAlertSignal, { by: 'alice', comment: 'recording' });
    await waitFor('acknowledged', async () => (await alert.query(alertStateQuery)).acknowledged !== undefined);
    await container.start();
    await waitFor('app back', httpOk(`${f.app.url}/health`), 60_000);
    await run('fault-detection-cleared');
    await alert.result();
    await save('fault-detection-trigger', 'fault-detection-trigger');
    await save(ranId, `fault-detection-one-run--${ranId}`, ranRun);
    await save(alertWorkflowId('hand', 'app-down'), 'alert-lifecycle-handover');
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
